"""What both webhook functions do around their domain call: logs and metrics without secrets or personal data."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from leadbridge.aws.apigw import body_bytes, json_response, path_param
from leadbridge.flows.hooks.intake import HookResult
from leadbridge.http.ratelimit import OncePer

Accept = Callable[[str, str, bytes], HookResult]
UNRECORDED = frozenset({"unknown_integration", "body_too_large"})  # no integration to tell, or not read at all
SPARSE_REFUSALS = frozenset({"throttled"})  # written at most once per ``every_seconds`` per integration


class HookOutcomes(Protocol):
    def record_hook(self, integration_id: str, reason: str | None, ignored: Mapping[str, int]) -> None: ...


class SparseOutcomes:
    """The checklist needs to know that deliveries come, not each one. A delivery whose events all went to the inbox
    is not written here at all: the worker stamps it (``last_webhook_at``, its delivery time) with the batch's
    counters, so the 2 s path keeps one AWS request (the inbox's). What is written here: refusals and ignored events,
    each (a storm's refusals once per ``every_seconds``), and a delivery taken with nothing in it at most once per
    ``every_seconds`` per integration in this environment; after a refusal, that next delivery is written at once,
    so the checklist never shows a refusal as the latest word wrongly."""

    def __init__(self, inner: HookOutcomes, every_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.inner = inner
        self._taken = OncePer(every_seconds, clock)
        self._refused = OncePer(every_seconds, clock)

    def record_hook(self, integration_id: str, reason: str | None, ignored: Mapping[str, int]) -> None:
        # A storm's refusals: the status needs the fact, the metric counts them.
        if reason in SPARSE_REFUSALS and not self._refused.due(integration_id):
            return
        if reason is not None:
            self._taken.forget(integration_id)
        elif not ignored and not self._taken.due(integration_id):
            return
        self.inner.record_hook(integration_id, reason, ignored)


def handle_hook(
    event: dict[str, Any], accept: Accept, logger: Logger, metrics: Metrics, outcomes: HookOutcomes | None = None
) -> dict[str, Any]:
    integration_id = path_param(event, "integration_id")
    result = accept(integration_id, path_param(event, "secret"), body_bytes(event))
    # A delivery whose events went to the inbox is stamped by the worker that handles them, with its counters.
    taken_whole = result.status < 400 and result.accepted > 0 and not result.ignored
    if outcomes is not None and result.reason not in UNRECORDED and result.status < 500 and not taken_whole:
        # For the set-up checklist (a wrong URL, a wrong event, a missing token). Advice: never the answer's fault.
        with contextlib.suppress(Exception):
            outcomes.record_hook(integration_id, result.reason if result.status >= 400 else None, result.ignored)
    # The integration id is not secret; the path's secret segment and the body never reach a log line.
    logger.append_keys(integration_id=integration_id[:64])
    if result.status == 429:  # one integration over its share: an alarm of its own, not a rejection
        logger.warning("webhook throttled", extra={"status": result.status})
        metrics.add_metric(name="WebhookThrottled", unit=MetricUnit.Count, value=1)
    elif result.status >= 400:
        logger.warning("webhook rejected", extra={"status": result.status, "reason": result.reason})
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
    else:
        logger.info("webhook accepted", extra={"accepted": result.accepted, "ignored": result.ignored})
        metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
        if result.ignored:
            metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=sum(result.ignored.values()))
        if result.dropped:  # sent by the CRM but unusable: answered 2xx all the same, so the hook stays on
            logger.warning("webhook items dropped", extra={"dropped": result.dropped})
            metrics.add_metric(name="EventsDropped", unit=MetricUnit.Count, value=sum(result.dropped.values()))
    response = json_response(result.status, result.body)
    if result.status == 429:
        response["headers"] = {**response["headers"], "Retry-After": str(result.body.get("retry_after", 10))}
    return response
