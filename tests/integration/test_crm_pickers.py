"""The pickers: lists read from the customer's own CRM (over the fakes, through the API's routes), the settings
checked against them on save and every day, and the CRM's budget shared with the leads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge_local.fakes.amocrm import custom_field, pipeline
from leadbridge_local.fakes.base import Faults
from leadbridge_local.fakes.bitrix24 import userfield
from leadbridge_local.runner import LocalRunner
from tests.integration.crm_rules import bitrix24_bucket_overflows
from tests.integration.helpers import bitrix_fields, new_amo_integration, new_bitrix_integration, sample_body


def amo_settings(domain: str, field_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "crm": "amocrm",
        "crm_domain": domain,
        "client_id": "picker-client",
        "default_target": {"campaign_id": 1001},
        "session_field": {"field_id": field_id, "entity": "lead"},
        **changes,
    }


def put(runner: LocalRunner, integration_id: str, body: dict[str, Any]) -> Any:
    import httpx

    return httpx.put(f"{runner.base_url}/integrations/{integration_id}", json=body, timeout=30)


def status(runner: LocalRunner, integration_id: str) -> dict[str, Any]:
    answer = runner.get(f"/integrations/{integration_id}/status")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_amocrm_fields_of_every_page_and_the_pipelines(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    account = runner.amocrm.accounts[integration.crm_domain.split(".")[0]]
    account.custom_fields["leads"] += [custom_field(900_000 + i, f"Поле {i}", "numeric", "leads") for i in range(300)]
    account.pipelines.append(pipeline(4000001, "Вторая"))
    before = runner.amocrm.counts["api_requests"]

    fields = runner.get(f"/integrations/{integration.integration_id}/crm/fields")
    assert fields.status_code == 200, fields.text
    items = fields.json()["items"]
    assert len(items) == 303  # 301 lead fields over two pages of 250, and the contacts' phone and e-mail
    session = next(f for f in items if f["id"] == "778899")
    assert session == {
        "id": "778899",
        "name": "Сессия аналитики",
        "type": "text",
        "entity": "lead",
        "holds_session": True,
    }
    assert not next(f for f in items if f["id"] == "900000")["holds_session"]  # a number cannot hold the id

    pipelines = runner.get(f"/integrations/{integration.integration_id}/crm/pipelines").json()["items"]
    assert [p["name"] for p in pipelines] == ["Воронка", "Вторая"]
    assert {"id": "142", "name": "Успешно реализовано"} in pipelines[1]["stages"]

    again = runner.get(f"/integrations/{integration.integration_id}/crm/fields")
    assert again.json() == fields.json()
    assert runner.amocrm.counts["api_requests"] - before == 4  # lead fields x2, contact fields, pipelines: cached


def test_amocrm_channels_name_the_mapping_key_of_what_the_account_chats_through(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    subdomain = integration.crm_domain.split(".")[0]
    now = int(time.time())
    runner.amocrm.add_talk(
        subdomain, 501, lead_id=601, contact_id=701, origin="com.wazzup24.insta", created_at=now - 3600
    )
    runner.amocrm.add_chat_message_event(subdomain, 501, now - 3600)
    runner.amocrm.accounts[subdomain].sources.append({"id": 7, "name": "Наш канал", "origin_code": "amo.ext.3049_v2"})

    channels = runner.get(f"/integrations/{integration.integration_id}/crm/channels").json()["items"]
    by_origin = {c["origin"]: c for c in channels}
    assert by_origin["com.wazzup24.insta"] == {
        "key": "instagram",
        "name": "com.wazzup24.insta",
        "origin": "com.wazzup24.insta",
        "where": "account_chats",
    }
    assert by_origin["amo.ext.3049_v2"]["where"] == "account_source"
    assert by_origin["waba"] == {"key": "whatsapp", "name": "waba", "origin": "waba", "where": "known_origin"}


def test_bitrix24_lists_over_pages_lines_connectors_and_deal_categories(runner: LocalRunner) -> None:
    integration, _, _, _ = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    portal.userfields["lead"] = [userfield(100 + i, f"UF_CRM_{i}", "double", f"Поле {i}") for i in range(60)]
    portal.userfields["lead"].append(userfield(999, "UF_CRM_SESSION", "string", "Сессия"))
    portal.userfields["deal"] = [userfield(2000, "UF_CRM_DEAL_SESSION", "string", "Сессия сделки", "deal")]
    portal.open_lines.append({"ID": "3", "LINE_NAME": "Продажи"})
    portal.connectors["wz_whatsapp_a1b2"] = "Wazzup WhatsApp"
    portal.connected.add(("3", "wz_whatsapp_a1b2"))
    portal.categories.append({"id": 9, "name": "Опт", "sort": 200, "entityTypeId": 2, "isDefault": "N"})
    portal.statuses["DEAL_STAGE_9"] = [
        {"ID": "90", "ENTITY_ID": "DEAL_STAGE_9", "STATUS_ID": "C9:NEW", "NAME": "Новая", "SORT": "10"}
    ]

    fields = runner.get(f"/integrations/{integration.integration_id}/crm/fields").json()["items"]
    assert len(fields) == 62  # 61 lead fields over two pages of 50, and the deal's
    assert {
        "id": "UF_CRM_SESSION",
        "name": "Сессия",
        "type": "string",
        "entity": "lead",
        "holds_session": True,
    } in fields

    channels = runner.get(f"/integrations/{integration.integration_id}/crm/channels").json()["items"]
    assert sorted((c["origin"], c["key"], c["where"]) for c in channels) == [
        ("livechat", None, "open_line 1"),
        ("telegrambot", "telegram", "open_line 1"),
        ("wz_whatsapp_a1b2", "whatsapp", "open_line 3"),
    ]

    pipelines = runner.get(f"/integrations/{integration.integration_id}/crm/pipelines").json()["items"]
    assert [(p["id"], p["entity"]) for p in pipelines] == [("STATUS", "lead"), ("0", "deal"), ("9", "deal")]
    assert pipelines[2]["stages"] == [{"id": "C9:NEW", "name": "Новая"}]


def test_a_session_field_the_crm_does_not_have_is_refused_and_unknown_keys_are_flagged(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    path = integration.integration_id
    refused = put(runner, path, amo_settings(integration.crm_domain, 123456))
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "session_field_missing"
    assert refused.json()["field"] == "session_field.field_id"
    assert "123456" in refused.json()["message"]

    account = runner.amocrm.accounts[integration.crm_domain.split(".")[0]]
    account.custom_fields["leads"].append(custom_field(555, "Дата", "date", "leads"))
    unusable = put(runner, path, amo_settings(integration.crm_domain, 555))
    assert (unusable.status_code, unusable.json()["code"]) == (422, "session_field_unusable")

    targets = {"telegram": {"campaign_id": 1}, "telgram": {"campaign_id": 2}}
    saved = put(runner, path, amo_settings(integration.crm_domain, 778899, messenger_targets=targets))
    assert saved.status_code == 200, saved.text
    found = status(runner, path)
    assert found["settings_check"]["state"] == "ok"
    assert found["unknown_mapping_keys"] == ["telgram"]


def test_a_field_created_after_the_list_was_cached_is_accepted(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    assert runner.get(f"/integrations/{integration.integration_id}/crm/fields").status_code == 200  # now cached
    runner.amocrm.accounts[integration.crm_domain.split(".")[0]].custom_fields["leads"].append(
        custom_field(4242, "Новая сессия", "text", "leads")
    )
    assert put(runner, integration.integration_id, amo_settings(integration.crm_domain, 4242)).status_code == 200


def test_unreachable_crm_saves_with_the_check_pending_and_the_sweep_finishes_it(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    runner.amocrm.faults = Faults(ratio=1.0, kinds=("5xx",))  # amoCRM is down
    saved = put(runner, integration.integration_id, amo_settings(integration.crm_domain, 778899))
    assert saved.status_code == 200, saved.text
    assert status(runner, integration.integration_id)["settings_check"]["state"] == "pending"
    runner.amocrm.faults = Faults()
    runner.run_schedule("recovery", timeout=300)
    assert status(runner, integration.integration_id)["settings_check"]["state"] == "ok"


def test_a_field_deleted_after_it_was_chosen_is_found_by_the_daily_check(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    assert put(runner, integration.integration_id, amo_settings(integration.crm_domain, 778899)).status_code == 200
    account = runner.amocrm.accounts[integration.crm_domain.split(".")[0]]
    account.custom_fields["leads"] = [f for f in account.custom_fields["leads"] if f["id"] != 778899]
    runner.run_schedule("recovery", timeout=300)
    assert status(runner, integration.integration_id)["settings_check"]["state"] == "ok"  # checked today already

    integrations = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    stale = {"state": "ok", "checked_at": int(time.time()) - 86_401, "unknown_mapping_keys": [], "detail": ""}
    integrations.record_settings_check(integration.integration_id, stale)
    runner.run_schedule("recovery", timeout=300)
    found = status(runner, integration.integration_id)
    assert found["settings_check"]["state"] == "session_field_missing"
    assert "session_field_missing" in found["notices"]
    assert "778899" in found["settings_check"]["detail"]
    steps = {step["step"]: step["state"] for step in found["setup"]}
    assert steps["session_field"] == "failed"


def test_a_disconnected_integration_gets_409_and_a_crm_error_502(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    runner.amocrm.faults = Faults(ratio=1.0, kinds=("5xx",))
    try:
        failed = runner.get(f"/integrations/{integration.integration_id}/crm/pipelines")
    finally:
        runner.amocrm.faults = Faults()
    assert failed.status_code == 502, failed.text
    assert failed.json()["code"] == "crm_unavailable"
    assert "Bearer" not in failed.text
    assert "Traceback" not in failed.text

    assert runner.get(f"/integrations/{integration.integration_id}/crm/fields").status_code == 200
    assert httpx_delete(runner, integration.integration_id) == 204
    refused = runner.get(f"/integrations/{integration.integration_id}/crm/fields")
    assert (refused.status_code, refused.json()["code"]) == (409, "inactive")

    never, _, _ = new_amo_integration(runner)
    runner.amocrm.revoke_grants(never.crm_domain.split(".")[0])
    runner.amocrm.expire_access_tokens()
    revoked = runner.get(f"/integrations/{never.integration_id}/crm/channels")
    assert (revoked.status_code, revoked.json()["code"]) == (409, "reauth_required")


def httpx_delete(runner: LocalRunner, integration_id: str) -> int:
    import httpx

    return httpx.delete(f"{runner.base_url}/integrations/{integration_id}", timeout=30).status_code


def test_picker_reads_share_the_portal_budget_with_a_burst_of_leads(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    recent = (datetime.now(UTC) - timedelta(minutes=2)).isoformat(timespec="seconds")
    for lead_id in range(81_001, 81_061):
        runner.bitrix24.add_open_lines_lead(integration.crm_domain, lead_id, created=recent)
        body = sample_body(
            "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, lead_id)
        )
        assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    violations = runner.bitrix24.counts["limit_violations"]
    answers: list[int] = []

    def open_the_settings_page() -> None:
        for kind in ("fields", "channels", "pipelines") * 3:
            answers.append(runner.get(f"/integrations/{integration.integration_id}/crm/{kind}").status_code)

    pages = threading.Thread(target=open_the_settings_page)
    pages.start()
    runner.drain(timeout=300)
    pages.join(120)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == 60
    assert answers == [200] * 9
    assert runner.bitrix24.counts["limit_violations"] == violations
    sends = runner.crm_sends(f"bitrix24:{integration.crm_domain.lower()}")
    assert bitrix24_bucket_overflows(sends) == 0


def test_replay_serves_the_pickers_from_recorded_answers(tmp_path: Path) -> None:
    """``make replay ... CRM_DATA=<dir> PICKERS=<file>``: a capture directory in the replay layout gets the pickers'
    recorded answers by adding files (events/crm_pickers) next to the entities' (events/crm_data)."""
    answers = {}
    for crm, capture in (
        ("amocrm", "events/amo_hook/talk_add.json"),
        ("bitrix24", "events/bitrix_hook/lead_telegram_without_session.json"),
    ):
        data = tmp_path / crm
        shutil.copytree(Path("events/crm_data") / crm, data)
        shutil.copytree(Path("events/crm_pickers") / crm, data, dirs_exist_ok=True)
        out = tmp_path / f"{crm}-pickers.json"
        command = [sys.executable, "-m", "leadbridge_local.replay", "--crm", crm, "--crm-data", str(data)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LEADBRIDGE_"))}  # its own stack
        env["PYTHONPATH"] = "layers/leadbridge:local"
        done = subprocess.run(
            [*command, "--pickers", str(out), capture],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.splitlines()[0])["crm"] == crm  # the capture's lead, from the entities' files
        answers[crm] = {key.rsplit(" ", 1)[1]: answer for key, answer in json.loads(out.read_text()).items()}

    amo = answers["amocrm"]
    assert {f["id"] for f in amo["fields"]["body"]["items"]} == {"4439091", "4440043", "3", "5"}
    assert amo["pipelines"]["body"]["items"][0]["id"] == "3177727"
    b24 = answers["bitrix24"]
    assert {(c["origin"], c["where"]) for c in b24["channels"]["body"]["items"]} == {
        ("livechat", "open_line 15"),
        ("telegrambot", "open_line 15"),
    }
    assert "UF_CRM_HELLO_WORLD" in {f["id"] for f in b24["fields"]["body"]["items"]}
