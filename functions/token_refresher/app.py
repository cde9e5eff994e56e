"""Schedule -> refresh every OAuth token that is due (index query, leases, bounded concurrency)."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.composition import token_refresher
from leadbridge.config import RefresherConfig
from leadbridge.metrics import function_metrics
from leadbridge.oauth.refresh_run import refresh_due_tokens

logger = Logger()
metrics = function_metrics()
config = RefresherConfig.from_env()
tokens, integrations, provider = token_refresher(config, metrics)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    report = refresh_due_tokens(tokens, integrations, provider, config.refresh_concurrency)
    for name, value in asdict(report).items():
        metrics.add_metric(name=f"Tokens{name.capitalize()}", unit=MetricUnit.Count, value=value)
    logger.info("refresh run", extra=asdict(report))
    return asdict(report)
