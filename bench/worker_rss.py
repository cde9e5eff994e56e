"""Child process of bench/run.py: the lead worker alone, draining the local inbox; prints its peak RSS in MB.

It reaches the local stack (moto and the fake CRMs, running in the parent) only over HTTP, so its memory is the
worker's: the handler module, the layer, boto3, httpx and the batches it processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: on Linux that survives execve and would
    report the forked parent's peak (the whole local stack)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the worker's logs are not the figure
    spec = importlib.util.spec_from_file_location("worker_app", REPO / "functions/lead_worker/app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from leadbridge_local.lambda_events import LambdaContextStub, sqs_event

    sqs = boto3.client("sqs")
    inbox, arn = os.environ["INBOX_QUEUE_URL"], os.environ["BENCH_INBOX_ARN"]
    handled, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < 5:
        batch = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not batch:
            time.sleep(0.2)
            continue
        idle_since = time.monotonic()
        result = module.handler(sqs_event(batch, arn), LambdaContextStub("LeadWorkerFunction"))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for message in batch:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
    peak_mb = peak_rss_mb()
    sys.__stdout__.write(json.dumps({"handled": handled, "peak_rss_mb": round(peak_mb, 1)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
