"""The digital pipeline's two requests on the hook path: stage triggers and Salesbot ``widget_request``.

- A **trigger** (``POST .../dp``): authenticated like the talk hooks (the secret in the URL), checked against the
  account, answered at once and enqueued; the worker finds the lead's chat (reference E.1: the trigger names only
  the lead) and joins the talk's conversation.
- A **Salesbot request** (``POST .../salesbot``): amoCRM's JWT (HS512, the client secret) is what authenticates
  it; the session id the site script passed (``bot_params``) is stored for the lead before the answer, well within
  amoCRM's 2 seconds, and the worker calls the bot's continue URL (it holds the OAuth token; the hook never does).
A forged, altered or expired request changes nothing.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Protocol

from leadbridge.aws.queues import InboxMessage
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.bot_token import InvalidBotToken, verify_bot_token
from leadbridge.crms.amocrm.continue_url import continue_url_allowed
from leadbridge.crms.amocrm.pipeline_triggers import MalformedTrigger, read_tree, trigger_from_tree
from leadbridge.crms.formdata import FormNode, text
from leadbridge.flows.hooks.intake import (
    HookResult,
    Inbox,
    IntegrationLookup,
    amo_account_mismatch,
    authenticate,
    enqueue,
    now_iso,
    reject,
)

SESSION = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
LEAD_TYPES = {"lead", "leads", "2"}
SESSION_FIELDS = ("leadbridge_session", "session_id", "session")


class SessionStore(Protocol):
    def keep(self, account: str, lead_id: str, session_id: str, talk_id: str | None = None) -> bool: ...

    def first_use(self, account: str, token_id: str, expires_at: int) -> bool: ...

    def forget_use(self, account: str, token_id: str) -> None: ...


def accept_trigger(
    integrations: IntegrationLookup,
    inbox: Inbox,
    integration_id: str,
    secret: str,
    body: bytes,
    content_type: str,
    now: datetime | None = None,
) -> HookResult:
    found = _authenticated_tree(integrations, integration_id, secret, body, content_type, "malformed_trigger")
    if isinstance(found, HookResult):
        return found
    integration, tree = found
    try:
        parsed = trigger_from_tree(tree)
    except MalformedTrigger:
        return reject(400, "malformed_trigger")
    # The stage action's documented body has no account block: the URL's secret already named the integration, so
    # its own account stands in for a missing one (a present one must still match).
    if parsed.subdomain is not None or parsed.account_id is not None or integration.account_id is None:
        mismatch = amo_account_mismatch(integration, parsed.subdomain, parsed.account_id)
        if mismatch is not None:
            return mismatch
    if not parsed.triggers:
        ignored = sum(parsed.ignored.values()) or 1
        return HookResult(status=200, body={"accepted": 0, "ignored": ignored}, ignored=parsed.ignored)
    account = parsed.account_id or integration.account_id
    if account is None:
        return reject(400, "missing_account_id")
    messages = [
        InboxMessage(
            integration_id=integration.integration_id,
            crm="amocrm",
            account=account,
            event=f"dp.{trigger.type_code}",
            entity_type="lead",
            entity_id=trigger.lead_id,
            received_at=now_iso(now),
            payload=trigger.payload(),
        )
        for trigger in parsed.triggers
    ]
    return enqueue(inbox, messages, parsed.ignored)


def accept_salesbot(
    integrations: IntegrationLookup,
    bot_continues: Inbox,
    sessions: SessionStore,
    integration_id: str,
    secret: str,
    body: bytes,
    content_type: str,
    now: datetime | None = None,
) -> HookResult:
    found = _authenticated_tree(integrations, integration_id, secret, body, content_type, "malformed_request")
    if isinstance(found, HookResult):
        return found
    integration, request = found
    moment = now.timestamp() if now else time.time()
    try:
        claims = verify_bot_token(text(request, "token"), integration.client_secret, moment)
    except InvalidBotToken as exc:
        return reject(401, f"bot_token_{str(exc).replace(' ', '_')}")
    mismatch = amo_account_mismatch(integration, claims.subdomain, claims.account_id)
    if mismatch is not None:
        return mismatch
    account = claims.account_id or integration.account_id
    data = request.get("data")
    data = data if isinstance(data, dict) else {}
    # Only what the token signs names the entity: the step's data is the bot's to fill and nobody's to trust.
    entity = claims.entity_id
    on_lead = (claims.entity_type or "").lower() in LEAD_TYPES
    return_url = text(request, "return_url")
    if account is None or entity is None:
        return reject(400, "no_entity")
    if return_url is not None and not continue_url_allowed(integration, return_url):
        return reject(400, "bad_return_url")
    # One use per token (its jti, or what its signature signs): the continue URL is the sender's to choose, so a
    # captured request replayed with another one is refused all the same.
    use = claims.token_id
    if not sessions.first_use(account, use, claims.expires_at):
        return reject(401, "bot_token_replayed")
    session_id = next((v for f in SESSION_FIELDS if (v := text(data, f)) and SESSION.match(v)), None)
    if session_id is not None and on_lead:
        sessions.keep(account, entity, session_id, _digits(text(data, "talk_id")))
    kept = session_id is not None and on_lead
    ignored = {"session_without_lead": 1} if session_id is not None and not on_lead else {}
    if return_url is None:
        return HookResult(status=200, body={"accepted": 0, "session": kept}, ignored=ignored)
    message = InboxMessage(
        integration_id=integration.integration_id,
        crm="amocrm",
        account=account,
        event="salesbot.continue",
        entity_type="bot_continue",
        entity_id=entity,
        received_at=now_iso(now),
        payload={"return_url": return_url, "session_saved": kept},
    )
    result = enqueue(bot_continues, [message], {})  # the bot is waiting: not through the inbox's delay
    if result.status == 200:
        return HookResult(status=200, body={"accepted": 1, "session": kept}, accepted=1, ignored=ignored)
    sessions.forget_use(account, use)  # not taken: amoCRM may try the same token again
    return result


def _authenticated_tree(
    integrations: IntegrationLookup, integration_id: str, secret: str, body: bytes, content_type: str, malformed: str
) -> tuple[Integration, FormNode] | HookResult:
    """The integration (the secret in the URL checked) and the body as a tree, or the refusal."""
    found = authenticate(integrations, "amocrm", integration_id, secret, body)
    if isinstance(found, HookResult):
        return found
    try:
        return found, read_tree(body, content_type)
    except MalformedTrigger:
        return reject(400, malformed)


def _digits(value: str | None) -> str | None:
    return value if value is not None and value.isascii() and value.isdigit() and 0 < len(value) <= 20 else None
