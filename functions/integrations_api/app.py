"""/integrations (IAM-authorized): what the cabinet uses to set integrations up.

Not built yet (issue 6): the routes and their permissions are deployed, and every call answers 501 with a JSON
error instead of failing.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.apigw import json_response


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return json_response(
        501, {"error": "not_implemented", "detail": "the integrations API is not available in this version"}
    )
