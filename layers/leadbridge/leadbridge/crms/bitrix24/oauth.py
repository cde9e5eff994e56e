"""Bitrix24 OAuth 2.0 for a local application (reference/bitrix24.md §5).

The token server depends on the region (oauth.bitrix.info, oauth.bitrix24.tech): it is taken from the
redirect's ``server_domain`` (or the stored ``server_endpoint``), never hard-coded. Codes live 30 seconds, access
tokens one hour, refresh tokens 180 days and only once. Bitrix24 asks apps not to refresh on a timer, so workers
refresh on demand (expiry or ``expired_token``) and the scheduled token upkeep only keeps an idle portal's
refresh token from dying.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from leadbridge.aws.store.tokens import StoredToken, TokenSet
from leadbridge.contract.integration import Integration
from leadbridge.crms.crm_values import positive_int
from leadbridge.http.client import request
from leadbridge.http.errors import AccountBlocked, BadRequest, CrmUnavailable, GrantRevoked

DEFAULT_TOKEN_SERVER = "oauth.bitrix.info"  # noqa: S105 - a host name
# reference/bitrix24.md §5.5: the .com (west) and .ru (east) authorization servers.
TOKEN_SERVERS = frozenset({"oauth.bitrix.info", "oauth.bitrix24.tech"})
IDLE_REFRESH_AFTER_SECONDS = 150 * 86400  # well inside the refresh token's 180 days
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_client", "wrong_client"})
# The application's subscription lapsed: the grant lives and works again once paid, so the portal is blocked (its
# events wait and the scheduled probe retries the refresh), never moved to re-authorization.
UNPAID_ERRORS = frozenset({"payment_required"})


def authorize_url(integration: Integration, state: str) -> str:
    return f"https://{integration.crm_domain}/oauth/authorize/?" + urlencode(
        {"client_id": integration.client_id or "", "state": state}
    )


def bitrix_token_set(data: dict[str, Any], now: float | None = None) -> TokenSet:
    """A token response (or the auth block of ONAPPINSTALL) as a ``TokenSet``."""
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise CrmUnavailable("Bitrix24 token response without access_token")
    issued = int(now if now is not None else time.time())
    lifetime = positive_int(data.get("expires_in"))
    if lifetime is None and data.get("expires_in") is not None:
        raise CrmUnavailable("Bitrix24 token response with an unreadable expires_in")
    expires_at = positive_int(data.get("expires")) or issued + (lifetime or 3600)
    refresh = data.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else None
    extra = {
        key: str(data[key])[:500]
        for key in ("client_endpoint", "server_endpoint", "member_id", "scope")
        if isinstance(data.get(key), str | int) and data.get(key) != ""
    }
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_at=expires_at,
        refresh_due_at=issued + IDLE_REFRESH_AFTER_SECONDS if refresh else None,
        extra=extra,
    )


def token_server(server_domain: str | None, server_endpoint: str | None = None) -> str:
    """One of Bitrix24's own token servers, the only hosts that ever get the client secret and refresh token.

    ``server_domain`` (the OAuth redirect) or ``server_endpoint`` (a token answer) names the region's server; any
    name outside the exact list is ignored for the default one, never followed.
    """
    for candidate in (server_domain, urlsplit(server_endpoint).hostname if server_endpoint else None):
        if candidate and candidate.lower() in TOKEN_SERVERS:
            return candidate.lower()
    return DEFAULT_TOKEN_SERVER


class BitrixOAuth:
    def exchange_code(self, integration: Integration, server_domain: str | None, code: str) -> TokenSet:
        return self._token_request(
            token_server(server_domain),
            {
                "grant_type": "authorization_code",
                "client_id": integration.client_id,
                "client_secret": integration.client_secret,
                "code": code,
            },
        )

    def refresh(self, integration: Integration, stored: StoredToken) -> TokenSet:
        return self._token_request(
            token_server(None, stored.tokens.extra.get("server_endpoint")),
            {
                "grant_type": "refresh_token",
                "client_id": integration.client_id,
                "client_secret": integration.client_secret,
                "refresh_token": stored.tokens.refresh_token,
            },
        )

    def _token_request(self, host: str, params: dict[str, Any]) -> TokenSet:
        try:
            response = request("GET", f"https://{host}/oauth/token/", params=params)
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"Bitrix24 token server unreachable: {type(exc).__name__}") from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        error = str(data.get("error") or "").lower()[:100]
        if error in DEAD_GRANT_ERRORS:  # wrong_client comes with HTTP 200
            raise GrantRevoked(f"Bitrix24 refused the grant ({error})", status=response.status_code, code=error)
        if error in UNPAID_ERRORS:
            raise AccountBlocked("Bitrix24: the application must be paid for (PAYMENT_REQUIRED)", code=error)
        if response.status_code >= 500 or response.status_code == 429:
            raise CrmUnavailable("Bitrix24 token server failed", status=response.status_code)
        if response.status_code == 200 and not error and "access_token" not in data:
            raise CrmUnavailable("Bitrix24 token server answered without a token")
        if response.status_code != 200 or error:
            raise BadRequest(
                f"Bitrix24 token server refused ({error or response.status_code})", status=response.status_code
            )
        return bitrix_token_set(data)
