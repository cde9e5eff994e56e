"""GET /oauth2/callback and GET /oauth2/amocrm/disabled.

Not built yet (issue 3): the route, its permissions and its configuration are deployed, and it answers with a page
that says so instead of failing. Until then integrations are connected by the local seeding only.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.apigw import html_response

PAGE = (
    "<!doctype html><meta charset=utf-8><title>leadbridge</title>"
    "<p>Connecting a CRM through this page is not available in this version yet. Nothing was stored.</p>"
)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return html_response(501, PAGE)
