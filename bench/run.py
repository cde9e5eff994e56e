"""Benchmarks (not tests): figures as ratios against baselines measured in the same run. Writes bench/results.json.

- hook_p50_ratio: amo-hook's warm p50 on the local stack (handler invoked with API Gateway events, real boto3 to
  the local SQS/DynamoDB) over a bare SQS SendMessage's p50 to the same queue; hook_p99_ms alongside.
- hook_import_ratio, worker_import_ratio: import time of each function's module in a fresh process over a bare
  ``import boto3`` in a fresh process (medians of several runs).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
RUNS = 400
IMPORT_RUNS = 7


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def import_seconds(statement: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def import_figures() -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'layers/leadbridge'}:{REPO / 'local'}",
        "INTEGRATIONS_TABLE": "t",
        "LEDGER_TABLE": "l",
        "INBOX_QUEUE_URL": "https://sqs/q",
        "INBOX_DLQ_URL": "https://sqs/d",
        "LEADS_QUEUE_URL": "https://sqs/l",
        "OAUTH_REDIRECT_URI": "https://x/oauth2/callback",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Leadbridge",
    }
    load = "import importlib.util as u; s = u.spec_from_file_location('app', '{}'); m = u.module_from_spec(s); s.loader.exec_module(m)"
    boto = import_seconds("import boto3", env)
    hook = import_seconds(load.format(REPO / "functions/amo_hook/app.py"), env)
    worker = import_seconds(load.format(REPO / "functions/lead_worker/app.py"), env)
    return {
        "import_boto3_ms": round(boto * 1000, 1),
        "hook_import_ms": round(hook * 1000, 1),
        "worker_import_ms": round(worker * 1000, 1),
        "hook_import_ratio": round(hook / boto, 2),
        "worker_import_ratio": round(worker / boto, 2),
    }


def latency_figures() -> dict[str, float]:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - function logs are not part of the figures
    from leadbridge.integration import Integration  # noqa: PLC0415
    from leadbridge_local.lambda_events import http_api_event  # noqa: PLC0415
    from leadbridge_local.runner import LocalRunner  # noqa: PLC0415
    from leadbridge_local.seed import install_integration  # noqa: PLC0415

    with LocalRunner() as runner:
        integration = Integration(
            integration_id="bench-amo", crm="amocrm", crm_domain="bench.amocrm.ru", account_id="1"
        )
        secret = install_integration(runner, integration)
        sqs = runner.stack.client("sqs")
        inbox = runner.stack.ref("InboxQueue")
        route = "/hooks/amocrm/{integration_id}/{secret}/"
        bare, hook = [], []
        for n in range(RUNS):
            start = time.perf_counter()
            sqs.send_message(
                QueueUrl=inbox, MessageBody="x" * 400, MessageGroupId="bench", MessageDeduplicationId=f"b{n}"
            )
            bare.append(time.perf_counter() - start)
            body = urlencode(
                {
                    "talk[add][0][talk_id]": str(n + 1),
                    "talk[add][0][entity_id]": "5",
                    "account[subdomain]": "bench",
                    "account[id]": "1",
                }
            ).encode()
            event = http_api_event(
                "POST",
                route,
                f"/hooks/amocrm/bench-amo/{secret}/",
                {"integration_id": "bench-amo", "secret": secret},
                "",
                {"content-type": "application/x-www-form-urlencoded"},
                body,
            )
            start = time.perf_counter()
            response = runner.invoke("AmoHookFunction", event)
            hook.append(time.perf_counter() - start)
            assert response["statusCode"] == 200
        warm_bare, warm_hook = bare[20:], hook[20:]
    sys.stdout = sys.__stdout__
    return {
        "sqs_send_p50_ms": round(percentile(warm_bare, 0.5) * 1000, 2),
        "hook_p50_ms": round(percentile(warm_hook, 0.5) * 1000, 2),
        "hook_p99_ms": round(percentile(warm_hook, 0.99) * 1000, 2),
        "hook_p50_ratio": round(percentile(warm_hook, 0.5) / percentile(warm_bare, 0.5), 2),
    }


def main() -> int:
    results = {**import_figures(), **latency_figures()}
    (REPO / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
