"""POST /hooks/amocrm/{integration_id}/{secret}/ : amoCRM talk and message webhooks into the inbox; .../dp: digital
pipeline triggers; .../salesbot: Salesbot ``widget_request`` with the session. Answered well within 2 s."""

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.apigw import header
from leadbridge.aws.config import AmoHookConfig
from leadbridge.aws.metrics import function_metrics
from leadbridge.aws.queues import InboxQueue
from leadbridge.aws.store.bot_sessions import DynamoBotSessions
from leadbridge.aws.store.hook_admission import DynamoHookBudgets
from leadbridge.aws.store.integrations import CachedIntegrations, DynamoIntegrations
from leadbridge.flows.hooks.admission import tenant_admission
from leadbridge.flows.hooks.handler import Accept, SparseOutcomes, handle_hook
from leadbridge.flows.hooks.intake import accept_amocrm
from leadbridge.flows.hooks.pipeline_intake import accept_salesbot, accept_trigger

config = AmoHookConfig.from_env()
integrations = CachedIntegrations(DynamoIntegrations(config.integrations_table), config.integration_cache_seconds)
inbox = InboxQueue(config.inbox_queue_url)
bot_continues = InboxQueue(config.bot_continue_queue_url)
sessions = DynamoBotSessions(config.ledger_table, config.ledger_retention_days)
status = DynamoIntegrations(config.integrations_table)  # status writes: dropped items, deliveries and refusals
outcomes = SparseOutcomes(status)
budgets = DynamoHookBudgets(config.limits_table) if config.limits_table else None
admit = tenant_admission(budgets, config.tenant_webhooks_per_second)  # one account's storm is not everyone's
logger = Logger()
metrics = function_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)  # never log_event: the path carries the webhook secret
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = str(event.get("routeKey", ""))
    content_type = header(event, "content-type")
    accept: Accept
    if route.endswith("/dp"):
        accept = partial(accept_trigger, integrations, inbox, content_type=content_type)
    elif route.endswith("/salesbot"):
        accept = partial(accept_salesbot, integrations, bot_continues, sessions, content_type=content_type)
    else:
        accept = partial(accept_amocrm, integrations, inbox, dropped_to=status, admit=admit)
    return handle_hook(event, accept, logger, metrics, outcomes=outcomes)
