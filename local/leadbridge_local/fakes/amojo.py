"""A fake amojo (amoCRM's Chats API) for one registered channel, as strict as the real one (reference D, §4).

- Every request must carry ``Date`` (RFC 2822, within 15 minutes), ``Content-Type: application/json``,
  ``Content-MD5`` (of the exact bytes) and ``X-Signature`` (HMAC-SHA1 of ``METHOD\\nmd5\\ntype\\ndate\\npath`` with the
  ASCII secret); anything else is amojo's 403 ``ORIGIN_INVALID_SIGNATURE``. An unknown channel is 404
  ``ORIGIN_NOT_REGISTERED``; a malformed body is 400.
- connect / disconnect per account (by its ``amojo_id``), chats per conversation (the same chat for the same
  ``conversation_id``), ``new_message`` (the first message of a chat makes amoCRM create a talk on a new lead in
  the fake amoCRM account, with the channel's code as its origin), delivery statuses.
- ``reply``: a manager's answer as amojo's v2 hook, signed, for the test or the demo to post to the service.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from email.utils import parsedate_to_datetime
from typing import Any

from leadbridge.crms.amocrm.chat_channel.signing import hook_signature, request_signature_valid
from leadbridge_local.fakes.amocrm import FakeAmoCRM
from leadbridge_local.fakes.base import FakeClock, FakeCrmBase, json_response, remember_secret
from leadbridge_local.loopback import HttpRequest, HttpResponse

SIGNATURE_TTL_SECONDS = 15 * 60


def _error(status: int, error_type: str, description: str) -> HttpResponse:
    body = {"status": 0, "error_code": status, "error_type": error_type, "error_description": description}
    return json_response(status, body)


class FakeAmojo(FakeCrmBase):
    def __init__(self, amocrm: FakeAmoCRM, clock: FakeClock | None = None) -> None:
        super().__init__(clock)
        self.amocrm = amocrm
        self.channel_id = str(uuid.uuid4())
        self.channel_code = "amo.ext.7731_v2"
        self.secret = remember_secret(secrets.token_hex(20))
        self.bot_id = str(uuid.uuid4())
        self.scopes: dict[str, str] = {}  # scope_id -> amojo account id
        self.chats: dict[tuple[str, str], dict[str, Any]] = {}  # (scope, conversation_id) -> chat
        self.messages: list[dict[str, Any]] = []  # every new_message payload taken, with its scope
        self.delivery: list[tuple[str, str, dict[str, Any]]] = []  # (scope, msgid, body)
        self.talks: dict[str, int] = {}  # amojo chat id -> the talk amoCRM made for it
        self._next_talk = 900_000

    def credentials_json(self) -> str:
        """What amoCRM support issues for a registered channel (the stack's ChatChannelSecret value)."""
        return json.dumps(
            {
                "channel_id": self.channel_id,
                "channel_code": self.channel_code,
                "secret": self.secret,
                "bot_id": self.bot_id,
            }
        )

    def server_error(self) -> HttpResponse:
        return _error(500, "INTERNAL_ERROR", "internal error")

    def limit_error(self) -> HttpResponse:
        return _error(429, "TOO_MANY_REQUESTS", "too many requests")

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        self.count("amojo_requests")
        if not self._signed(request):
            self.count("amojo_bad_signature")
            return _error(403, "ORIGIN_INVALID_SIGNATURE", "invalid signature")
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            return _error(400, "BAD_REQUEST", "invalid json")
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST", "invalid json")
        injected = self.injected_fault()
        if injected is not None:
            return injected
        path = request.path
        if match := re.fullmatch(r"/v2/origin/custom/([^/]+)/(connect|disconnect)", path):
            if match[1] != self.channel_id:
                return _error(404, "ORIGIN_NOT_REGISTERED", "NOT_FOUND")
            if match[2] == "connect" and request.method == "POST":
                return self._connect(body)
            if match[2] == "disconnect" and request.method == "DELETE":
                return self._disconnect(body)
        if match := re.fullmatch(r"/v2/origin/custom/([^/]+)/chats", path):
            return self._create_chat(match[1], body) if request.method == "POST" else _error(405, "BAD_METHOD", "")
        if match := re.fullmatch(r"/v2/origin/custom/([^/]+)/([^/]+)/delivery_status", path):
            return self._delivery(match[1], match[2], body)
        if match := re.fullmatch(r"/v2/origin/custom/([^/]+)", path):
            return self._event(match[1], body) if request.method == "POST" else _error(405, "BAD_METHOD", "")
        return _error(404, "NOT_FOUND", "unknown path")

    def _signed(self, request: HttpRequest) -> bool:
        headers = request.headers
        if headers.get("content-type") != "application/json":
            return False
        try:
            sent = parsedate_to_datetime(headers.get("date", "")).timestamp()
        except (TypeError, ValueError):
            return False
        if abs(self.clock.now() - sent) > SIGNATURE_TTL_SECONDS:
            return False
        return request_signature_valid(self.secret, request.method, request.path, request.body, headers)

    def _connect(self, body: dict[str, Any]) -> HttpResponse:
        account = body.get("account_id")
        known = {a.amojo_id for a in self.amocrm.accounts.values()}
        if not isinstance(account, str) or account not in known or body.get("hook_api_version") != "v2":
            return _error(400, "BAD_REQUEST", "account_id / hook_api_version")
        scope_id = f"{self.channel_id}_{account}"
        with self.lock:
            self.scopes[scope_id] = account
        self.count("amojo_connects")
        return json_response(
            200,
            {
                "account_id": account,
                "scope_id": scope_id,
                "title": body.get("title", ""),
                "hook_api_version": "v2",
                "is_time_window_disabled": False,
            },
        )

    def _disconnect(self, body: dict[str, Any]) -> HttpResponse:
        account = body.get("account_id")
        with self.lock:
            self.scopes = {s: a for s, a in self.scopes.items() if a != account}
        return HttpResponse(200)

    def _create_chat(self, scope_id: str, body: dict[str, Any]) -> HttpResponse:
        if scope_id not in self.scopes:
            return _error(404, "ORIGIN_NOT_REGISTERED", "NOT_FOUND")
        conversation, user = body.get("conversation_id"), body.get("user")
        if not isinstance(conversation, str) or not isinstance(user, dict) or not isinstance(user.get("id"), str):
            return _error(400, "BAD_REQUEST", "conversation_id and user are required")
        with self.lock:
            chat = self.chats.setdefault(
                (scope_id, conversation),
                {"id": str(uuid.uuid4()), "user": {**user, "client_id": user["id"]}, "conversation_id": conversation},
            )
        return json_response(200, {"id": chat["id"], "user": chat["user"]})

    def _event(self, scope_id: str, body: dict[str, Any]) -> HttpResponse:
        if scope_id not in self.scopes:
            return _error(404, "ORIGIN_NOT_REGISTERED", "NOT_FOUND")
        payload = body.get("payload")
        if body.get("event_type") != "new_message" or not isinstance(payload, dict):
            return _error(400, "BAD_REQUEST", "event_type / payload")
        sender, message = payload.get("sender"), payload.get("message")
        required = (payload.get("msgid"), payload.get("conversation_id"), payload.get("timestamp"))
        if not all(required) or not isinstance(sender, dict) or not sender.get("id") or not sender.get("name"):
            return _error(400, "BAD_REQUEST", "msgid, conversation_id, timestamp, sender{id,name} are required")
        if not isinstance(payload["timestamp"], int) or not isinstance(message, dict) or not message.get("type"):
            return _error(400, "BAD_REQUEST", "timestamp must be an int; message{type} is required")
        chat = self.chats.get((scope_id, str(payload["conversation_id"])))
        if chat is None:  # amojo makes the chat on a first message too; the service creates it first
            return _error(400, "BAD_REQUEST", "chat not found")
        with self.lock:
            self.messages.append({"scope_id": scope_id, **payload})
            talk = self.talks.get(chat["id"])
            if talk is None:
                self._next_talk += 1
                talk = self.talks[chat["id"]] = self._next_talk
                new_talk = True
            else:
                new_talk = False
        if new_talk:  # the first message: amoCRM opens a talk on a new (unsorted) lead, origin = the channel
            subdomain = next(a.subdomain for a in self.amocrm.accounts.values() if a.amojo_id == self.scopes[scope_id])
            self.amocrm.add_talk(
                subdomain,
                talk,
                lead_id=talk * 10,
                contact_id=talk * 100,
                origin=self.channel_code,
                created_at=int(payload["timestamp"]),
                lead={},
                contact={"name": sender["name"]},
                chat_id=chat["id"],
            )
        msgid = str(payload["msgid"])
        answer = {
            "conversation_id": payload["conversation_id"],
            "sender_id": sender["id"],
            "msgid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{scope_id}:{msgid}")),
            "ref_id": msgid,
        }
        return json_response(200, {"new_message": answer})

    def _delivery(self, scope_id: str, msgid: str, body: dict[str, Any]) -> HttpResponse:
        if scope_id not in self.scopes:
            return _error(404, "ORIGIN_NOT_REGISTERED", "NOT_FOUND")
        if not isinstance(body.get("delivery_status"), int) or "status_code" in body:  # as the signed example
            return _error(400, "BAD_REQUEST", "delivery_status")
        with self.lock:
            self.delivery.append((scope_id, msgid, body))
        return HttpResponse(200)

    # ------------------------------------------------------------------ hooks to the service
    def talk_of(self, scope_id: str, conversation_id: str) -> tuple[int, str]:
        """The talk amoCRM made for a conversation's chat, and the chat's amojo id."""
        chat = self.chats[(scope_id, conversation_id)]
        return self.talks[chat["id"]], chat["id"]

    def reply(self, scope_id: str, conversation_id: str, text: str, at: int) -> tuple[bytes, str]:
        """A manager's reply as amojo posts it to the channel's hook URL: the v2 body and its X-Signature."""
        chat = self.chats[(scope_id, conversation_id)]
        hook = {
            "account_id": scope_id.split("_", 1)[-1],  # scope_id = {channel_id}_{account amojo id}
            "time": at,
            "message": {
                "receiver": {"id": str(uuid.uuid4()), "client_id": chat["user"]["client_id"]},
                "sender": {"id": str(uuid.uuid4())},
                "conversation": {"id": chat["id"], "client_id": conversation_id},
                "timestamp": at,
                "msec_timestamp": at * 1000,
                "message": {"id": str(uuid.uuid4()), "type": "text", "text": text, "tag": "", "media": ""},
            },
        }
        body = json.dumps(hook, ensure_ascii=False).encode()
        return body, hook_signature(self.secret, body)
