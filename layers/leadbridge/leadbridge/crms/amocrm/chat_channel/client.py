"""amojo (the Chats API) for one account: every request signed over the exact bytes sent, within the account's
shared budget (amojo documents no limit of its own: the account's 7/s is reused, reference D.3).

Answers become the same errors as the REST API's: 403 (``ORIGIN_INVALID_SIGNATURE``) and 404
(``ORIGIN_NOT_REGISTERED``) are a configuration problem, never retried (``BadRequest``); 400 is ``BadRequest``;
429 is ``RateLimited``; 5xx and transport failures are ``CrmUnavailable``, retried a few times here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.chat_channel.credentials import ChannelCredentials
from leadbridge.crms.amocrm.chat_channel.signing import signed_headers
from leadbridge.crms.crm_values import as_dict
from leadbridge.http.client import request
from leadbridge.http.errors import BadRequest, BadResponse, CrmUnavailable, NotFound, RateLimited
from leadbridge.http.ratelimit import SharedLimiter

MAX_ATTEMPTS = 3


def amojo_origin(integration: Integration) -> str:
    domain = integration.crm_domain.lower()
    if domain.endswith(".kommo.com"):
        return "https://amojo.kommo.com"
    if domain.endswith(".amocrm.com"):
        return "https://amojo.amocrm.com"
    return "https://amojo.amocrm.ru"


class AmojoClient:
    def __init__(
        self,
        integration: Integration,
        credentials: ChannelCredentials,
        limiter: SharedLimiter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.origin = amojo_origin(integration)
        self.credentials = credentials
        self.limiter = limiter
        self.clock = clock
        self.requests_made = 0

    def connect(self, amojo_account_id: str, title: str) -> str:
        """Connect the channel to the account; its ``scope_id``."""
        body = {"account_id": amojo_account_id, "title": title, "hook_api_version": "v2"}
        answer = self._call("POST", f"/v2/origin/custom/{self.credentials.channel_id}/connect", body)
        scope = as_dict(answer).get("scope_id")
        if not isinstance(scope, str) or not scope:
            raise BadResponse("amojo connect answered without a scope_id")
        return scope

    def disconnect(self, amojo_account_id: str) -> None:
        self._call(
            "DELETE", f"/v2/origin/custom/{self.credentials.channel_id}/disconnect", {"account_id": amojo_account_id}
        )

    def create_chat(self, scope_id: str, conversation_id: str, user: dict[str, Any]) -> str:
        """The amojo chat of a conversation (created, or the existing one for the same ``conversation_id``)."""
        answer = self._call(
            "POST", f"/v2/origin/custom/{scope_id}/chats", {"conversation_id": conversation_id, "user": user}
        )
        chat_id = as_dict(answer).get("id")
        if not isinstance(chat_id, str) or not chat_id:
            raise BadResponse("amojo create chat answered without an id")
        return chat_id

    def new_message(self, scope_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = self._call("POST", f"/v2/origin/custom/{scope_id}", {"event_type": "new_message", "payload": payload})
        return as_dict(as_dict(answer).get("new_message"))

    def delivery_status(self, scope_id: str, msgid: str, status: int, error_code: int | None, error: str) -> None:
        """``delivery_status``, as the signed example sends it (the docs' table also names a ``status_code``; the
        signed request is what amojo is known to take, so only it is sent)."""
        body: dict[str, Any] = {"msgid": msgid, "delivery_status": status}
        if error_code is not None:
            body.update(error_code=error_code, error=error[:300])
        self._call("POST", f"/v2/origin/custom/{scope_id}/{msgid}/delivery_status", body)

    def _call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.requests_made += 1
            headers = signed_headers(self.credentials.secret, method, path, raw, self.clock())
            try:
                response = request(method, self.origin + path, budget=self.limiter, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable(f"amojo unreachable: {type(exc).__name__}") from exc
                continue
            status = response.status_code
            if status in {200, 201}:
                return _json(response)
            if status == 204:
                return None
            error = str(as_dict(_json(response)).get("error_type") or "")[:60]
            if status == 429:
                self.limiter.back_off(2.0)
                raise RateLimited("amojo rate limit", retry_after=2.0, status=429, code=error)
            if status >= 500:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable("amojo server error", status=status, code=error)
                time.sleep(0.3 * attempt)
                continue
            if status == 404 and error != "ORIGIN_NOT_REGISTERED":
                raise NotFound(f"amojo {path.rsplit('/', 1)[-1]}: not found", status=404, code=error)
            raise BadRequest(f"amojo refused the request ({status} {error})", status=status, code=error)
        raise CrmUnavailable("amojo: attempts exhausted")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
