"""The worker's amoCRM enricher: a paced client per integration, the talk -> lead build, and the CRM note."""

from __future__ import annotations

from leadbridge.amocrm.client import AmoClient
from leadbridge.amocrm.enrich import NOTE_SERVICE, build_talk_lead
from leadbridge.http.ratelimit import WindowLimiter
from leadbridge.integration import Integration
from leadbridge.oauth.token_provider import TokenProvider
from leadbridge.queues import InboxMessage
from leadbridge.store.ledger import LedgerEntry
from leadbridge.worker import Emission, Skip


class AmoEnricher:
    def __init__(self, tokens: TokenProvider, requests_per_second: int) -> None:
        self.tokens = tokens
        self.requests_per_second = requests_per_second
        self._limiters: dict[str, WindowLimiter] = {}
        self.requests_made = 0

    def limiter(self, integration_id: str) -> WindowLimiter:
        if integration_id not in self._limiters:
            self._limiters[integration_id] = WindowLimiter(self.requests_per_second)
        return self._limiters[integration_id]

    def prepare(self, batch: list[tuple[InboxMessage, Integration]]) -> None:
        """amoCRM has no multi-entity read that would serve several talks at once; nothing to share."""

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip:
        if message.entity_type != "talk":
            return Skip(reason=f"unsupported amoCRM entity {message.entity_type}")
        client = AmoClient(integration, self.tokens, self.limiter(integration.integration_id))
        try:
            built = build_talk_lead(message, integration, client)
        finally:
            self.requests_made += client.requests_made
        facts = () if built.origin_known else ("unknown_origin",)
        crm_lead_id = built.crm_lead_id
        if not integration.amo_note_enabled or crm_lead_id is None or entry.note_state == "added":
            return Emission(lead=built.lead, notes=facts)

        def add_note() -> str:
            client.add_lead_note(crm_lead_id, NOTE_SERVICE, built.note_text())
            return "added"

        return Emission(lead=built.lead, after_emit=add_note, notes=facts)
