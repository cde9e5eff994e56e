"""What both webhook functions do around their domain call: logs and metrics without secrets or personal data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from leadbridge.aws.apigw import body_bytes, json_response, path_param
from leadbridge.flows.hooks.intake import HookResult

Accept = Callable[[str, str, bytes], HookResult]
UNRECORDED = frozenset({"unknown_integration", "body_too_large"})  # no integration to tell, or not read at all


class HookOutcomes(Protocol):
    def record_hook(self, integration_id: str, reason: str | None, ignored: Mapping[str, int]) -> None: ...


def handle_hook(
    event: dict[str, Any], accept: Accept, logger: Logger, metrics: Metrics, outcomes: HookOutcomes | None = None
) -> dict[str, Any]:
    integration_id = path_param(event, "integration_id")
    result = accept(integration_id, path_param(event, "secret"), body_bytes(event))
    if outcomes is not None and result.reason not in UNRECORDED and result.status < 500:
        # For the set-up checklist (a wrong URL, a wrong event, a missing token). Advice: never the answer's fault.
        with contextlib.suppress(Exception):
            outcomes.record_hook(integration_id, result.reason if result.status >= 400 else None, result.ignored)
    # The integration id is not secret; the path's secret segment and the body never reach a log line.
    logger.append_keys(integration_id=integration_id[:64])
    if result.status >= 400:
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
    return json_response(result.status, result.body)
