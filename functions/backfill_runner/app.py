"""Schedule -> advance every running backfill within its share of the CRM's limit, until this run's time is up."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.composition import backfill_runner
from leadbridge.config import BackfillConfig
from leadbridge.metrics import function_metrics

logger = Logger()
metrics = function_metrics()
runner = backfill_runner(BackfillConfig.from_env(), metrics)
SAFETY_SECONDS = 15.0  # left for the last writes and the metrics flush


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    seconds = context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
    reports = runner.run(seconds) if seconds > 0 else []
    metrics.add_metric(name="BackfillImported", unit=MetricUnit.Count, value=sum(r.imported for r in reports))
    metrics.add_metric(name="BackfillErrors", unit=MetricUnit.Count, value=sum(r.errors for r in reports))
    return {"backfills": len(reports), "reports": [asdict(r) for r in reports]}
