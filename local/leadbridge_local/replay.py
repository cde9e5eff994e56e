"""``make replay CRM=amocrm|bitrix24 FILES="..." [CRM_DATA=dir]``: captured webhooks through the local pipeline.

Each file is a raw webhook body exactly as the CRM sent it (``.form``, urlencoded) or an API Gateway HTTP API
event (``.json``). For every account named in the files a local integration is set up to match it (amoCRM
``account[subdomain]``/``account[id]``; Bitrix24 ``auth[domain]``/``auth[member_id]``/``auth[application_token]``)
and connected to the fake CRM, which serves the recorded responses in ``CRM_DATA``. Every normalized lead is
printed as one JSON line on stdout; progress and a summary go to stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leadbridge.crms.formdata import FormDataError, parse_form, text
from leadbridge_local.console import capture_function_logs, progress

if TYPE_CHECKING:
    from leadbridge_local.runner import LocalRunner


@dataclass(frozen=True)
class Capture:
    path: Path
    body: bytes


@dataclass(frozen=True)
class Account:
    crm: str
    domain: str
    account_id: str | None
    application_token: str | None

    @property
    def integration_id(self) -> str:
        return "replay-" + re.sub(r"[^a-z0-9-]", "-", self.domain.lower())[:50]


def read_capture(path: Path) -> Capture:
    raw = path.read_bytes()
    if path.suffix == ".json":
        event = json.loads(raw)
        body = event.get("body") or ""
        return Capture(path, base64.b64decode(body) if event.get("isBase64Encoded") else body.encode())
    return Capture(path, raw.strip(b"\r\n"))


def account_of(crm: str, body: bytes) -> Account | None:
    try:
        form = parse_form(body)
    except FormDataError:
        return None
    if crm == "amocrm":
        subdomain = text(form, "account", "subdomain")
        if subdomain is None:
            return None
        link = text(form, "account", "_links", "self") or ""
        host = re.sub(r"^https?://", "", link).split("/")[0].lower()
        domain = host if host.startswith(subdomain.lower() + ".") else f"{subdomain.lower()}.amocrm.ru"
        return Account("amocrm", domain, text(form, "account", "id"), None)
    portal = text(form, "auth", "domain")
    if portal is None:
        return None
    return Account("bitrix24", portal.lower(), text(form, "auth", "member_id"), text(form, "auth", "application_token"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--crm", choices=["amocrm", "bitrix24"], required=True)
    parser.add_argument("--crm-data", type=Path, default=None)
    parser.add_argument(
        "--pickers",
        type=Path,
        default=None,
        help="also ask each account's /crm/fields, /crm/channels and /crm/pipelines; write the answers here",
    )
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)

    stdout, log_path = capture_function_logs("replay-functions")
    from leadbridge_local.replay_setup import connect_replay_account  # noqa: PLC0415 - after log capture
    from leadbridge_local.runner import LocalRunner  # noqa: PLC0415

    captures = [read_capture(path) for path in args.files]
    data = {f"{args.crm}_data": args.crm_data.resolve()} if args.crm_data else {}
    # Captures are posted as fast as this machine goes, not at a CRM's pace: no integration's share applies.
    with LocalRunner(**data, parameters={"TenantWebhooksPerSecond": "100000"}) as runner:
        secrets: dict[Account, str] = {}
        statuses: dict[int, int] = {}
        for capture in captures:
            account = account_of(args.crm, capture.body)
            if account is None:
                progress(f"  {capture.path}: no account in the body; posting it to an unknown integration")
                path = f"/hooks/{args.crm}/replay-unknown/none/"
            else:
                if account not in secrets:
                    secrets[account] = connect_replay_account(
                        runner, account.crm, account.domain, account.account_id, account.application_token
                    )
                path = f"/hooks/{args.crm}/{account.integration_id}/{secrets[account]}/"
            response = runner.post(path, capture.body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            progress(f"  {capture.path}: {response.status_code} {response.text}")
        handled = runner.drain(timeout=600)
        leads = runner.take_leads()
        dead = runner.take_messages("InboxDeadLetterQueue")
        if args.pickers is not None:
            write_pickers(runner, [account.integration_id for account in secrets], args.pickers)
    for lead in leads:
        stdout.write(json.dumps(lead, ensure_ascii=False) + "\n")
    stdout.flush()
    if not leads:
        progress("no lead was produced")
    for message in dead:
        reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "receive limit reached")
        progress(f"  dead-lettered: {reason}")
    progress(
        f"replayed {len(captures)} files (answers {statuses}); {handled} inbox events; "
        f"{len(leads)} leads; {len(dead)} dead-lettered; function logs in {log_path}"
    )
    return 0


PICKERS = ("fields", "channels", "pipelines")


def write_pickers(runner: LocalRunner, integration_ids: list[str], path: Path) -> None:
    """Each replayed account's pickers, as the cabinet would get them (status and body per route)."""
    answers: dict[str, dict[str, object]] = {}
    for integration_id in integration_ids:
        for kind in PICKERS:
            response = runner.get(f"/integrations/{integration_id}/crm/{kind}")
            answers[f"{integration_id} {kind}"] = {"status": response.status_code, "body": response.json()}
            items = response.json().get("items") if response.status_code == 200 else None
            progress(f"  {integration_id} crm/{kind}: {response.status_code}, {len(items or [])} items")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(answers, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    progress(f"pickers' answers in {path}")


if __name__ == "__main__":
    sys.exit(main())
