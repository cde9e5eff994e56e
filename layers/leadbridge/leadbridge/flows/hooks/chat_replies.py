"""Managers' replies from amoCRM: the channel's hook (``POST /hooks/amojo/{scope_id}``), onto the replies queue.

amojo signs the body (``X-Signature``, HMAC-SHA1 with the channel secret) and sends each hook once, never again,
expecting 200 within seconds (reference §4.2, D.5). So the hook checks the signature in constant time before
anything else, finds the integration by the scope in the URL, puts each reply on the replies queue for the
cabinet's chat to deliver, and answers. A forged or altered hook is refused and enqueues nothing; so is a signed
one that is not this scope's (its ``account_id`` is not the scope's account), one dated outside the acceptance
window (``MAX_AGE_SECONDS`` back, ``MAX_SKEW_SECONDS`` ahead), and a repeat of a reply already taken (kept by
message id for as long as the window lets it pass).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from leadbridge.aws.queues import InboxWriteError
from leadbridge.crms.amocrm.chat_channel.credentials import ChannelCredentials
from leadbridge.crms.amocrm.chat_channel.signing import hook_signature_valid
from leadbridge.crms.crm_values import as_dict

MAX_HOOK_BYTES = 64 * 1024
# amojo sends a hook as the manager answers, but a genuine one may come late (its queue, our outage): a day's window,
# with every reply taken once (kept by message id for the whole window), so a replay within it is still refused.
MAX_AGE_SECONDS = 24 * 3600
MAX_SKEW_SECONDS = 300


class ScopeLookup(Protocol):
    def integration_of(self, scope_id: str) -> str | None: ...


class RepliesQueue(Protocol):
    def send(self, reply: dict[str, Any], group: str, deduplication_id: str) -> None: ...


class TakenReplies(Protocol):
    def first_delivery(self, scope_id: str, message_id: str, keep_until: int) -> bool: ...

    def forget(self, scope_id: str, message_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ReplyHookResult:
    status: int
    body: dict[str, object]
    reason: str | None = None
    accepted: int = 0
    ignored: dict[str, int] = field(default_factory=dict)


def scope_account(scope_id: str) -> str:
    """The account (amojo id) a scope belongs to: ``scope_id = {channel_id}_{amojo account id}``."""
    return scope_id.split("_", 1)[1] if "_" in scope_id else ""


def reply_from_hook(scope_id: str, integration_id: str, hook: dict[str, Any]) -> dict[str, Any] | None:
    """What the cabinet's chat needs to deliver one reply; None for a hook that is no message (typing, reaction)."""
    message = as_dict(hook.get("message"))
    body = as_dict(message.get("message"))
    conversation = as_dict(message.get("conversation"))
    conversation_id, message_id = conversation.get("client_id") or conversation.get("id"), body.get("id")
    if not isinstance(conversation_id, str) or not isinstance(message_id, str) or not body:
        return None
    receiver = as_dict(message.get("receiver"))
    return {
        "integration_id": integration_id,
        "scope_id": scope_id,
        "conversation_id": conversation_id[:100],
        "amojo_conversation_id": str(conversation.get("id") or "")[:100],
        "visitor_id": str(receiver.get("client_id") or receiver.get("id") or "")[:100],
        "message_id": message_id[:100],
        "type": str(body.get("type") or "text")[:20],
        "text": str(body.get("text") or "")[:4000],
        "media": str(body.get("media") or "")[:2000],
        "file_name": str(body.get("file_name") or "")[:255],
        "media_group_id": str(body.get("media_group_id") or "")[:100],
        "sent_at": message.get("msec_timestamp") or message.get("timestamp") or hook.get("time"),
    }


def accept_reply_hook(
    credentials: ChannelCredentials,
    scopes: ScopeLookup,
    replies: RepliesQueue,
    scope_id: str,
    body: bytes,
    signature: str,
    taken: TakenReplies | None = None,
    now: float | None = None,
) -> ReplyHookResult:
    if len(body) > MAX_HOOK_BYTES:
        return ReplyHookResult(413, {"error": "body_too_large"}, "body_too_large")
    if not signature or not hook_signature_valid(credentials.secret, body, signature):
        return ReplyHookResult(401, {"error": "bad_signature"}, "bad_signature")
    try:
        hook = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: a body nested thousands deep
        return ReplyHookResult(400, {"error": "malformed_body"}, "malformed_body")
    if not isinstance(hook, dict):
        return ReplyHookResult(400, {"error": "malformed_body"}, "malformed_body")
    integration_id = scopes.integration_of(scope_id) if 0 < len(scope_id) <= 200 else None
    if integration_id is None:
        return ReplyHookResult(404, {"error": "unknown_scope"}, "unknown_scope")
    if hook.get("account_id") != scope_account(scope_id):  # signed for another scope, posted to this one
        return ReplyHookResult(403, {"error": "not_this_scope"}, "not_this_scope")
    moment = time.time() if now is None else now
    sent = hook.get("time")
    if (
        isinstance(sent, bool)
        or not isinstance(sent, int | float)
        or not math.isfinite(sent)
        or not moment - MAX_AGE_SECONDS <= sent <= moment + MAX_SKEW_SECONDS
    ):
        return ReplyHookResult(403, {"error": "stale_hook"}, "stale_hook")
    reply = reply_from_hook(scope_id, integration_id, hook)
    if reply is None:
        kind = "typing" if "action" in hook else "not_a_message"
        return ReplyHookResult(200, {"accepted": 0, "ignored": 1}, ignored={kind: 1})
    keep_until = int(sent) + MAX_AGE_SECONDS + MAX_SKEW_SECONDS
    if taken is not None and not taken.first_delivery(scope_id, reply["message_id"], keep_until):
        return ReplyHookResult(200, {"accepted": 0, "ignored": 1}, ignored={"repeat": 1})
    try:
        replies.send(reply, group=reply["conversation_id"], deduplication_id=reply["message_id"])
    except InboxWriteError:  # amojo never resends: the log line and the 5xx alarm are all that is left
        if taken is not None:
            with contextlib.suppress(Exception):  # the 503 stands whatever this cleanup meets
                taken.forget(scope_id, reply["message_id"])  # not taken: a retry of it is no repeat
        return ReplyHookResult(503, {"error": "queue_unavailable"}, "queue_unavailable")
    return ReplyHookResult(200, {"accepted": 1, "ignored": 0}, accepted=1)
