"""POST /hooks/amocrm/{integration_id}/{secret}/ : amoCRM talk webhooks into the inbox, answered well within 2 s."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.config import HookConfig
from leadbridge.hook_handler import handle_hook
from leadbridge.intake import accept_amocrm
from leadbridge.metrics import function_metrics
from leadbridge.queues import InboxQueue
from leadbridge.store.integrations import CachedIntegrations, DynamoIntegrations

config = HookConfig.from_env()
integrations = CachedIntegrations(DynamoIntegrations(config.integrations_table), config.integration_cache_seconds)
inbox = InboxQueue(config.inbox_queue_url)
logger = Logger()
metrics = function_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)  # never log_event: the path carries the webhook secret
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_hook(
        event,
        lambda integration_id, secret, body: accept_amocrm(integrations, inbox, integration_id, secret, body),
        logger,
        metrics,
    )
