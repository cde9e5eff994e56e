"""The request path of both webhooks: authenticate, parse, enqueue, answer. It never calls a CRM.

Every outcome is an HTTP status and a small JSON body. Untrusted input can only produce 2xx or 4xx; the one 5xx is
an inbox that cannot be written, so that the CRM retries (amoCRM does; Bitrix24 does not, which is why the
reconciliation sweep exists). The work untrusted input can cause is bounded: the body's size before anything else
(no settings read for a body no CRM would send), the form's fields while parsing, the events after.

A 4xx is only for a request that is forged or cannot be read. amoCRM retries any answer >= 300 and turns the whole
hook off after more than 100 bad answers in 2 hours (taking the talk events with it), so once the secret and the
account match, the answer is 2xx: what can be used is enqueued, the rest is counted by why (``dropped``: the
answer, a metric, the integration's status).
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from leadbridge.aws.queues import InboxMessage, InboxWriteError, received_stamp
from leadbridge.contract.integration import Integration
from leadbridge.contract.webhook_secret import hash_secret, secret_matches
from leadbridge.crms.amocrm.events import parse_amo_webhook, parse_message_events
from leadbridge.crms.bitrix24.events import parse_bitrix_event
from leadbridge.crms.formdata import FormDataError, parse_form


class IntegrationLookup(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


class Inbox(Protocol):
    def send_many(self, messages: list[InboxMessage]) -> None: ...


class DroppedEvents(Protocol):
    """Where the hook counts the items it could not use (the integration's status)."""

    def record_dropped(self, integration_id: str, counts: dict[str, int]) -> None: ...


@dataclass(frozen=True, slots=True)
class HookResult:
    status: int
    body: dict[str, object]
    # For metrics and logs; never contains values from the body.
    accepted: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)  # items a CRM sent that could not be used, by why


# amoCRM sends a handful of talks and messages per webhook (a message's text is up to 4,096 characters: ~24 KB of
# url-encoded Cyrillic each), Bitrix24 one event. The guard before authentication only bounds what a stranger can
# make us read; a genuine delivery is never near it. What is odd inside is dropped and counted after authentication.
MAX_WEBHOOK_BYTES = 1024 * 1024
MAX_EVENTS_PER_WEBHOOK = 100  # enqueued from one body (10 batch writes); the rest is dropped and counted


Admit = Callable[[str], bool]
THROTTLED_RETRY_SECONDS = 10


def throttled() -> HookResult:
    """This integration's deliveries are over its share for now (``admission.py``); the others' are not."""
    return HookResult(
        status=429, body={"error": "throttled", "retry_after": THROTTLED_RETRY_SECONDS}, reason="throttled"
    )


def reject(status: int, reason: str) -> HookResult:
    return HookResult(status=status, body={"error": reason}, reason=reason)


def authenticate(
    integrations: IntegrationLookup, crm: str, integration_id: str, secret: str, body: bytes
) -> Integration | HookResult:
    if len(body) > MAX_WEBHOOK_BYTES:
        return reject(413, "body_too_large")
    if not _plausible_id(integration_id):
        return reject(404, "unknown_integration")
    integration = integrations.get(integration_id)
    if integration is None or integration.crm != crm:
        secret_matches(secret, None)  # same work as a real comparison
        return reject(404, "unknown_integration")
    if not _secret_of(integration, secret):
        # A secret issued since the settings were cached: read them through once before refusing.
        integration = _read_through(integrations, integration_id)
        if integration is None or integration.crm != crm or not _secret_of(integration, secret):
            return reject(403, "bad_secret")
    if not integration.active:
        return reject(403, "integration_inactive")
    return integration


def _read_through(integrations: IntegrationLookup, integration_id: str) -> Integration | None:
    """The settings as stored now: past a cache (``CachedIntegrations.fresh``) when the lookup has one."""
    fresh = getattr(integrations, "fresh", None)
    return fresh(integration_id) if callable(fresh) else integrations.get(integration_id)


def _secret_of(integration: Integration, secret: str, now: float | None = None) -> bool:
    """The URL's secret is the integration's, or the one a rotation replaced while its grace lasts."""
    current = secret_matches(secret, integration.webhook_secret_hash)
    previous = secret_matches(secret, integration.previous_webhook_secret_hash)
    still = (integration.previous_secret_until or 0) > (time.time() if now is None else now)
    return current or (previous and still)


def _same(given: str, expected: str) -> bool:
    """Constant time on bytes: ``hmac.compare_digest`` refuses str that is not ASCII (a 500, not a 403)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _plausible_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value) and value.isascii()


def now_iso(now: datetime | None) -> str:
    return received_stamp(now.timestamp() if now else None)


def amo_account_mismatch(integration: Integration, subdomain: str | None, account_id: str | None) -> HookResult | None:
    """A refusal when what amoCRM says about the account is missing or is not the integration's account."""
    if subdomain is None and account_id is None:
        return reject(400, "missing_account")
    if subdomain is not None and subdomain.lower() != integration.account_name.lower():
        return reject(403, "account_mismatch")
    if integration.account_id and account_id and account_id != integration.account_id:
        return reject(403, "account_mismatch")
    return None


