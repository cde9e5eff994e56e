"""POST /hooks/amojo/{scope_id}: managers' replies from amoCRM's Chats API onto the replies queue (signed by amojo
with the channel secret; answered at once: amojo sends each hook once and never again)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.apigw import body_bytes, header, json_response, path_param
from leadbridge.aws.config import ChatHookConfig
from leadbridge.aws.metrics import function_metrics
from leadbridge.aws.queues import RepliesQueue
from leadbridge.aws.secret_values import secret_string_fresh
from leadbridge.aws.store.chat_scopes import DynamoChatScopes
from leadbridge.aws.store.reply_hooks import DynamoReplyHooks
from leadbridge.crms.amocrm.chat_channel.credentials import ChannelNotConfigured, CredentialsSource
from leadbridge.flows.hooks.chat_replies import accept_reply_hook

config = ChatHookConfig.from_env()
credentials = CredentialsSource(lambda: secret_string_fresh(config.chat_channel_secret_arn))
scopes = DynamoChatScopes(config.integrations_table)
replies = RepliesQueue(config.replies_queue_url)
taken = DynamoReplyHooks(config.ledger_table)
logger = Logger()
metrics = function_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)  # never log_event: the body is a conversation
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        channel = credentials.get()
    except ChannelNotConfigured:
        logger.error("reply hook: no chat channel is configured (ChatChannelSecret)")
        return json_response(503, {"error": "channel_not_configured"})
    result = accept_reply_hook(
        channel,
        scopes,
        replies,
        path_param(event, "scope_id"),
        body_bytes(event),
        header(event, "x-signature"),
        taken,
    )
    if result.status >= 400:
        logger.warning("reply hook rejected", extra={"status": result.status, "reason": result.reason})
        metrics.add_metric(name="ReplyHookRejected", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="RepliesQueued", unit=MetricUnit.Count, value=result.accepted)
    return json_response(result.status, result.body)
