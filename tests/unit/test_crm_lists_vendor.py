"""The pickers' readers fed the CRMs' documented answers (tests/vendor/<crm>/, each naming its page), the fakes
answering in the same shapes, and arbitrary JSON that never breaks a reader (property tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.lists import AmoLists
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.bitrix24.lists import BitrixLists
from leadbridge.crms.crm_lists import CrmChannel, CrmField, CrmPipeline
from leadbridge.http.errors import InsufficientRights
from leadbridge_local.fakes.amocrm import FakeAmoCRM
from leadbridge_local.fakes.bitrix24 import FakeBitrix24
from leadbridge_local.loopback import HttpRequest

VENDOR = Path(__file__).resolve().parents[1] / "vendor"


def vendor(crm: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VENDOR / crm / name).read_text(encoding="utf-8"))
    assert document["source"].startswith(("bitrix24/b24restdocs:", "biradrags/amo-docs:"))
    return document


class AmoAnswers(AmoClient):
    """The real client's paging over answers given per path (no network, no token)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict[str, str]]] = []

    def _call(self, method: str, path: str, params: Any, json_body: object | None) -> dict[str, Any] | None:
        self.asked.append((path, dict(params or {})))
        answer = self.answers.get(path)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, dict) or answer is None else {"_items": answer}


class BitrixAnswers(BitrixClient):
    """The real client's listing and batch over documented answers given per method."""

    def __init__(self, answers: dict[str, Any]) -> None:
        integration = Integration(integration_id="v", crm="bitrix24", crm_domain="vendor.bitrix24.com")
        super().__init__(integration, cast(Any, None), cast(Any, None))
        self.answers = answers

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "batch":
            results = {}
            for key, command in params["cmd"].items():
                name, _, _query = command.partition("?")
                results[key] = self._answer(name, dict(parse_qsl(_query)))["result"]
            return {"result": {"result": results, "result_error": [], "result_time": []}}
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, dict) and "result" in answer else {"result": answer}


def test_amocrm_documented_fields_and_pipelines_read_as_pickers_rows() -> None:
    fields = vendor("amocrm", "custom-fields-list.json")["body"]
    assert "next" in fields["_links"]  # the documented answer is page 1 of 10: the reader must go on
    last_page = {**fields, "_links": {"self": fields["_links"]["self"]}}
    pages = iter([fields, last_page])

    class Paged(AmoAnswers):
        def _call(self, method: str, path: str, params: Any, json_body: object | None) -> dict[str, Any] | None:
            self.asked.append((path, dict(params or {})))
            return next(pages) if path.endswith("leads/custom_fields") else None

    client = Paged({})
    found = AmoLists(client).fields()
    assert [p for p, _ in client.asked] == ["/api/v4/leads/custom_fields"] * 2 + ["/api/v4/contacts/custom_fields"]
    assert [q["page"] for _, q in client.asked[:2]] == ["1", "2"]
    assert found[0] == CrmField("4439091", "Пример текстового поля", "text", "lead", True)
    assert found[1] == CrmField("4440043", "Пример поля с типом 'data'", "date", "lead", False)

    pipelines = AmoLists(AmoAnswers({"/api/v4/leads/pipelines": vendor("amocrm", "pipelines-list.json")["body"]}))
    [main] = pipelines.pipelines()
    assert (main.id, main.name, main.entity) == ("3177727", "Воронка", "lead")
    assert main.stages[0] == ("32392156", "Неразобранное")
    assert ("142", "Успешно реализовано") in main.stages


def test_amocrm_channels_without_the_admins_sources_still_list_the_chats() -> None:
    events = {"_embedded": {"events": [{"value_after": [{"message": {"origin": "waba", "talk_id": 1}}]}]}}
    client = AmoAnswers(
        {"/api/v4/events": events, "/api/v4/sources": InsufficientRights("no", refused="GET /api/v4/sources")}
    )
    channels = AmoLists(client, now=1_700_000_000).channels()
    assert channels[0] == CrmChannel("whatsapp", "waba", "waba", "account_chats")
    events_query = client.asked[0][1]
    assert events_query["filter[type][]"] == "incoming_chat_message"
    assert events_query["filter[created_at][from]"] == str(1_700_000_000 - 30 * 86_400)


def test_bitrix24_documented_answers_read_as_pickers_rows() -> None:
    userfields = vendor("bitrix24", "crm.lead.userfield.list.json")["body"]
    answers = {
        "crm.lead.userfield.list": userfields,
        "crm.deal.userfield.list": {"result": [], "total": 0},
        "imopenlines.config.list.get": vendor("bitrix24", "imopenlines.config.list.get.json")["body"],
        "imconnector.list": vendor("bitrix24", "imconnector.list.json")["body"],
        "imconnector.status": vendor("bitrix24", "imconnector.status.json")["body"],
        "crm.category.list": vendor("bitrix24", "crm.category.list.json")["body"],
        "crm.status.list": vendor("bitrix24", "crm.status.list.json")["body"],
    }
    lists = BitrixLists(BitrixAnswers(answers))
    fields = lists.fields()
    assert len(fields) == len(userfields["result"])
    assert CrmField("UF_CRM_HELLO_WORLD", "Hello, world! Edit (modified)", "string", "lead", True) in fields
    assert not next(f for f in fields if f.id == "UF_CRM_1713790573").holds_session  # a directory

    channels = lists.channels()  # the documented status (CONFIGURED, STATUS true) for every line and connector
    assert {(c.origin, c.key) for c in channels} == {
        ("livechat", None),
        ("telegrambot", "telegram"),
        ("network", "bitrix24_network"),
        ("myconnector", "myconnector"),
    }
    pipelines = lists.pipelines()
    categories = vendor("bitrix24", "crm.category.list.json")["body"]["result"]["categories"]
    assert [p.id for p in pipelines] == ["STATUS", *(str(c["id"]) for c in categories)]
    assert pipelines[0].stages[0] == ("NEW", "New")


