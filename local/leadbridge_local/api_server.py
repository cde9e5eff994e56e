"""``make api``: the whole set-up by hand on the local stack (local AWS and fake CRMs), no AWS account.

The integrations API under uvicorn at http://127.0.0.1:$API_PORT (default 8000, docs at /docs); the webhooks and
the OAuth callback at the local runner's printed address. Beside the API:

- ``GET /local/authorize/{integration_id}`` plays the CRM's consent page: the fake CRM gets the account and the
  integration's OAuth client, and the browser goes on to the stack's ``/oauth2/callback`` with a code, as after
  "Allow" in amoCRM or Bitrix24, so the connect completes;
- the worker drains the inbox every second and the scheduled jobs (recovery, backfill, token upkeep) run every
  ``LOCAL_SCHEDULE_SECONDS`` (default 60), as Lambda and EventBridge would, so a posted webhook becomes a lead, a
  resume goes through and a backfill progresses.

The README's "Try the set-up by hand" walks it with curl; tests/integration/test_api_walkthrough.py walks the same.
Stop with Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import threading
import zlib

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response

from leadbridge.aws.config import ApiConfig
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.composition import integrations_service
from leadbridge.contract.integration import Integration
from leadbridge.flows.api.app import create_app
from leadbridge_local.console import progress
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import consent_redirect


def local_account_id(integration: Integration) -> str:
    """The fake CRM's account id (amoCRM) or member id (Bitrix24) for an integration, stable across runs."""
    digest = zlib.crc32(integration.crm_domain.encode())
    return str(10_000_000 + digest % 90_000_000) if integration.crm == "amocrm" else f"{digest:08x}{digest:08x}"


def local_app(runner: LocalRunner) -> FastAPI:
    """The integrations API on the local stack, with the fake CRM's consent page beside it."""
    config = ApiConfig(
        integrations_table=runner.stack.ref("IntegrationsTable"),
        state_secret_arn=runner.stack.ref("StateSigningSecret"),
        inbox_queue_url=runner.stack.ref("InboxQueue"),
        public_base_url=runner.base_url,
        limits_table=runner.stack.ref("LimitsTable"),  # the pickers read the fake CRMs under the shared budget
    )
    app = create_app(lambda: integrations_service(config))
    integrations = DynamoIntegrations(config.integrations_table)

    @app.get("/local/authorize/{integration_id}", include_in_schema=False)
    def consent(integration_id: str) -> Response:
        integration = integrations.get(integration_id)
        if integration is None:
            return JSONResponse({"detail": "integration not found"}, status_code=404)
        return RedirectResponse(consent_redirect(runner, integration, local_account_id(integration)), status_code=302)

    return app


class Background(threading.Thread):
    """What Lambda's pollers and EventBridge do in AWS: drain the worker's queues, run the schedules."""

    def __init__(self, runner: LocalRunner, schedule_seconds: float) -> None:
        super().__init__(daemon=True, name="local-background")
        self.runner = runner
        self.schedule_seconds = schedule_seconds
        self.stop = threading.Event()

    def run(self) -> None:
        since_schedules = self.schedule_seconds  # the first pass runs them
        while not self.stop.wait(1.0):
            self.runner.drain(timeout=0.5)
            since_schedules += 1.0
            if since_schedules >= self.schedule_seconds:
                since_schedules = 0.0
                for plan in ("recovery", "backfill", "tokens"):
                    self.runner.run_schedule(plan, timeout=0.5)
                self.runner.drain(timeout=0.5)


def main() -> int:
    port = int(os.environ.get("API_PORT", "8000"))
    with LocalRunner() as runner:
        background = Background(runner, float(os.environ.get("LOCAL_SCHEDULE_SECONDS", "60")))
        background.start()
        progress(
            f"integrations API: http://127.0.0.1:{port}/integrations (docs: /docs); webhooks and OAuth callback: "
            f"{runner.base_url}; connect an integration: http://127.0.0.1:{port}/local/authorize/<integration_id>"
        )
        try:
            uvicorn.run(local_app(runner), host="127.0.0.1", port=port, log_level="info")
        finally:
            background.stop.set()
            background.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
