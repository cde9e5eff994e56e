"""Jobs queue -> one integration's scheduled work per record (sweep, backfill step, token upkeep, shard expansion)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.config import JobsConfig
from leadbridge.aws.metrics import function_metrics
from leadbridge.composition import scheduled_jobs

logger = Logger()
metrics = function_metrics()
batch = scheduled_jobs(JobsConfig.from_env(), metrics)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return batch.process(event, context)
