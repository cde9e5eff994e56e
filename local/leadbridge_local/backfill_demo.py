"""``make backfill`` without ``STACK``: a 30-day backfill of both demo integrations on the local stack.

The fake CRMs get a month of conversations that no webhook ever announced (amoCRM talks, Bitrix24 Open Lines
leads, and a web-form lead that is no chat). Both backfills are started through the integrations API; the
scheduler's backfill plan runs (one job per running backfill, side by side) until they are done (its progress
printed after each run), the worker drains the inbox, and the leads are printed (each marked ``backfill`` in ``out/backfill-leads.jsonl``).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from leadbridge_local.console import OUT_DIR, capture_function_logs, progress
from leadbridge_local.demo import EVENTS, render_table

DAY = 86_400
AMO_TALKS = range(9_001, 9_009)
B24_LEADS = range(9_101, 9_109)


def seed_month(runner: Any, now: int) -> None:
    for i, talk in enumerate(AMO_TALKS):
        created = now - 29 * DAY + i * 3 * DAY
        runner.amocrm.add_talk(
            "example",
            talk,
            lead_id=talk * 10,
            contact_id=talk * 100,
            origin="telegram" if i % 2 else "com.wazzup24.wz",
            created_at=created,
            lead={},
            contact={"name": f"Клиент {talk}"},
        )
    for i, lead_id in enumerate(B24_LEADS):
        stamp = datetime.fromtimestamp(now - 28 * DAY + i * 3 * DAY, UTC).isoformat(timespec="seconds")
        runner.bitrix24.add_open_lines_lead("example.bitrix24.ru", lead_id, created=stamp)
    runner.bitrix24.portals["example.bitrix24.ru"].leads[9_199] = {
        "ID": "9199",
        "SOURCE_ID": "WEB",
        "DATE_CREATE": datetime.fromtimestamp(now - 10 * DAY, UTC).isoformat(timespec="seconds"),
    }


def main() -> int:
    stdout, log_path = capture_function_logs("backfill-functions")
    from leadbridge_local.demo_setup import install_demo_integrations  # noqa: PLC0415 - after log capture
    from leadbridge_local.runner import LocalRunner  # noqa: PLC0415

    now = int(time.time())
    period = {
        "from": datetime.fromtimestamp(now - 30 * DAY, UTC).isoformat(),
        "to": datetime.fromtimestamp(now, UTC).isoformat(),
    }
    with LocalRunner(
        amocrm_data=EVENTS / "crm_data" / "amocrm", bitrix24_data=EVENTS / "crm_data" / "bitrix24"
    ) as runner:
        install_demo_integrations(runner)
        seed_month(runner, now)
        for integration_id in ("demo-amocrm", "demo-bitrix24"):
            answer = runner.post(
                f"/integrations/{integration_id}/backfill", json.dumps(period), content_type="application/json"
            )
            progress(f"POST /integrations/{integration_id}/backfill: {answer.status_code} {answer.text}")
        states: dict[str, Any] = {}
        for run in range(1, 20):
            runner.run_schedule("backfill")
            for integration_id in ("demo-amocrm", "demo-bitrix24"):
                states[integration_id] = runner.get(f"/integrations/{integration_id}/backfill").json()
                found = states[integration_id]
                progress(
                    f"  run {run} {integration_id}: {found['state']}, {found['done']} imported, "
                    f"{found['already_known']} already known, {found['remaining']} to go of {found['total']}"
                )
            if all(s["state"] != "running" for s in states.values()):
                break
        runner.drain(timeout=120)
        leads = runner.take_leads()
    out = OUT_DIR / "backfill-leads.jsonl"
    out.write_text("".join(json.dumps(lead, ensure_ascii=False) + "\n" for lead in leads), encoding="utf-8")
    stdout.write(render_table(leads) + "\n\n")
    imported = sum(1 for lead in leads if lead.get("backfill"))
    stdout.write(f"{len(leads)} leads, {imported} imported by the backfills; JSON lines in {out}\n")
    stdout.write(f"function logs: {log_path}\n")
    stdout.flush()
    done = all(s.get("state") == "done" for s in states.values())
    return 0 if done and imported else 1


if __name__ == "__main__":
    sys.exit(main())
