"""``make api``: the integrations API under uvicorn, on the local stack (local AWS and fake CRMs), for trying it by hand.

The webhooks and the OAuth callback are served by the local runner at the printed address; the API at
http://127.0.0.1:$API_PORT (default 8000), with its docs at /docs. Stop with Ctrl-C.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from leadbridge.aws.config import ApiConfig
from leadbridge.composition import integrations_service
from leadbridge.flows.api.app import create_app
from leadbridge_local.console import progress
from leadbridge_local.runner import LocalRunner


def main() -> int:
    port = int(os.environ.get("API_PORT", "8000"))
    with LocalRunner() as runner:
        config = ApiConfig(
            integrations_table=runner.stack.ref("IntegrationsTable"),
            state_secret_arn=runner.stack.ref("StateSigningSecret"),
            inbox_queue_url=runner.stack.ref("InboxQueue"),
            public_base_url=runner.base_url,
        )
        progress(
            f"webhooks and OAuth callback: {runner.base_url}; integrations API: http://127.0.0.1:{port}/integrations"
        )
        uvicorn.run(create_app(lambda: integrations_service(config)), host="127.0.0.1", port=port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
