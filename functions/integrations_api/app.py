"""/integrations (IAM-authorized): the integrations API, an ASGI app served through Mangum."""

from aws_lambda_powertools import Logger
from mangum import Mangum

from leadbridge.aws.config import ApiConfig
from leadbridge.composition import integrations_service
from leadbridge.flows.api.app import create_app

logger = Logger()
config = ApiConfig.from_env()
asgi = create_app(lambda: integrations_service(config))
handler = Mangum(asgi, lifespan="off")
