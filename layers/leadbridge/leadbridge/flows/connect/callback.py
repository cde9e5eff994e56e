"""The OAuth redirect of both CRMs: verify the state, check the account, exchange the code, store the tokens.

amoCRM redirects with ``code, state, referer, platform, client_id[, from_widget]`` (or ``error=access_denied``);
Bitrix24 with ``code, state, domain, member_id, scope, server_domain``. Every failure answers a page that says
what to do and stores nothing; the nonce of a verified state is spent either way, so a link works once.
"""

from __future__ import annotations

import contextlib
import re

from aws_lambda_powertools import Logger

from leadbridge.aws.store.account_claims import DynamoAccountClaims
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.tokens import DynamoTokens, TokenSet
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.oauth import AmoOAuth, account_identity
from leadbridge.crms.bitrix24.oauth import DEFAULT_TOKEN_SERVER, TOKEN_SERVERS, BitrixOAuth
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.flows.connect.pages import RESTART, STATE_MESSAGES, Page, connected, failed
from leadbridge.flows.connect.state import StateError, StateSigner
from leadbridge.flows.connect.subscription import ensure_subscription, subscriptions_for
from leadbridge.flows.worker.parking import Parking
from leadbridge.http.errors import CrmError, GrantRevoked
from leadbridge.http.public_host import NonPublicHost, require_public
from leadbridge.http.ratelimit import Budgets

logger = Logger(child=True)

AMO_HOST = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\.(amocrm\.ru|amocrm\.com|kommo\.com)$")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{8,2048}$")


# What the Bitrix24 app needs granted: the CRM's entities, and the open lines' sessions (the chat, the web session).
BITRIX_SCOPES = frozenset({"crm", "imopenlines"})