def test_bitrix24_user_who_may_not_list_connectors_gets_every_known_one() -> None:
    error = vendor("bitrix24", "imconnector.list.error.json")["body"]
    from leadbridge.crms.bitrix24.refusals import refusal

    refused = refusal("imconnector.list", error, None, 0.0)
    assert isinstance(refused, InsufficientRights)
    answers = {"imopenlines.config.list.get": {"result": [{"ID": "1"}]}, "imconnector.list": refused}
    channels = BitrixLists(BitrixAnswers(answers)).channels()
    assert {c.where for c in channels} == {"known_connector"}
    assert ("telegrambot", "telegram") in {(c.origin, c.key) for c in channels}


def test_the_fakes_answer_in_the_documented_shapes() -> None:
    amo = FakeAmoCRM()
    account = amo.add_account("vendor", 1)
    request = HttpRequest(
        "GET", "vendor.amocrm.ru", "/api/v4/leads/custom_fields", "limit=1", {"limit": ["1"]}, {}, b""
    )
    documented = vendor("amocrm", "custom-fields-list.json")["body"]
    answer = json.loads(amo._route(request, account).body)
    assert set(answer) == set(documented)
    assert set(answer["_embedded"]["custom_fields"][0]) >= set(documented["_embedded"]["custom_fields"][0]) - {"remind"}
    pipelines = json.loads(
        amo._route(HttpRequest("GET", "vendor.amocrm.ru", "/api/v4/leads/pipelines", "", {}, {}, b""), account).body
    )
    assert set(pipelines) == set(vendor("amocrm", "pipelines-list.json")["body"])

    b24 = FakeBitrix24()
    portal = b24.add_portal("vendor.bitrix24.com", "m")
    documented_b24 = vendor("bitrix24", "crm.lead.userfield.list.json")["body"]["result"][0]
    portal.userfields["lead"] = [documented_b24]
    ok, rows, total = b24._call(portal, "crm.lead.userfield.list", {})
    assert (ok, rows, total) == (True, [documented_b24], 1)
    portal.connectors_denied = True
    ok, refused, _ = b24._call(portal, "imconnector.list", {})
    error = vendor("bitrix24", "imconnector.list.error.json")
    assert (ok, refused) == (False, (error["status"], error["body"]["error"], error["body"]["error_description"]))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(body=JSON, events=JSON, statuses=JSON)
def test_amocrm_readers_take_any_json(body: Any, events: Any, statuses: Any) -> None:
    answers = {
        "/api/v4/leads/custom_fields": {"_embedded": {"custom_fields": body}},
        "/api/v4/contacts/custom_fields": body if isinstance(body, dict) else None,
        "/api/v4/events": {"_embedded": {"events": events}},
        "/api/v4/sources": {"_embedded": {"sources": body}},
        "/api/v4/leads/pipelines": {"_embedded": {"pipelines": [{"id": 1, "_embedded": {"statuses": statuses}}]}},
    }
    lists = AmoLists(AmoAnswers(answers))
    assert all(isinstance(f, CrmField) and f.id.isdigit() for f in lists.fields())
    assert all(isinstance(c.origin, str) and c.origin for c in lists.channels())
    assert all(isinstance(p, CrmPipeline) and all(s.id.isdigit() for s in p.stages) for p in lists.pipelines())


@settings(max_examples=150, deadline=None)
@given(rows=JSON, lines=JSON, connectors=JSON, categories=JSON)
def test_bitrix24_readers_take_any_json(rows: Any, lines: Any, connectors: Any, categories: Any) -> None:
    answers = {
        "crm.lead.userfield.list": {"result": rows, "next": 50} if isinstance(rows, list) else rows,
        "crm.deal.userfield.list": {"result": rows},
        "imopenlines.config.list.get": {"result": lines},
        "imconnector.list": {"result": connectors},
        "imconnector.status": {"result": {"STATUS": True}},
        "crm.category.list": {"result": {"categories": categories}},
        "crm.status.list": {"result": rows},
    }
    lists = BitrixLists(BitrixAnswers(answers))
    assert all(isinstance(f, CrmField) and f.id for f in lists.fields())
    assert all(isinstance(c, CrmChannel) for c in lists.channels())
    assert all(isinstance(p, CrmPipeline) for p in lists.pipelines())
