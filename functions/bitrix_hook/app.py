"""POST /hooks/bitrix24/{integration_id}/{secret} : Bitrix24 ONCRMLEADADD / ONCRMDEALADD into the inbox."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.config import HookConfig
from leadbridge.aws.metrics import function_metrics
from leadbridge.aws.queues import InboxQueue
from leadbridge.aws.store.hook_admission import DynamoHookBudgets
from leadbridge.aws.store.integrations import CachedIntegrations, DynamoIntegrations
from leadbridge.flows.hooks.admission import tenant_admission
from leadbridge.flows.hooks.handler import SparseOutcomes, handle_hook
from leadbridge.flows.hooks.intake import accept_bitrix24

config = HookConfig.from_env()
integrations = CachedIntegrations(DynamoIntegrations(config.integrations_table), config.integration_cache_seconds)
inbox = InboxQueue(config.inbox_queue_url)
status = DynamoIntegrations(config.integrations_table)  # status writes; the first application token kept
outcomes = SparseOutcomes(status)
budgets = DynamoHookBudgets(config.limits_table) if config.limits_table else None
admit = tenant_admission(budgets, config.tenant_webhooks_per_second)  # one account's storm is not everyone's
logger = Logger()
metrics = function_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)  # never log_event: the path carries the webhook secret
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_hook(
        event,
        lambda integration_id, secret, body: accept_bitrix24(
            integrations, inbox, integration_id, secret, body, adopt=status, admit=admit
        ),
        logger,
        metrics,
        outcomes=outcomes,
    )