class OAuthCallback:
    def __init__(
        self,
        integrations: DynamoIntegrations,
        tokens: DynamoTokens,
        signer: StateSigner,
        amocrm: AmoOAuth,
        bitrix24: BitrixOAuth,
        parking: Parking,
        budgets: Budgets,
        account_claims: DynamoAccountClaims | None = None,
        webhook_secret_grace_seconds: int = 86_400,
    ) -> None:
        self.account_claims = account_claims
        self.webhook_secret_grace_seconds = webhook_secret_grace_seconds
        self.parking = parking
        self.budgets = budgets  # the callback's own CRM read takes the account's shared budget like any other
        self.integrations = integrations
        self.tokens = tokens
        self.signer = signer
        self.amocrm = amocrm
        self.bitrix24 = bitrix24

    def handle(self, params: dict[str, str], redirect_uri: str) -> Page:
        """``redirect_uri``: this callback's own URL, which amoCRM's code exchange must repeat."""
        try:
            state = self.signer.consume(params.get("state"), self.integrations)
        except StateError as exc:
            message = STATE_MESSAGES.get(exc.reason, "Ссылка для авторизации недействительна. " + RESTART)
            return failed(400, f"state_{exc.reason}", message)
        integration = self.integrations.get(state.integration_id)
        if integration is None or not integration.active:
            return failed(
                404, "unknown_integration", "Интеграция не найдена или выключена. Включите её в кабинете. " + RESTART
            )
        page = self._connect(integration, params, redirect_uri)
        with contextlib.suppress(Exception):  # the status is advice: the page is the answer
            if page.status >= 400:
                self.integrations.record_connect(integration.integration_id, failure=page.reason)
        return page

    def _connect(self, integration: Integration, params: dict[str, str], redirect_uri: str) -> Page:
        if params.get("error"):
            reason = "access_denied" if params["error"] == "access_denied" else "crm_error"
            return failed(
                400, reason, "Доступ не был предоставлен в CRM. Если это ошибка, " + RESTART[0].lower() + RESTART[1:]
            )
        code = params.get("code", "")
        if not CODE_PATTERN.match(code):
            return failed(400, "missing_code", "CRM не передала код авторизации. " + RESTART)
        try:
            if integration.crm == "amocrm":
                return self._amocrm(integration, params, code, redirect_uri)
            return self._bitrix24(integration, params, code, redirect_uri)
        except GrantRevoked:
            return failed(
                400,
                "code_rejected",
                "CRM не приняла код авторизации: проверьте Client ID и Client secret в настройках интеграции. "
                + RESTART,
            )
        except CrmError as exc:
            logger.warning(
                "code exchange failed",
                extra={"integration_id": integration.integration_id, "error": type(exc).__name__},
            )
            return failed(502, "crm_unavailable", "CRM не ответила. Попробуйте ещё раз через минуту. " + RESTART)

    def _amocrm(self, integration: Integration, params: dict[str, str], code: str, redirect_uri: str) -> Page:
        host = _host(params.get("referer", ""))
        if not AMO_HOST.match(host) or host != integration.crm_domain.lower():
            return failed(
                403,
                "domain_mismatch",
                f"Авторизация пришла из другого аккаунта, чем указан в интеграции ({integration.crm_domain}). "
                "Войдите в нужный аккаунт amoCRM. " + RESTART,
            )
        if params.get("client_id") and params["client_id"] != integration.client_id:
            return failed(403, "client_mismatch", "Client ID в CRM не совпадает с настройками интеграции. " + RESTART)
        tokens = self.amocrm.exchange_code(integration, host, code, redirect_uri)
        account_id, _ = account_identity(host, tokens.access_token, self.budgets.for_integration(integration))
        if integration.account_id and integration.account_id != account_id:
            return failed(403, "account_mismatch", "Это другой аккаунт amoCRM, чем был подключён раньше. " + RESTART)
        if self.account_claims is not None:
            holder = self.account_claims.claim("amocrm", account_id, integration.integration_id, self.integrations.get)
            if holder is not None:  # two integrations on one account would share (and race for) its leads
                return failed(
                    409,
                    "account_held",
                    f"Этот аккаунт amoCRM уже подключён к интеграции {holder}. Отключите её (DELETE "
                    f"/integrations/{holder}) или используйте её. " + RESTART,
                )
        self._store(integration, account_id, host, tokens)
        self._subscribe_hook(integration.integration_id, redirect_uri)
        return connected("amoCRM", integration.name or integration.crm_domain)

    def _check_reads(self, integration: Integration, tokens: TokenProvider) -> None:
        """amoCRM: the grant's user may read leads, contacts and the events log (the checklist's ``rights``)."""
        client = AmoClient(integration, tokens, self.budgets.for_integration(integration))
        with contextlib.suppress(CrmError):
            self.integrations.record_connect(integration.integration_id, missing_scopes=client.refused_reads())

    def _subscribe_hook(self, integration_id: str, redirect_uri: str) -> None:
        """The integration subscribes its own webhook with the grant just given; a refusal (no admin rights, an
        outage) is the checklist's to show, never the connect's failure."""
        connected_now = self.integrations.get(integration_id)
        if connected_now is None:
            return
        refresher = AmoOAuth(redirect_uri) if connected_now.crm == "amocrm" else self.bitrix24
        provider = TokenProvider(self.tokens, {connected_now.crm: refresher})
        if connected_now.crm == "amocrm":
            self._check_reads(connected_now, provider)
        crm = subscriptions_for(connected_now, provider, self.budgets.for_integration(connected_now))
        base_url = redirect_uri.removesuffix("/oauth2/callback")
        with contextlib.suppress(CrmError):
            ensure_subscription(
                connected_now, crm, self.integrations, base_url, self.webhook_secret_grace_seconds, first=True
            )

    def _bitrix24(self, integration: Integration, params: dict[str, str], code: str, redirect_uri: str) -> Page:
        domain = _host(params.get("domain", ""))
        if domain != integration.crm_domain.lower():
            return failed(
                403,
                "domain_mismatch",
                f"Авторизация пришла с другого портала, чем указан в интеграции ({integration.crm_domain}). " + RESTART,
            )
        try:
            require_public(domain)  # resolved again: the name may point elsewhere since it was saved
        except NonPublicHost:
            return failed(400, "non_public_portal", "Домен портала указывает на непубличный адрес. " + RESTART)
        member_id = params.get("member_id", "")
        if not re.fullmatch(r"[A-Za-z0-9]{8,64}", member_id) or (
            integration.account_id and integration.account_id != member_id
        ):
            return failed(403, "member_mismatch", "Это другой портал Битрикс24, чем был подключён раньше. " + RESTART)
        server = _host(params.get("server_domain", "")) or DEFAULT_TOKEN_SERVER
        if server not in TOKEN_SERVERS:  # only Bitrix24's own token servers ever get the client secret
            return failed(400, "unknown_token_server", "Неизвестный сервер авторизации Битрикс24. " + RESTART)
        tokens = self.bitrix24.exchange_code(integration, server, code)
        if tokens.extra.get("member_id") not in {None, member_id}:
            return failed(403, "member_mismatch", "Сервер авторизации вернул другой портал. " + RESTART)
        granted = str(tokens.extra.get("scope") or params.get("scope") or "")
        missing = sorted(BITRIX_SCOPES - {part.strip() for part in granted.split(",")})
        self._store(integration, member_id, domain, tokens, missing_scopes=missing)
        self._subscribe_hook(integration.integration_id, redirect_uri)
        return connected("Битрикс24", integration.name or integration.crm_domain)

    def _store(
        self,
        integration: Integration,
        account_id: str,
        domain: str,
        tokens: TokenSet,
        missing_scopes: list[str] | None = None,
    ) -> None:
        self.tokens.save_new(integration.integration_id, integration.crm, tokens)
        self.integrations.record_account(integration.integration_id, account_id, domain)
        # The checklist: no connect failure any more, and the scopes the app was granted without (a lead would
        # lose its chat and session without them, before anyone noticed).
        self.integrations.record_connect(integration.integration_id, missing_scopes=missing_scopes or [])
        self.integrations.set_connection_state(integration.integration_id, "connected")
        resumed = self.parking.resume(integration.integration_id)
        logger.info(
            "integration connected",
            extra={"integration_id": integration.integration_id, "crm": integration.crm, "resumed": resumed},
        )


def _host(value: str) -> str:
    host = re.sub(r"^https?://", "", value.strip().lower()).split("/", 1)[0]
    return host if re.fullmatch(r"[a-z0-9.-]{1,253}", host) else ""
