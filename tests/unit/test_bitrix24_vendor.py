"""Bitrix24's documented bodies (tests/vendor/bitrix24, each naming its page in bitrix24/b24restdocs) fed through our
parsers and our fake portal: what a refusal means, how ``batch`` resolves a chained reference, and that a chained
read which went wrong never puts another person or another chat on a lead."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadbridge.aws.queues import InboxMessage
from leadbridge.contract.integration import Integration, TrafficTarget
from leadbridge.crms.bitrix24.client import BatchResult, BitrixClient
from leadbridge.crms.bitrix24.enrich import BitrixLead, HistoryRefused, build_bitrix_lead, commands
from leadbridge.crms.bitrix24.refusals import OperatingTimes, refusal
from leadbridge.http.errors import (
    AccessTokenRejected,
    AccountBlocked,
    BadRequest,
    CrmUnavailable,
    InsufficientRights,
    NotFound,
    RateLimited,
)
from leadbridge_local.fakes.bitrix24 import FakeBitrix24, batch_reference, php_intval
from leadbridge_local.loopback import HttpRequest

VENDOR = Path(__file__).resolve().parents[1] / "vendor" / "bitrix24"
DOCS = "bitrix24/b24restdocs:"


def vendor(name: str) -> Any:
    document = json.loads((VENDOR / name).read_text(encoding="utf-8"))
    assert document["source"].startswith(DOCS)
    return document["body"]


def test_every_vendor_body_names_its_page() -> None:
    files = sorted(VENDOR.glob("*.json"))
    assert len(files) >= 10
    for file in files:
        document = json.loads(file.read_text(encoding="utf-8"))
        assert document["source"].startswith(DOCS), file.name
        assert document["source"].endswith(".md"), file.name
        assert "body" in document, file.name


EXPECTED_MEANING: dict[str, type[Exception]] = {
    "INTERNAL_SERVER_ERROR": CrmUnavailable,
    "ERROR_UNEXPECTED_ANSWER": CrmUnavailable,
    "QUERY_LIMIT_EXCEEDED": RateLimited,
    "ERROR_BATCH_METHOD_NOT_ALLOWED": BadRequest,
    "ERROR_BATCH_LENGTH_EXCEEDED": BadRequest,
    "NO_AUTH_FOUND": AccessTokenRejected,
    "INVALID_REQUEST": BadRequest,
    "OVERLOAD_LIMIT": AccountBlocked,
    "ACCESS_DENIED": AccountBlocked,  # "REST API is available only on commercial plans": the whole portal
    "INVALID_CREDENTIALS": AccountBlocked,
    "ERROR_MANIFEST_IS_NOT_AVAILABLE": BadRequest,
    "insufficient_scope": InsufficientRights,
    "expired_token": AccessTokenRejected,
    "user_access_error": AccountBlocked,
    "PORTAL_DELETED": AccountBlocked,
}


def test_every_documented_system_error_has_a_meaning() -> None:
    errors = vendor("system-errors.json")
    assert {e["error"] for e in errors} == set(EXPECTED_MEANING)
    for error in errors:
        meaning = refusal("crm.lead.get", error, None, 0.0)
        assert type(meaning) is EXPECTED_MEANING[error["error"]], error["error"]
        assert not isinstance(meaning, BadRequest) or not meaning.retryable


def test_a_time_limit_waits_for_the_methods_reset() -> None:
    timing = vendor("time.operating.json")["time"]
    operating = OperatingTimes(slow_down_at=3.0)
    operating.record("portal", "crm.lead.get", timing)
    reset_at = float(timing["operating_reset_at"])
    now = reset_at - 42
    limited = refusal(
        "crm.lead.get", {"error": "OPERATION_TIME_LIMIT"}, operating.reset_at("portal", "crm.lead.get"), now
    )
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == pytest.approx(42)
    assert operating.wait_before("portal", ["crm.lead.get"], now) == pytest.approx(42)  # 3.3 s is past the mark
    assert operating.wait_before("portal", ["crm.contact.get"], now) == 0
    assert operating.wait_before("portal", ["crm.lead.get"], reset_at + 1) == 0


def test_the_history_methods_documented_refusals() -> None:
    meanings = {e["error"]: refusal("h", e, None, 0.0) for e in vendor("imopenlines.session.history.get.errors.json")}
    assert isinstance(meanings["ACCESS_DENIED"], InsufficientRights)  # the token's user may not open it
    assert isinstance(meanings["INVALID_SESSION_ID"], BadRequest)
    assert isinstance(meanings["MISSING_REQUIRED_PARAM"], BadRequest)


def test_a_batch_answers_errors_per_command_inside_a_200() -> None:
    body = vendor("batch.errors-halt0.json")["result"]
    result = BatchResult(
        results=body["result"] or {},
        errors=body["result_error"],
        commands={"get_user": "user.current", "get_department": "department.get"},
    )
    assert isinstance(result.refusal("get_user"), InsufficientRights)
    ok = vendor("batch.json")["result"]
    assert BatchResult(results=ok["result"], errors={}).refusal("get_user") is None


# ---------------------------------------------------------------- the fake answers as the docs say


def fake_portal() -> tuple[FakeBitrix24, str]:
    fake = FakeBitrix24()
    fake.add_portal("vendor.bitrix24.com", "member-vendor")
    return fake, "vendor.bitrix24.com"


def call(fake: FakeBitrix24, domain: str, method: str, params: dict[str, Any]) -> Any:
    ok, value, _ = fake._call(fake.portals[domain], method, params)
    return ok, value


def test_the_fakes_refusals_are_the_documented_bodies() -> None:
    fake, domain = fake_portal()
    invalid = vendor("crm.contact.get.invalid-id.json")
    assert call(fake, domain, "crm.contact.get", {"id": ""}) == (False, (400, *invalid.values()))
    not_found = vendor("crm.lead.get.not-found.json")
    assert call(fake, domain, "crm.lead.get", {"id": "123"}) == (False, (400, *not_found.values()))
    missing = vendor("imopenlines.session.history.get.missing-param.json")
    assert call(fake, domain, "imopenlines.session.history.get", {}) == (False, (400, *missing.values()))
    documented = {e["error"]: e["error_description"] for e in vendor("imopenlines.session.history.get.errors.json")}
    fake.portals[domain].history_denied.add(321)
    ok, (_, code, description) = call(fake, domain, "imopenlines.session.history.get", {"SESSION_ID": "321"})
    assert not ok
    assert documented[code] == description


def test_the_fakes_batch_answer_has_the_documented_shape() -> None:
    fake, domain = fake_portal()
    fake.portals[domain].leads[123] = vendor("crm.lead.get.json")["result"]
    token = fake.issue_tokens(domain, "client")["access_token"]
    body = json.dumps({"auth": token, "cmd": {"e": "crm.lead.get?id=123", "c": "crm.contact.get?id=0"}}).encode()
    request = HttpRequest(
        "POST", domain, "/rest/batch", "", {}, {"content-type": "application/json"}, body, time.time()
    )
    answer = json.loads(fake.handle(request).body)
    documented = vendor("batch.json")
    assert set(answer) == set(documented)
    assert set(answer["result"]) == set(documented["result"]["result"] and documented["result"])
    assert answer["result"]["result"]["e"]["ID"] == "123"
    assert answer["result"]["result_error"]["c"] == vendor("crm.contact.get.invalid-id.json")
    assert "operating" in answer["result"]["result_time"]["e"]
    assert "operating" not in answer["time"] or answer["time"]["operating"] == 0  # the outer batch is not billed


def test_a_null_contact_id_resolves_to_the_whole_lead_and_reads_contact_1() -> None:
    """The documented lead has ``CONTACT_ID: null``: Bitrix24 stops at the lead and the CRM casts it to 1."""
    lead = vendor("crm.lead.get.json")["result"]
    assert lead["CONTACT_ID"] is None
    resolved = batch_reference({"id": "$result[e][CONTACT_ID]"}, {"e": lead})
    assert resolved == {"id": lead}
    assert php_intval(resolved["id"]) == 1
    assert batch_reference({"id": "$result[e][ID]"}, {"e": lead}) == {"id": "123"}
    # a failed activity read: the walk stops at every result so far
    assert batch_reference({"S": "$result[a][0][ASSOCIATED_ENTITY_ID]"}, {"e": lead}) == {"S": {"e": lead}}
    assert batch_reference({"S": "$result[a][0][ASSOCIATED_ENTITY_ID]"}, {"a": []}) == {"S": []}
    assert batch_reference({"q": "x-$result[e][ID]-y"}, {"e": lead}) == {"q": "x-123-y"}


@given(
    st.recursive(
        st.none() | st.text(max_size=5) | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(max_size=3), c)
    )
)
def test_php_intval_and_references_take_anything(value: Any) -> None:
    assert isinstance(php_intval(value), int)
    batch_reference({"id": "$result[x][a][0]"}, {"x": value})


# ---------------------------------------------------------------- a chained read that went wrong is never trusted

INTEGRATION = Integration(
    integration_id="b24-vendor",
    crm="bitrix24",
    crm_domain="vendor.bitrix24.com",
    traffic_type="source",
    default_target=TrafficTarget(source_id=501, site_id=601),
    account_id="member-vendor",
)


def message(entity_id: str = "123") -> InboxMessage:
    return InboxMessage(
        integration_id=INTEGRATION.integration_id,
        crm="bitrix24",
        account="member-vendor",
        event="ONCRMLEADADD",
        entity_type="lead",
        entity_id=entity_id,
        received_at=datetime(2026, 3, 11, tzinfo=UTC).isoformat(),
        payload={},
    )


def activity(session: int) -> dict[str, Any]:
    return {
        "ID": "20",
        "ASSOCIATED_ENTITY_ID": str(session),
        "PROVIDER_PARAMS": {"USER_CODE": f"livechat|1|{session}|123"},
        "RESULT_SOURCE_ID": "livechat",
    }


def contact_1() -> dict[str, Any]:
    contact = copy.deepcopy(vendor("crm.contact.get.json")["result"])
    contact["ID"] = "1"
    return contact


def served(*, contact: Any = None, activities: Any = None, history: Any = None, errors: Any = None) -> BatchResult:
    results = {"x0_e": vendor("crm.lead.get.json")["result"]}
    for key, value in (("x0_c", contact), ("x0_a", activities), ("x0_h", history)):
        if value is not None:
            results[key] = value
    return BatchResult(results=results, errors=errors or {}, commands=commands(message(), "x0_"))


def test_contact_1_is_never_put_on_a_lead_without_a_contact() -> None:
    built = build_bitrix_lead(message(), INTEGRATION, served(contact=contact_1(), activities=[]), "x0_", True)
    assert isinstance(built, BitrixLead)
    assert built.lead.contact.name is None
    assert built.lead.contact.phones == ["+15454777777"]  # the lead's own phone, not contact 1's
    assert built.lead.contact.emails == []


def test_another_sessions_history_is_never_put_on_a_lead() -> None:
    history = vendor("imopenlines.session.history.get.json")["result"]
    assert history["sessionId"] == 321
    wrong = build_bitrix_lead(message(), INTEGRATION, served(activities=[activity(999)], history=history), "x0_", True)
    assert isinstance(wrong, BitrixLead)
    assert wrong.lead.chat is None or wrong.lead.chat.messages == []
    right = build_bitrix_lead(message(), INTEGRATION, served(activities=[activity(321)], history=history), "x0_", True)
    assert isinstance(right, BitrixLead)
    assert right.lead.chat is not None
    assert right.lead.chat.messages


@pytest.mark.parametrize(
    ("error", "meaning"),
    [
        (
            {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."},
            RateLimited,
        ),
        ({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, RateLimited),
        ({"error": "", "error_description": "Access denied."}, InsufficientRights),
        ({"error": "insufficient_scope", "error_description": ""}, InsufficientRights),
        (
            {"error": "ACCESS_DENIED", "error_description": "REST API is available only on commercial plans"},
            AccountBlocked,
        ),
        ({"error": "", "error_description": "Not found"}, NotFound),
    ],
)
def test_a_refused_entity_or_activity_read_is_never_taken_for_nothing(
    error: dict[str, str], meaning: type[Exception]
) -> None:
    entity_refused = BatchResult(results={}, errors={"x0_e": error}, commands=commands(message(), "x0_"))
    with pytest.raises(meaning):
        build_bitrix_lead(message(), INTEGRATION, entity_refused, "x0_", True)
    if meaning is NotFound:
        return
    activity_refused = served(errors={"x0_a": error})
    with pytest.raises(meaning):
        build_bitrix_lead(message(), INTEGRATION, activity_refused, "x0_", True)


def test_a_refused_history_waits_then_goes_out_saying_why() -> None:
    refused = {"x0_h": {"error": "insufficient_scope", "error_description": ""}}
    waiting = build_bitrix_lead(
        message(), INTEGRATION, served(activities=[activity(321)], errors=refused), "x0_", False
    )
    assert waiting == HistoryRefused(code="insufficient_scope")
    out = build_bitrix_lead(message(), INTEGRATION, served(activities=[activity(321)], errors=refused), "x0_", True)
    assert isinstance(out, BitrixLead)
    assert out.history_refused == "insufficient_scope"
    limited = {"x0_h": {"error": "OPERATION_TIME_LIMIT", "error_description": ""}}
    with pytest.raises(RateLimited):
        build_bitrix_lead(message(), INTEGRATION, served(activities=[activity(321)], errors=limited), "x0_", True)


def test_the_activity_is_found_through_its_bindings() -> None:
    command = commands(message(), "x0_")["x0_a"]
    assert "filter[BINDINGS][0][OWNER_TYPE_ID]=1" in command
    assert "filter[BINDINGS][0][OWNER_ID]=123" in command
    assert "filter[PROVIDER_ID]=IMOPENLINES_SESSION" in command
    assert "order[ID]=ASC" in command


def test_a_client_holds_off_a_method_near_its_budget() -> None:
    operating = OperatingTimes(slow_down_at=1.0)
    operating.record("member-vendor", "crm.lead.get", {"operating": 2.0, "operating_reset_at": 4_000_000_000})
    client = BitrixClient(INTEGRATION, tokens=None, limiter=None, operating=operating)  # type: ignore[arg-type]
    with pytest.raises(RateLimited) as held:
        client.batch({"x": "crm.lead.get?id=1"})
    assert held.value.retry_after > 0
    assert client.requests_made == 0  # nothing was sent


def test_the_fakes_event_handlers_answer_as_documented() -> None:
    fake, domain = fake_portal()
    documented = vendor("event.get.answer.json")["result"]
    assert call(fake, domain, "event.bind", {"event": "ONCRMLEADADD", "handler": "https://h.example/x"}) == (
        True,
        vendor("event.bind.answer.json")["result"],
    )
    ok, listed = call(fake, domain, "event.get", {})
    assert ok
    assert set(listed[0]) == set(documented[0])
    error = vendor("event.bind.error.json")
    ok, refused = call(fake, domain, "event.bind", {"event": "ONNOSUCHEVENT", "handler": "https://h.example/x"})
    assert (ok, refused[1], refused[2]) == (False, error["error"], error["error_description"])
    ok, unbound = call(fake, domain, "event.unbind", {"event": "ONCRMLEADADD", "handler": "https://h.example/x"})
    assert ok
    assert set(unbound) == set(vendor("event.unbind.answer.json")["result"])


def test_the_documented_handlers_list_is_read_as_subscriptions() -> None:
    from leadbridge.crms.bitrix24.subscription import BitrixHookSubscriptions

    class Listed:
        def bound_events(self) -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = vendor("event.get.answer.json")["result"]
            return listed

    found = BitrixHookSubscriptions(Listed()).ours("https://www.my-domain.com/")  # type: ignore[arg-type]
    assert [(s.destination, s.events) for s in found] == [
        ("https://www.my-domain.com/handler/", frozenset({"ONCRMLEADADD"}))
    ]
