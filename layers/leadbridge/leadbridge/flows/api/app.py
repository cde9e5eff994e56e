"""The integrations API as an ASGI application (FastAPI): Mangum serves it in Lambda, uvicorn locally.

Authentication is API Gateway's (IAM, SigV4) in front of it; the app itself never returns a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from fastapi import Body, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse

from leadbridge.contract.backfill_job import InvalidPeriod
from leadbridge.crms.amocrm.chat_channel.messages import (
    ChannelConnect,
    DeliveryReport,
    MessagesAccepted,
    VisitorMessages,
)
from leadbridge.crms.crm_lists import ListKind
from leadbridge.flows.api.service import IntegrationsService, InvalidCursor, NotFoundError
from leadbridge.flows.api.settings import (
    AuthorizeUrl,
    BackfillProgress,
    BackfillRequest,
    ChatChannelView,
    CrmChannelsView,
    CrmFieldsView,
    CrmPipelinesView,
    ErrorBody,
    IntegrationSettings,
    IntegrationsPage,
    IntegrationStatus,
    IntegrationView,
    ResumeResult,
    WebhookSecretIssued,
)
from leadbridge.flows.connect.crm_lists import NotReadable, SettingsRefused
from leadbridge.flows.recovery.backfill.begin import BackfillConflict
from leadbridge.http.errors import CrmError
from leadbridge.http.public_host import NonPublicHost

logger = Logger(child=True)
MAX_PAGE = 100  # integrations a page of GET /integrations: far below the 6 MB a Lambda answer may be
IntegrationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Chosen by the cabinet.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such integration", "model": ErrorBody}}
CONFLICT: dict[str, Any] = {"description": "Not now: the message says why (and what to do)", "model": ErrorBody}


SIGV4 = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "x-amazon-apigateway-authtype": "awsSigv4",
    "description": "AWS Signature Version 4 for execute-api: every route of this API is IAM-authorized.",
}


def _with_sigv4(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, saying how a caller authenticates (the cabinet signs with SigV4)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {"sigv4": SIGV4}
        schema["security"] = [{"sigv4": []}]
        app.openapi_schema = schema
    return app.openapi_schema


def error_response(
    status: int, code: str, message: str, field: str | None = None, detail: object | None = None
) -> JSONResponse:
    """Every 4xx and 5xx body has one shape: ``code``, ``message``, ``field`` (the setting it is about, or null),
    and ``detail`` (the message again, or the validation errors' places), never the input itself."""
    body = {"code": code, "message": message, "field": field, "detail": message if detail is None else detail}
    return JSONResponse(body, status_code=status)


def create_app(service_factory: Callable[[], IntegrationsService]) -> FastAPI:
    """``service_factory`` runs on the first request (the store and the state key are not needed to import)."""
    app = FastAPI(
        title="leadbridge integrations API",
        version="1.0.0",
        description="Set up amoCRM and Bitrix24 integrations: settings, webhook URL, OAuth, status, site script, "
        "backfills.",
    )
    app.openapi = lambda: _with_sigv4(app)  # type: ignore[method-assign]
    cache: list[IntegrationsService] = []

    def service() -> IntegrationsService:
        if not cache:
            cache.append(service_factory())
        return cache[0]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Where and what, never the value: the input may be a write-only secret (client_secret, application_token).
        detail = [
            {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", ""))[:300], "type": error.get("type")}
            for error in exc.errors()
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        place = [str(part) for part in first["loc"][1:]]  # after "body" / "path"
        place = place[1:] if place[:1] in (["amocrm"], ["bitrix24"]) else place  # the settings' union tag
        field = ".".join(place) or None
        return error_response(422, "invalid", str(first["msg"]), field, detail)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, "not_found", "integration not found")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("integrations API failed", extra={"route": request.url.path[:100], "method": request.method})
        return error_response(500, "internal", "internal error")

    @app.exception_handler(NonPublicHost)
    async def non_public_host(request: Request, exc: NonPublicHost) -> JSONResponse:
        return error_response(422, "non_public_host", str(exc), "crm_domain")

    @app.exception_handler(InvalidPeriod)
    async def invalid_period(request: Request, exc: InvalidPeriod) -> JSONResponse:
        return error_response(422, "invalid_period", str(exc), "from")

    @app.exception_handler(BackfillConflict)
    async def backfill_conflict(request: Request, exc: BackfillConflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(NotReadable)
    async def not_readable(request: Request, exc: NotReadable) -> JSONResponse:
        return error_response(409, exc.reason, str(exc))

    @app.exception_handler(InvalidCursor)
    async def invalid_cursor(request: Request, exc: InvalidCursor) -> JSONResponse:
        return error_response(422, "invalid_cursor", str(exc), "cursor")

    @app.exception_handler(SettingsRefused)
    async def settings_refused(request: Request, exc: SettingsRefused) -> JSONResponse:
        return error_response(422, exc.code, str(exc), "session_field.field_id")

    @app.exception_handler(CrmError)
    async def crm_failed(request: Request, exc: CrmError) -> JSONResponse:
        # The error's message names what failed, never a token or a body (http/errors.py).
        code = "crm_refused" if exc.status in {400, 402, 403, 404} else "crm_unavailable"
        return error_response(502, code, f"the CRM answered no list: {exc}"[:300])

    @app.exception_handler(ValueError)
    async def conflict(request: Request, exc: ValueError) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.get("/integrations", response_model=IntegrationsPage)
    def list_integrations(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"At most {MAX_PAGE}.")] = 50,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the page before")] = None,
    ) -> IntegrationsPage:
        """A page of the integrations (settings only: their status is per integration)."""
        return service().list(limit, cursor)

    @app.put(
        "/integrations/{integration_id}",
        response_model=IntegrationView,
        responses={201: {"model": IntegrationView}, 409: CONFLICT},
    )
    def put_integration(
        integration_id: IntegrationId,
        settings: Annotated[IntegrationSettings, Body()],
        response: Response,
        request: Request,
    ) -> IntegrationView:
        """Create or update. An amoCRM session field the CRM does not have (or one that cannot hold text) is a 422;
        messenger keys no channel produces are saved and named in the status (``unknown_mapping_keys``)."""
        result, created = service().put(integration_id, settings, str(request.base_url))
        response.status_code = 201 if created else 200
        return result

    @app.get("/integrations/{integration_id}", response_model=IntegrationView, responses=NOT_FOUND)
    def get_integration(integration_id: IntegrationId) -> IntegrationView:
        return service().get(integration_id)

    @app.delete("/integrations/{integration_id}", status_code=204, responses=NOT_FOUND)
    def delete_integration(integration_id: IntegrationId) -> Response:
        service().deactivate(integration_id)
        return Response(status_code=204)

    @app.post("/integrations/{integration_id}/webhook-secret", response_model=WebhookSecretIssued, responses=NOT_FOUND)
    def issue_webhook_secret(integration_id: IntegrationId, request: Request) -> WebhookSecretIssued:
        return service().issue_webhook_secret(integration_id, str(request.base_url))

    @app.post(
        "/integrations/{integration_id}/resume",
        response_model=ResumeResult,
        responses={
            **NOT_FOUND,
            409: {**CONFLICT, "description": "A resume of this integration is running, or it was never connected"},
        },
    )
    def resume_parked(integration_id: IntegrationId) -> ResumeResult:
        """Send the events parked for this integration back to the pipeline (after an account was unblocked)."""
        return service().resume(integration_id)

    @app.post(
        "/integrations/{integration_id}/backfill",
        response_model=BackfillProgress,
        status_code=202,
        responses={
            **NOT_FOUND,
            409: {**CONFLICT, "description": "A backfill is running already, or it was never connected"},
        },
    )
    def start_backfill(integration_id: IntegrationId, period: Annotated[BackfillRequest, Body()]) -> BackfillProgress:
        """Import every conversation of the period that no webhook brought in (a share of the CRM's limit; the
        backfill function starts it within a minute). Progress: ``GET`` on the same path, and the status."""
        return service().start_backfill(integration_id, period)

    @app.get("/integrations/{integration_id}/backfill", response_model=BackfillProgress, responses=NOT_FOUND)
    def get_backfill(integration_id: IntegrationId) -> BackfillProgress:
        return service().backfill(integration_id)

    @app.delete("/integrations/{integration_id}/backfill", response_model=BackfillProgress, responses=NOT_FOUND)
    def cancel_backfill(integration_id: IntegrationId) -> BackfillProgress:
        """Stop the running backfill; what it imported stays imported."""
        return service().cancel_backfill(integration_id)

    @app.post(
        "/integrations/{integration_id}/chat-channel",
        response_model=ChatChannelView,
        status_code=202,
        responses={**NOT_FOUND, 409: CONFLICT},
    )
    def connect_chat_channel(
        integration_id: IntegrationId, request: Annotated[ChannelConnect, Body()] | None = None
    ) -> ChatChannelView:
        """Connect the stack's amoCRM chat channel (Chats API) to the account; the status follows it."""
        return service().connect_chat_channel(integration_id, request or ChannelConnect())

    @app.delete(
        "/integrations/{integration_id}/chat-channel",
        response_model=ChatChannelView,
        status_code=202,
        responses={**NOT_FOUND, 409: CONFLICT},
    )
    def disconnect_chat_channel(integration_id: IntegrationId) -> ChatChannelView:
        return service().disconnect_chat_channel(integration_id)

    @app.post(
        "/integrations/{integration_id}/chat-channel/messages",
        response_model=MessagesAccepted,
        status_code=202,
        responses={**NOT_FOUND, 409: CONFLICT},
    )
    def visitor_messages(
        integration_id: IntegrationId, request: Annotated[VisitorMessages, Body()]
    ) -> MessagesAccepted:
        """The cabinet chat's visitor messages, to amoCRM (idempotent on message_id); a conversation's first
        message is a new request: a lead attributed to its session."""
        return service().accept_visitor_messages(integration_id, request)

    @app.post(
        "/integrations/{integration_id}/chat-channel/delivery",
        response_model=MessagesAccepted,
        status_code=202,
        responses={**NOT_FOUND, 409: CONFLICT},
    )
    def delivery(integration_id: IntegrationId, report: Annotated[DeliveryReport, Body()]) -> MessagesAccepted:
        """A manager's reply reached the visitor (or failed): amoCRM shows it on the message."""
        return service().report_delivery(integration_id, report)

    @app.get(
        "/integrations/{integration_id}/authorize-url",
        response_model=AuthorizeUrl,
        responses={**NOT_FOUND, 409: CONFLICT},
    )
    def get_authorize_url(integration_id: IntegrationId) -> AuthorizeUrl:
        return service().authorize_url(integration_id)

    picker_errors: dict[int | str, dict[str, Any]] = {
        **NOT_FOUND,
        409: {**CONFLICT, "description": "Not connected, re-authorization needed, or deactivated (code says which)"},
        502: {"description": "The CRM failed or refused the read (message says which)", "model": ErrorBody},
    }

    def crm_list(integration_id: str, kind: ListKind, request: Request) -> dict[str, Any]:
        integration, rows = service().crm_list(integration_id, kind, str(request.base_url))
        return {"integration_id": integration_id, "crm": integration.crm, "items": rows}

    @app.get("/integrations/{integration_id}/crm/fields", response_model=CrmFieldsView, responses=picker_errors)
    def get_crm_fields(integration_id: IntegrationId, request: Request) -> CrmFieldsView:
        """The lead and contact (amoCRM) or lead and deal (Bitrix24) custom fields, for the session field picker:
        ``holds_session`` marks those that can hold it. Cached for ``CrmListsCacheSeconds``."""
        return CrmFieldsView.model_validate(crm_list(integration_id, "fields", request))

    @app.get("/integrations/{integration_id}/crm/channels", response_model=CrmChannelsView, responses=picker_errors)
    def get_crm_channels(integration_id: IntegrationId, request: Request) -> CrmChannelsView:
        """The channels the account can produce, each with the ``messenger_targets`` key its leads are looked up by
        (docs/channels.md)."""
        return CrmChannelsView.model_validate(crm_list(integration_id, "channels", request))

    @app.get("/integrations/{integration_id}/crm/pipelines", response_model=CrmPipelinesView, responses=picker_errors)
    def get_crm_pipelines(integration_id: IntegrationId, request: Request) -> CrmPipelinesView:
        """amoCRM pipelines and stages; Bitrix24 lead statuses and deal categories with their stages."""
        return CrmPipelinesView.model_validate(crm_list(integration_id, "pipelines", request))

    @app.get("/integrations/{integration_id}/status", response_model=IntegrationStatus, responses=NOT_FOUND)
    def get_status(integration_id: IntegrationId) -> IntegrationStatus:
        return service().status(integration_id)

    @app.get(
        "/integrations/{integration_id}/site-script",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/javascript": {}}}, **NOT_FOUND},
    )
    def get_site_script(integration_id: IntegrationId) -> PlainTextResponse:
        return PlainTextResponse(service().site_script(integration_id), media_type="text/javascript")

    return app
