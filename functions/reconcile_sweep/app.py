"""Schedule -> enqueue recent conversations no webhook brought in (both CRMs); amoCRM's hourly drift check."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.composition import reconciler
from leadbridge.config import SweepConfig
from leadbridge.metrics import function_metrics

logger = Logger()
metrics = function_metrics()
sweep = reconciler(SweepConfig.from_env(), metrics)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = sweep.run()
    recovered = sum(r.enqueued for r in run.reports)
    metrics.add_metric(name="SweepRecovered", unit=MetricUnit.Count, value=recovered)
    metrics.add_metric(name="SweepFailed", unit=MetricUnit.Count, value=len(run.failed))
    metrics.add_metric(name="UnsortedChatsWithoutLead", unit=MetricUnit.Count, value=run.unsorted_chats_without_lead)
    return {
        "integrations": len(run.reports),
        "recovered": recovered,
        "failed": len(run.failed),
        "reports": [asdict(r) for r in run.reports],
        "drift": [{"integration_id": i, **asdict(r), "missing": r.missing} for i, r in run.drift],
    }