def accept_amocrm(
    integrations: IntegrationLookup,
    inbox: Inbox,
    integration_id: str,
    secret: str,
    body: bytes,
    now: datetime | None = None,
    dropped_to: DroppedEvents | None = None,
    admit: Admit | None = None,
) -> HookResult:
    found = authenticate(integrations, "amocrm", integration_id, secret, body)
    if isinstance(found, HookResult):
        return found
    integration = found
    try:
        form = parse_form(body)
    except FormDataError:
        return reject(400, "malformed_body")
    parsed = parse_amo_webhook(form)
    chat_messages, dropped = parse_message_events(form)
    mismatch = amo_account_mismatch(integration, parsed.subdomain, parsed.account_id)
    if mismatch is not None:
        return mismatch
    if parsed.malformed_talks:
        dropped["malformed_talk"] = parsed.malformed_talks
    account = parsed.account_id or integration.account_id
    received_at = now_iso(now)
    messages = [
        InboxMessage(
            integration_id=integration.integration_id,
            crm="amocrm",
            account=str(account),
            event=f"talk.{talk.action}",
            entity_type="talk",
            entity_id=talk.talk_id,
            received_at=received_at,
            payload=talk.payload(),
        )
        for talk in parsed.talks
    ] + [
        InboxMessage(
            integration_id=integration.integration_id,
            crm="amocrm",
            account=str(account),
            event="message.add",
            entity_type="talk_message",
            entity_id=chat_message.talk_id,
            received_at=received_at,
            payload=chat_message.payload(),
        )
        for chat_message in chat_messages
    ]
    if messages and account is None:  # the subdomain matched, but no account id to key the conversations by
        dropped["missing_account_id"] = len(messages)
        messages = []
    if len(messages) > MAX_EVENTS_PER_WEBHOOK:
        dropped["too_many_events"] = len(messages) - MAX_EVENTS_PER_WEBHOOK
        messages = messages[:MAX_EVENTS_PER_WEBHOOK]
    if messages and admit is not None and not admit(integration.integration_id):
        return throttled()  # amoCRM delivers it again (admission.py)
    result = enqueue(inbox, messages, parsed.other_events)
    if not dropped or result.status != 200:
        return result
    if dropped_to is not None:
        with contextlib.suppress(Exception):  # the status is advice; the answer to amoCRM must stay 2xx
            dropped_to.record_dropped(integration.integration_id, dropped)
    return replace(result, body={**result.body, "dropped": sum(dropped.values())}, dropped=dropped)


class TokenAdoption(Protocol):
    def adopt_application_token(self, integration_id: str, token_hash: str) -> bool: ...


def accept_bitrix24(
    integrations: IntegrationLookup,
    inbox: Inbox,
    integration_id: str,
    secret: str,
    body: bytes,
    now: datetime | None = None,
    adopt: TokenAdoption | None = None,
    admit: Admit | None = None,
) -> HookResult:
    found = authenticate(integrations, "bitrix24", integration_id, secret, body)
    if isinstance(found, HookResult):
        return found
    integration = found
    try:
        event = parse_bitrix_event(parse_form(body))
    except FormDataError:
        return reject(400, "malformed_body")
    if event.event is None or event.application_token is None or event.member_id is None:
        return reject(400, "malformed_event")
    if integration.account_id and not _same(event.member_id, integration.account_id):
        return reject(403, "member_mismatch")
    if not _application_token_of(integration, event.application_token, adopt, integrations):
        return reject(403, "bad_application_token")
    if event.domain is not None and event.domain != integration.crm_domain.lower() and not integration.account_id:
        # A renamed portal keeps its member_id: with the member known, the token and member authenticate it (the
        # worker learns the new address from the old one's REST redirect). Without it, the domain must match.
        return reject(403, "domain_mismatch")
    if event.entity_type is None:
        return HookResult(status=200, body={"accepted": 0, "ignored": 1}, ignored={event.event: 1})
    if event.entity_id is None:
        return reject(400, "missing_entity_id")
    message = InboxMessage(
        integration_id=integration.integration_id,
        crm="bitrix24",
        account=event.member_id,
        event=event.event,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        received_at=now_iso(now),
        payload=event.payload(),
    )
    if admit is not None and not admit(integration.integration_id):
        return throttled()  # the integration's next sweep lists it (admission.py)
    return enqueue(inbox, [message], {})


def _application_token_of(
    integration: Integration, token: str, adopt: TokenAdoption | None, integrations: IntegrationLookup
) -> bool:
    """The delivery's ``application_token`` is the integration's. None saved yet, on a connected portal (the URL's
    secret and the member already matched): the first one is kept, as Bitrix24's docs have an app do with the token
    its install event brings (events/safe-event-handlers), so the admin copies nothing; a later one must match."""
    candidate = hash_secret(token)
    expected = integration.application_token_hash or ""
    if expected:
        return hmac.compare_digest(candidate.encode(), expected.encode())
    if adopt is None or not integration.account_id:
        return False
    if adopt.adopt_application_token(integration.integration_id, candidate):
        return True
    current = _read_through(integrations, integration.integration_id)  # another delivery adopted one meanwhile
    saved = (current.application_token_hash or "") if current is not None else ""
    return bool(saved) and hmac.compare_digest(candidate.encode(), saved.encode())


def enqueue(inbox: Inbox, messages: list[InboxMessage], ignored: dict[str, int]) -> HookResult:
    if messages:
        try:
            inbox.send_many(messages)
        except InboxWriteError:
            return HookResult(status=503, body={"error": "inbox_unavailable"}, reason="inbox_unavailable")
    body: dict[str, object] = {"accepted": len(messages), "ignored": sum(ignored.values())}
    return HookResult(status=200, body=body, accepted=len(messages), ignored=ignored)
