"""amoCRM OAuth 2.0: the authorize URL, the code exchange and the refresh (reference/amocrm.md §3).

Token endpoint: ``POST https://<account domain>/oauth2/access_token`` with a JSON body. The access token lives
one day; the refresh token is single-use and dies after three months unused. Integrations in use refresh on
demand; the scheduled token upkeep (``oauth/upkeep.py``) refreshes only a grant unused for 75 days.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import httpx

from leadbridge.aws.store.tokens import StoredToken, TokenSet
from leadbridge.contract.integration import Integration
from leadbridge.crms.crm_values import positive_int
from leadbridge.http.client import request
from leadbridge.http.errors import BadRequest, CrmUnavailable, GrantRevoked
from leadbridge.http.ratelimit import SharedLimiter

IDLE_REFRESH_AFTER_SECONDS = 75 * 86400  # an unused grant is refreshed well inside its refresh token's 3 months


def authorize_url(integration: Integration, state: str) -> str:
    host = "www.kommo.com" if integration.is_kommo else "www.amocrm.ru"
    return f"https://{host}/oauth?" + urlencode(
        {"client_id": integration.client_id or "", "state": state, "mode": "post_message"}
    )


class AmoOAuth:
    """``redirect_uri``: amoCRM repeats it in the refresh grant (the callback passes its own per request)."""

    def __init__(self, redirect_uri: str = "") -> None:
        self.redirect_uri = redirect_uri

    def exchange_code(self, integration: Integration, account_host: str, code: str, redirect_uri: str) -> TokenSet:
        return self._token_request(
            account_host,
            {
                "client_id": integration.client_id,
                "client_secret": integration.client_secret,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )

    def refresh(self, integration: Integration, stored: StoredToken) -> TokenSet:
        return self._token_request(
            integration.crm_domain,
            {
                "client_id": integration.client_id,
                "client_secret": integration.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": stored.tokens.refresh_token,
                "redirect_uri": self.redirect_uri,
            },
        )

    def _token_request(self, host: str, body: dict[str, Any]) -> TokenSet:
        try:
            response = request("POST", f"https://{host}/oauth2/access_token", json=body)
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"amoCRM token endpoint unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise CrmUnavailable("amoCRM token endpoint failed", status=response.status_code)
        if response.status_code in {400, 401, 403}:
            # amoCRM answers 400 for a used, expired or revoked refresh token (and for a bad code).
            raise GrantRevoked(f"amoCRM refused the grant ({_problem_title(response)})", status=response.status_code)
        if response.status_code != 200:
            raise BadRequest("amoCRM token endpoint answered unexpectedly", status=response.status_code)
        try:
            data = response.json()
        except ValueError as exc:
            raise CrmUnavailable("amoCRM token endpoint answered without JSON") from exc
        if not isinstance(data, dict):
            raise CrmUnavailable("amoCRM token endpoint answered an unexpected body")
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise CrmUnavailable("amoCRM token response without access_token")
        server_time = positive_int(data.get("server_time")) or int(time.time())
        lifetime = positive_int(data.get("expires_in"))
        if lifetime is None and data.get("expires_in") is not None:
            raise CrmUnavailable("amoCRM token response with an unreadable expires_in")
        expires_at = server_time + (lifetime or 86400)
        refresh = data.get("refresh_token")
        refresh = refresh if isinstance(refresh, str) and refresh else None
        return TokenSet(
            access_token=access,
            refresh_token=refresh,
            expires_at=expires_at,
            refresh_due_at=server_time + IDLE_REFRESH_AFTER_SECONDS if refresh else None,
        )


def _problem_title(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no JSON body"
    if isinstance(body, dict):
        return str(body.get("hint") or body.get("title") or body.get("detail") or "error")[:100]
    return "error"


def account_identity(host: str, access_token: str, limiter: SharedLimiter) -> tuple[str, str]:
    """The account id and subdomain behind a fresh token (``GET /api/v4/account``), within the account's budget."""
    try:
        response = request(
            "GET",
            f"https://{host}/api/v4/account",
            budget=limiter,
            headers={"Authorization": f"Bearer {access_token}"},
        )
    except httpx.HTTPError as exc:
        raise CrmUnavailable(f"amoCRM unreachable: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise CrmUnavailable("amoCRM did not return the account", status=response.status_code)
    try:
        data = response.json()
    except ValueError as exc:
        raise CrmUnavailable("amoCRM answered the account without JSON") from exc
    account_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(account_id, int) or isinstance(account_id, bool) or account_id <= 0:
        raise CrmUnavailable("amoCRM account without an id")
    subdomain = data.get("subdomain")
    return str(account_id), subdomain if isinstance(subdomain, str) and subdomain else host.split(".", 1)[0]


def grant_is_alive(host: str, access_token: str, limiter: SharedLimiter) -> bool | None:
    """Does amoCRM still honour this access token? True (200), False (401), None (no clear answer)."""
    try:
        response = request(
            "GET",
            f"https://{host}/api/v4/account",
            budget=limiter,
            headers={"Authorization": f"Bearer {access_token}"},
        )
    except httpx.HTTPError:
        return None
    if response.status_code == 200:
        return True
    if response.status_code == 401:
        return False
    return None
