"""The worker's amoCRM enricher: a batch of talks in a few requests, within the account's shared budget.

- The talk webhook already carries the lead id, the contact id, the origin and the times: the talk is read only
  when it names no lead (reference/amocrm-chats-events-dp.md B.1).
- ``prepare`` reads the leads of a whole batch in one request (``filter[id][]``, ``with=contacts``) and their
  contacts in another (B.2); ``build`` then reads from those answers. An account that refuses filtered reads (or
  answers them unfiltered: the API-filter add-on is paid, A.4) gets one read per id, and the status says so.
- The CRM notes of a batch go out in one request at the end of it (B.3), marked to trigger no digital pipeline.
- Chat messages (message webhooks) are kept per talk (``absorb``); the messages received before a talk's lead is
  built become its ``chat``, as Bitrix24's transcript does.
A single lead costs 2 requests (3 with its note); a batch of 10 from one account, 3.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.bot_sessions import session_key
from leadbridge.aws.store.ledger import LedgerEntry
from leadbridge.aws.store.talk_messages import DynamoTalkMessages, messages_key
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import Chat, ChatMessage
from leadbridge.crms.amocrm.chat_channel.actions import SIDE_INPUTS as CHANNEL_SIDE_INPUTS
from leadbridge.crms.amocrm.chat_channel.actions import ChannelRetry, ChannelUnusable, ChatChannel
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.continue_url import continue_url_allowed
from leadbridge.crms.amocrm.enrich import NOTE_SERVICE, AmoLead, BotSessions, build_stage_lead, build_talk_lead
from leadbridge.crms.amocrm.pipeline_triggers import CHAT_TRIGGER
from leadbridge.crms.amocrm.recovered import amo_talk_message
from leadbridge.crms.crm_values import as_dict, as_id, dicts, epoch_time, positive_int
from leadbridge.crms.enrichment import Emission, NotReadyYet, PoisonEvent, RetryLater, Skip, overlapped
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.errors import BadRequest, CrmError, CrmUnavailable, RateLimited
from leadbridge.http.ratelimit import Budgets

logger = Logger(child=True)
Author = Literal["client", "operator", "system"]
MAX_IDS_PER_READ = 50  # keeps the URL short, as amoCRM's guidance asks
AMOCRM_ACCOUNTS_AT_ONCE = 2  # a batch's accounts read at the same time (most batches hold one or two)
FILTERED_READS_REFUSED = "filtered_reads_refused"
CHAT_TRIGGER_ATTEMPTS = 4  # a chat trigger must have a chat: wait for the events log a little longer


class PrefetchedClient(AmoClient):
    """An amoCRM client that answers reads from what ``prepare`` fetched, and asks the CRM for the rest."""

    def __init__(self, inner: AmoClient, leads: dict[str, dict[str, Any]], contacts: dict[str, dict[str, Any]]) -> None:
        super().__init__(inner.integration, inner.tokens, inner.limiter)
        self.leads = leads
        self.contacts = contacts

    def get_lead(self, lead_id: str) -> dict[str, Any]:
        return self.leads.get(lead_id) or super().get_lead(lead_id)

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return self.contacts.get(contact_id) or super().get_contact(contact_id)


@dataclass
class _Account:
    """What one batch fetched for one integration, and the notes it still has to write."""

    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # (lead key, CRM lead id, text)


class BotSessionStore(Protocol):
    def for_leads(self, account: str, lead_ids: list[str]) -> dict[str, str]: ...

    def for_accounts(self, lead_ids: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]: ...


class AmoEnricher:
    def __init__(
        self,
        tokens: TokenProvider,
        budgets: Budgets,
        messages: DynamoTalkMessages,
        sessions: BotSessionStore,
        chat_channel: ChatChannel | None = None,
    ) -> None:
        self.chat_channel = chat_channel
        self.messages = messages
        self.sessions = sessions
        # account -> (the lead ids asked for, lead id -> session): the batch's Salesbot sessions, read in prepare
        self._bot_sessions: dict[str, tuple[set[str], dict[str, str]]] = {}
        self.tokens = tokens
        self.budgets = budgets
        self.requests_made = 0
        self.filtered_reads_refused: set[str] = set()
        self._accounts: dict[str, _Account] = {}
        self._integrations: dict[str, Integration] = {}

    def client(self, integration: Integration) -> AmoClient:
        return AmoClient(integration, self.tokens, self.budgets.for_integration(integration))

    def prepare(self, batch: list[tuple[InboxMessage, Integration]]) -> None:
        self._accounts.clear()
        self._prefetch_bot_sessions(batch)
        by_integration: dict[str, list[InboxMessage]] = {}
        for message, integration in batch:
            if message.entity_type == "talk":
                by_integration.setdefault(integration.integration_id, []).append(message)
                self._integrations[integration.integration_id] = integration
        # Accounts at the same time (``overlapped``), each account's requests one after another in its budget, two
        # accounts at a time (``AMOCRM_ACCOUNTS_AT_ONCE``): a request whose reservation comes back after its slot
        # takes a new one (a second write), and reservations sent all at once are the ones that come back late.
        for integration_id in by_integration:
            self._accounts[integration_id] = _Account()
        self.requests_made += overlapped(
            [
                partial(self._prefetch_account, self._integrations[i], messages)
                for i, messages in by_integration.items()
            ],
            at_once=AMOCRM_ACCOUNTS_AT_ONCE,
        )

    def _prefetch_account(self, integration: Integration, messages: list[InboxMessage]) -> int:
        """One account's share of the batch's reads; its CRM requests."""
        client = self.client(integration)
        try:
            self._prefetch(client, integration, messages, self._accounts[integration.integration_id])
        except CrmError as exc:  # each event meets the error again on its own and is handled there
            logger.warning("batch read failed", extra={"crm": "amocrm", "error": type(exc).__name__})
        return client.requests_made

    def _prefetch(
        self, client: AmoClient, integration: Integration, messages: list[InboxMessage], account: _Account
    ) -> None:
        if integration.integration_id in self.filtered_reads_refused:
            return
        lead_ids = {str(m.payload["entity_id"]) for m in messages if as_id(m.payload.get("entity_id"))}
        lead_ids = {i for i in lead_ids if i} - set(account.leads)
        for lead in self._read_many(client, integration, "leads", lead_ids, {"with": "contacts"}):
            account.leads[str(lead["id"])] = lead
        if integration.integration_id in self.filtered_reads_refused:  # the account showed it ignores filters
            return
        contact_ids = {str(m.payload["contact_id"]) for m in messages if as_id(m.payload.get("contact_id"))}
        for lead in account.leads.values():
            contacts = dicts(as_dict(lead.get("_embedded")).get("contacts"))
            main = [c for c in contacts if c.get("is_main") is True] or contacts
            if main and as_id(main[0].get("id")):
                contact_ids.add(str(main[0]["id"]))
        for contact in self._read_many(client, integration, "contacts", contact_ids, {}):
            account.contacts[str(contact["id"])] = contact

    def _read_many(
        self, client: AmoClient, integration: Integration, entity: str, ids: Iterable[str], extra: dict[str, str]
    ) -> list[dict[str, Any]]:
        wanted = sorted(ids, key=int)
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), MAX_IDS_PER_READ):
            chunk = wanted[start : start + MAX_IDS_PER_READ]
            try:
                items = client.list_by_ids(entity, chunk, extra)
            except BadRequest:
                items = None
            answered = {str(as_id(item.get("id"))) for item in items or []}
            if items is None or not answered <= set(chunk):  # refused, or the filter ignored: read one by one
                self.filtered_reads_refused.add(integration.integration_id)
                logger.warning("filtered reads refused; one read per id", extra={"crm": "amocrm", "entity": entity})
                return found
            found.extend(item for item in items if as_id(item.get("id")))
        return found

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip:
        if message.entity_type == "lead":
            return self._from_trigger(message, integration, entry)
        if message.entity_type == "site_chat" and self.chat_channel is not None:
            return Emission(lead=self.chat_channel.build_lead(message, integration))
        if message.entity_type != "talk":
            return Skip(reason=f"unsupported amoCRM entity {message.entity_type}")
        account = self._accounts.get(integration.integration_id) or _Account()
        client = PrefetchedClient(self.client(integration), account.leads, account.contacts)
        try:
            built = build_talk_lead(message, integration, client, self._bot_session_of(message.account))
        finally:
            self.requests_made += client.requests_made
        if message.conversation and not built.lead_is_new:
            return Skip(reason="same_conversation: the talk was attached to a lead that existed before it")
        emission = self._emission(built, message, message, integration, entry, account)
        site_chat = self.chat_channel.conversation_of_talk(message) if self.chat_channel else None
        return replace(emission, also_claims=(site_chat,)) if site_chat else emission

    def _from_trigger(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip:
        """A digital-pipeline trigger names a lead: its chat's talk is the conversation (the same key as the talk
        webhook's, so a trigger and a talk webhook for one chat give one lead); a lead without a chat is a lead of
        its own only when the integration asks for every lead entering the stage."""
        trigger = str(message.payload.get("trigger_code") or message.event.removeprefix("dp."))[:50]
        client = self.client(integration)
        sessions = self._bot_session_of(message.account)
        try:
            talks = client.lead_chat_talks(message.entity_id)
            if talks:
                talk = client.get_talk(talks[0])
                as_talk = amo_talk_message(
                    integration, message.account, talks[0], talk, time.time(), source=message.source
                )
                as_talk = replace(as_talk, received_at=message.received_at)
                built = build_talk_lead(as_talk, integration, client, sessions, trigger)
                account = self._accounts.setdefault(integration.integration_id, _Account())
                self._integrations[integration.integration_id] = integration
                emission = self._emission(built, as_talk, message, integration, entry, account)
                return replace(emission, also_claims=(as_talk.lead_key,))
            patience = CHAT_TRIGGER_ATTEMPTS if message.payload.get("trigger") == CHAT_TRIGGER else 2
            if entry.attempts < patience:  # the events log may lag the trigger by a moment
                raise NotReadyYet("the lead's chat is not in the events log yet", 10)
            if integration.amo_trigger_leads != "any_lead":
                return Skip(reason="no chat on the lead (trigger_leads: chats_only)")
            built = build_stage_lead(message, integration, client, sessions, trigger)
        finally:
            self.requests_made += client.requests_made
        account = self._accounts.setdefault(integration.integration_id, _Account())
        self._integrations[integration.integration_id] = integration
        return self._emission(built, message, message, integration, entry, account)

    def _emission(
        self,
        built: AmoLead,
        conversation: InboxMessage,
        message: InboxMessage,
        integration: Integration,
        entry: LedgerEntry,
        account: _Account,
    ) -> Emission:
        """The lead with its chat so far, the facts for the ledger, and the service note to write after it."""
        facts = () if built.origin_known else ("unknown_origin",)
        if integration.integration_id in self.filtered_reads_refused:
            facts = (*facts, FILTERED_READS_REFUSED)
        crm_lead_id = built.crm_lead_id
        chat = self._chat(conversation) if conversation.entity_type == "talk" else None
        emission = Emission(
            lead=built.lead.model_copy(update={"chat": chat}),
            notes=facts,
            crm_lead_id=crm_lead_id,
            crm_lead_created_at=built.crm_lead_created_at,
        )
        if not integration.amo_note_enabled or crm_lead_id is None or entry.note_state == "added":
            return emission
        self._accounts.setdefault(integration.integration_id, account)

        def queue_note() -> str:
            account.notes.append((message.lead_key, crm_lead_id, built.note_text()))
            return "queued"

        return replace(emission, after_emit=queue_note)

    def ledger_keys_ahead(self, messages: list[InboxMessage]) -> list[str]:
        """The talks' messages and the leads' Salesbot sessions, which ``prepare`` reads."""
        talks = [messages_key(m.account, m.entity_id) for m in messages if m.entity_type == "talk"]
        leads = _session_leads(messages)
        return talks + [session_key(account, lead_id) for account, ids in leads.items() for lead_id in sorted(ids)]

    def _prefetch_bot_sessions(self, batch: list[tuple[InboxMessage, Integration]]) -> None:
        """The Salesbot sessions of the batch's leads, one read for all its accounts (they win over the custom
        field; usually read ahead with the batch's first read)."""
        self._bot_sessions = {}
        wanted = _session_leads([message for message, _ in batch])
        if not wanted:
            return
        try:
            found = self.sessions.for_accounts(wanted)
        except (BotoCoreError, ClientError) as exc:  # each lead asks again on its own (and retries there)
            logger.warning("bot sessions not read", extra={"error": type(exc).__name__})
            return
        self._bot_sessions = {account: (lead_ids, found.get(account, {})) for account, lead_ids in wanted.items()}

    def _bot_session_of(self, account: str) -> BotSessions:
        asked, known = self._bot_sessions.get(account, (set(), {}))

        def session(lead_id: str) -> str | None:
            if lead_id in asked:
                return known.get(lead_id)
            return self.sessions.for_leads(account, [lead_id]).get(lead_id)  # a lead only the talk named

        return session

    def absorb(self, message: InboxMessage, integration: Integration) -> None:
        if message.entity_type == "bot_continue":
            self._continue_bot(message, integration)
            return
        if message.entity_type in CHANNEL_SIDE_INPUTS:
            if self.chat_channel is None:
                raise PoisonEvent("chat channel: not part of this worker")
            try:
                self.chat_channel.act(message, integration)
            except ChannelRetry as exc:
                raise RetryLater(exc.reason, exc.delay_seconds) from exc
            except ChannelUnusable as exc:
                raise PoisonEvent(f"chat channel: {exc}") from exc
            finally:
                self.requests_made += self.chat_channel.requests_made
                self.chat_channel.requests_made = 0
            return
        self.messages.add(message.account, message.entity_id, dict(message.payload))

    def _continue_bot(self, message: InboxMessage, integration: Integration) -> None:
        """Let the Salesbot that handed over a session go on (its hook stored the session already)."""
        url = message.payload.get("return_url")
        if not isinstance(url, str) or not continue_url_allowed(integration, url):
            raise PoisonEvent("bot_continue: not this account's continue URL")
        client = self.client(integration)
        try:
            client.continue_bot(url, {"leadbridge_session_saved": bool(message.payload.get("session_saved"))})
        except (RateLimited, CrmUnavailable) as exc:
            raise RetryLater(f"bot_continue: {type(exc).__name__}", 10) from exc
        except CrmError as exc:  # the bot gave up waiting, or the account refuses: nothing left to continue
            logger.warning("salesbot not continued", extra={"crm": "amocrm", "error": type(exc).__name__})
        finally:
            self.requests_made += client.requests_made

    def _chat(self, message: InboxMessage) -> Chat | None:
        """The talk's messages so far, in the order they were written (a talk with none has no chat yet)."""
        kept = self.messages.get(message.account, message.entity_id)
        if not kept:
            return None
        ordered = sorted(kept, key=lambda m: positive_int(m.get("created_at")) or 0)  # stable: arrival order ties
        return Chat(
            messages=[
                ChatMessage(
                    at=epoch_time(m.get("created_at")), author=_author(m.get("author")), text=str(m.get("text"))[:4000]
                )
                for m in ordered
                if m.get("text")
            ]
        )

    def other_keys(self, message: InboxMessage) -> tuple[str, ...]:
        """A talk's other key (its site chat, the talk a trigger's lead came from) is known once it is built."""
        return ()

    def finish_batch(self) -> list[tuple[str, str]]:
        """Write the batch's notes, one request per account, one account after another; (lead key, note state) for
        the ledger. Unlike the reads, nothing waits for them but the batch's end, and their budget writes, all at
        once after the leads are out, would meet each other at the store: slower writes, late slots, more writes."""
        states: list[tuple[str, str]] = []
        for integration_id, account in self._accounts.items():
            if not account.notes:
                continue
            client = self.client(self._integrations[integration_id])
            try:
                client.add_lead_notes([(lead_id, NOTE_SERVICE, text) for _, lead_id, text in account.notes])
                state = "added"
            except CrmError as exc:
                state = f"failed: {type(exc).__name__}"
                logger.warning("notes not written", extra={"crm": "amocrm", "error": type(exc).__name__})
            finally:
                self.requests_made += client.requests_made
            states.extend((lead_key, state) for lead_key, _, _ in account.notes)
            account.notes.clear()
        return states

    def follow_up(self, message: InboxMessage, finished: LedgerEntry) -> InboxMessage | None:
        """A returning client: amoCRM attached a talk whose conversation was emitted to another, newer lead.

        That is a new inquiry, so a new request for the cabinet (docs/lead-contract.md, "One conversation, one
        lead"): it becomes its own conversation, ``talk:<id>:lead:<lead id>``. Whether the lead is newer than the
        first conversation's is checked when it is read (a talk linked to an older, existing lead is not a new one).
        """
        named = message.payload.get("entity_id")
        if (
            message.entity_type != "talk"
            or message.conversation
            or not isinstance(named, str)
            or not finished.crm_lead_id
            or named == finished.crm_lead_id
        ):
            return None
        after = finished.crm_lead_created_at or finished.first_seen_at
        payload = {**message.payload, "returning_after": after}
        return replace(message, conversation=f"lead:{named}", payload=payload)


def _author(value: object) -> Author:
    if value == "operator":
        return "operator"
    if value == "system":
        return "system"
    return "client"


def _session_leads(messages: list[InboxMessage]) -> dict[str, set[str]]:
    """account -> the CRM lead ids of these talks' and leads' events (whose Salesbot sessions the batch reads)."""
    wanted: dict[str, set[str]] = {}
    for message in messages:
        lead_id = message.entity_id if message.entity_type == "lead" else as_id(message.payload.get("entity_id"))
        if message.entity_type in {"talk", "lead"} and lead_id:
            wanted.setdefault(message.account, set()).add(lead_id)
    return wanted
