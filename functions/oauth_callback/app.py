"""GET /oauth2/callback (both CRMs' OAuth redirect) and GET /oauth2/amocrm/disabled/{integration_id}."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.apigw import html_response, json_response, path_param, public_base_url, query_params
from leadbridge.aws.config import OAuthConfig
from leadbridge.aws.metrics import function_metrics
from leadbridge.composition import oauth_callback
from leadbridge.flows.connect.disabled_hook import handle_disabled_hook

logger = Logger()
metrics = function_metrics()
config = OAuthConfig.from_env()
callback = oauth_callback(config)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)  # never log_event: the query carries the code and the state
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("routeKey", "").startswith("GET /oauth2/amocrm/disabled"):
        integration_id = path_param(event, "integration_id")
        result = handle_disabled_hook(
            callback.integrations, callback.tokens, callback.budgets, integration_id, query_params(event)
        )
        logger.info("amoCRM disabled hook", extra={"integration_id": integration_id[:64], "reason": result.reason})
        return json_response(result.status, {"result": result.reason})
    redirect_uri = public_base_url(event, config.public_base_url) + "/oauth2/callback"
    page = callback.handle(query_params(event), redirect_uri)
    logger.info("oauth callback", extra={"status": page.status, "reason": page.reason})
    metrics.add_metric(name="OAuthConnected" if page.status < 400 else "OAuthFailed", unit=MetricUnit.Count, value=1)
    return html_response(page.status, page.render())
