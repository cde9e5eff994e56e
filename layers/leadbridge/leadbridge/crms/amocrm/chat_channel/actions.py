"""The worker's side of the site chat channel: what the integrations API enqueued, done against amojo.

- ``channel_connect`` / ``channel_disconnect``: the account's ``amojo_id`` (REST, with the integration's OAuth
  token), then amojo's connect / disconnect; the ``scope_id`` and the state go into the status, the scope into the
  scope index (the replies hook's way back to the integration).
- ``site_chat_message``: the visitor's message as a signed ``new_message``, the chat created on the first one;
  once amojo took it, a marker makes a redelivery a no-op (idempotent on the cabinet's message id).
- ``site_chat`` (a conversation, not a side input): the lead, built from the first visitor message alone: the
  visitor, the exact analytics session, the first words. A talk webhook of the channel later joins it.
- ``channel_delivery``: a reply's delivery status back to amojo, when the cabinet reports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.chat_scopes import DynamoChatScopes
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.site_chats import DynamoSiteChats
from leadbridge.contract.attribution import attribute
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import (
    Channel,
    Chat,
    ChatMessage,
    Contact,
    NormalizedLead,
    SourceEntity,
    Utm,
    lead_id_for,
)
from leadbridge.contract.phones import clean_emails, phones_e164
from leadbridge.crms.amocrm.chat_channel.client import AmojoClient
from leadbridge.crms.amocrm.chat_channel.credentials import ChannelCredentials, ChannelNotConfigured, CredentialsSource
from leadbridge.crms.amocrm.chat_channel.messages import DELIVERY_CODES, chat_user, message_payload, sent_at
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.errors import CrmError, CrmUnavailable, RateLimited
from leadbridge.http.ratelimit import Budgets

logger = Logger(child=True)
SIDE_INPUTS = frozenset({"site_chat_message", "channel_connect", "channel_disconnect", "channel_delivery"})
FAILED_OTHER = 905  # amojo's "other" delivery error code (reference §4.5)


class ChannelUnusable(Exception):
    """The event cannot be done as things stand (no channel configured or connected): not worth a retry."""


class ChannelRetry(Exception):
    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds


class ChatChannel:
    def __init__(
        self,
        credentials: CredentialsSource | None,
        tokens: TokenProvider,
        budgets: Budgets,
        integrations: DynamoIntegrations,
        scopes: DynamoChatScopes,
        chats: DynamoSiteChats,
    ) -> None:
        self.credentials = credentials
        self.tokens = tokens
        self.budgets = budgets
        self.integrations = integrations
        self.scopes = scopes
        self.chats = chats
        self.requests_made = 0

    def channel_code(self) -> str | None:
        """The channel's code (a talk's ``origin`` when the talk is one of the channel's chats), if configured."""
        try:
            return self._credentials().channel_code
        except ChannelUnusable:
            return None
        except (BotoCoreError, ClientError) as exc:  # talks go on without the join rather than stop
            logger.warning("chat channel secret not read", extra={"error": type(exc).__name__})
            return None

    def act(self, message: InboxMessage, integration: Integration) -> None:
        try:
            if message.entity_type == "channel_connect":
                self._connect(message, integration)
            elif message.entity_type == "channel_disconnect":
                self._disconnect(integration)
            elif message.entity_type == "site_chat_message":
                self._send(message, integration)
            elif message.entity_type == "channel_delivery":
                self._deliver(message, integration)
        except (RateLimited, CrmUnavailable) as exc:
            raise ChannelRetry(f"chat channel: {type(exc).__name__}", 15) from exc

    def conversation_of_talk(self, message: InboxMessage) -> str | None:
        """The site chat conversation (its ledger key) a talk webhook of the channel belongs to."""
        code = self.channel_code()
        chat_id = message.payload.get("chat_id")
        if code is None or message.payload.get("origin") != code or not isinstance(chat_id, str) or not chat_id:
            return None
        conversation = self.chats.conversation_of_chat(message.account, chat_id)
        return f"amocrm:{message.account}:site_chat:{conversation}" if conversation else None

    def build_lead(self, message: InboxMessage, integration: Integration) -> NormalizedLead:
        """The request a cabinet conversation is: built from its first visitor message alone (no CRM read)."""
        first = dict(message.payload)
        sent = sent_at(first)
        channel = Channel(kind="online_chat", messenger=None, origin=self.channel_code() or "site_chat")
        session = first.get("session_id") if isinstance(first.get("session_id"), str) else None
        contact = Contact(
            name=str(first["name"])[:200] if first.get("name") else None,
            phones=phones_e164([str(first["phone"])] if first.get("phone") else [], integration.default_phone_region),
            emails=clean_emails([str(first["email"])] if first.get("email") else []),
        )
        attachment = first.get("attachment")
        words = first.get("text") or (f"[{attachment['type']}]" if isinstance(attachment, dict) else "")
        return NormalizedLead(
            lead_id=lead_id_for(message.lead_key),
            integration_id=integration.integration_id,
            crm="amocrm",
            crm_account=integration.account_name,
            source_entity=SourceEntity(type="site_chat", id=message.entity_id),
            channel=channel,
            created_at=sent,
            contact=contact,
            attribution=attribute(integration, channel, session, Utm()),
            employee_id=integration.employee_id,
            chat=Chat(messages=[ChatMessage(at=sent, author="client", text=str(words)[:4000])]) if words else None,
            received_at=datetime.fromisoformat(message.received_at),
        )

    # ------------------------------------------------------------------ side inputs
    def _connect(self, message: InboxMessage, integration: Integration) -> None:
        try:
            credentials = self._credentials()
        except ChannelUnusable as exc:
            self.integrations.set_chat_channel(integration.integration_id, "failed", error=str(exc))
            self._release_claim(integration)
            return
        limiter = self.budgets.for_integration(integration)
        rest = AmoClient(integration, self.tokens, limiter)
        amojo = AmojoClient(integration, credentials, limiter)
        try:
            amojo_account = rest.amojo_account_id()
            title = str(message.payload.get("title") or "leadbridge")[:100]
            scope_id = amojo.connect(amojo_account, title)
        except (RateLimited, CrmUnavailable):
            raise
        except CrmError as exc:
            self.integrations.set_chat_channel(
                integration.integration_id, "failed", error=f"{type(exc).__name__}: {exc}"
            )
            self._release_claim(integration)  # a failed connect holds the account for nobody
            return
        finally:
            self.requests_made += rest.requests_made + amojo.requests_made
        self.scopes.put(scope_id, integration.integration_id)
        self.integrations.set_chat_channel(
            integration.integration_id, "connected", scope_id=scope_id, amojo_account_id=amojo_account
        )
        logger.info("chat channel connected", extra={"integration_id": integration.integration_id})

    def _disconnect(self, integration: Integration) -> None:
        status = self.integrations.status(integration.integration_id)
        scope_id, amojo_account = status.get("chat_scope_id"), status.get("chat_amojo_account_id")
        if isinstance(amojo_account, str) and amojo_account:
            amojo = AmojoClient(integration, self._credentials(), self.budgets.for_integration(integration))
            try:
                amojo.disconnect(amojo_account)
            except CrmError as exc:
                if isinstance(exc, RateLimited | CrmUnavailable):
                    raise
                logger.warning("amojo disconnect refused", extra={"error": type(exc).__name__})
            finally:
                self.requests_made += amojo.requests_made
        if isinstance(scope_id, str) and scope_id:
            self.scopes.delete(scope_id)
        self.integrations.set_chat_channel(integration.integration_id, "disconnected")
        self._release_claim(integration)

    def _release_claim(self, integration: Integration) -> None:
        if integration.account_id:
            self.scopes.release_account(integration.account_id, integration.integration_id)

    def _send(self, message: InboxMessage, integration: Integration) -> None:
        account, visitor = message.account, dict(message.payload)
        if self.chats.was_sent(account, message.entity_id):
            return
        scope_id = self._scope(integration)
        amojo = AmojoClient(integration, self._credentials(), self.budgets.for_integration(integration))
        try:
            conversation = str(visitor["conversation_id"])
            chat_id = self.chats.chat_of(account, conversation)
            if chat_id is None:
                chat_id = amojo.create_chat(scope_id, conversation, chat_user(visitor))
                self.chats.remember_chat(account, conversation, chat_id)
            answer = amojo.new_message(scope_id, message_payload(visitor, None))
        except CrmError as exc:
            if isinstance(exc, RateLimited | CrmUnavailable):
                raise
            raise ChannelUnusable(f"amojo refused the message: {type(exc).__name__} {exc.code or ''}".strip()) from exc
        finally:
            self.requests_made += amojo.requests_made
        self.chats.mark_sent(account, message.entity_id, str(answer.get("msgid") or ""))

    def _deliver(self, message: InboxMessage, integration: Integration) -> None:
        status = str(message.payload.get("status"))
        amojo = AmojoClient(integration, self._credentials(), self.budgets.for_integration(integration))
        code = DELIVERY_CODES.get(status, -1)
        error = str(message.payload.get("error") or "")
        try:
            amojo.delivery_status(
                self._scope(integration), message.entity_id, code, FAILED_OTHER if code < 0 else None, error
            )
        except CrmError as exc:
            if isinstance(exc, RateLimited | CrmUnavailable):
                raise
            raise ChannelUnusable(f"amojo refused the delivery status: {type(exc).__name__}") from exc
        finally:
            self.requests_made += amojo.requests_made

    def _scope(self, integration: Integration) -> str:
        status: dict[str, Any] = self.integrations.status(integration.integration_id)
        scope_id = status.get("chat_scope_id")
        if status.get("chat_channel_state") != "connected" or not isinstance(scope_id, str) or not scope_id:
            raise ChannelUnusable("the chat channel is not connected to this account")
        return scope_id

    def _credentials(self) -> ChannelCredentials:
        if self.credentials is None:
            raise ChannelUnusable("no chat channel is configured for this stack")
        try:
            return self.credentials.get()
        except ChannelNotConfigured as exc:
            raise ChannelUnusable(str(exc)) from exc
