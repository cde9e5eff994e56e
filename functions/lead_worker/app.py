"""SQS inbox -> normalized leads: one per conversation, partial batch failures reported to Lambda."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.config import WorkerConfig
from leadbridge.aws.metrics import function_metrics
from leadbridge.composition import lead_worker

logger = Logger()
metrics = function_metrics()
batch = lead_worker(WorkerConfig.from_env(), metrics)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return batch.process(event, context)
