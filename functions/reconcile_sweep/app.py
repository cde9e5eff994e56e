"""Schedule -> enqueue what Bitrix24 created recently that no webhook brought in (Bitrix24 never resends)."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.composition import reconciler
from leadbridge.config import SweepConfig

logger = Logger()
metrics = Metrics()
sweep = reconciler(SweepConfig.from_env(), metrics)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reports = sweep.run()
    recovered = sum(r.enqueued for r in reports)
    metrics.add_metric(name="SweepRecovered", unit=MetricUnit.Count, value=recovered)
    return {"integrations": len(reports), "recovered": recovered, "reports": [asdict(r) for r in reports]}
