"""Any JSON a CRM (or whatever answers in its name) sends: the builders either make a lead that fits the leads queue or
raise one of the CRM error classes; the worker never leaves a conversation in progress."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.ledger import AlreadyFinal, Claimed, HeldElsewhere, LedgerEntry, LedgerState
from leadbridge.contract.integration import Integration, SessionField, TrafficTarget
from leadbridge.contract.lead import MAX_LEAD_BYTES, fit_for_queue
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.enrich import build_talk_lead
from leadbridge.crms.bitrix24.client import BatchResult
from leadbridge.crms.bitrix24.enrich import BitrixLead, build_bitrix_lead
from leadbridge.crms.bitrix24.transcript import session_marker, transcript
from leadbridge.crms.enrichment import Emission, PoisonEvent, RetryLater, Skip
from leadbridge.flows.worker.lead_worker import LeadWorker
from leadbridge.http.errors import CrmError

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["²", "0001-01-01T00:00:00+03:00", "9999-12-31T23:59:59", "1726581298", "<html>", "Y"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)
# Keys the builders look for, so that the values under them get exercised, not just missed.
AMO_KEYS = ["id", "created_at", "name", "first_name", "custom_fields_values", "_embedded", "contacts", "values"]
B24_KEYS = ["ID", "NAME", "PHONE", "EMAIL", "IM", "DATE_CREATE", "SOURCE_ID", "UTM_SOURCE", "CONTACT_ID", "VALUE"]


def shaped(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(json_values, st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)))


AMO = Integration(
    integration_id="p",
    crm="amocrm",
    crm_domain="p.amocrm.ru",
    account_id="1",
    session_field=SessionField(field_id=5),
    default_target=TrafficTarget(campaign_id=1),
)
B24 = Integration(integration_id="q", crm="bitrix24", crm_domain="q.bitrix24.ru", account_id="m")


class AnsweringClient(AmoClient):
    """An amoCRM client whose every read answers the given JSON (as ``_entity`` would hand it over)."""

    def __init__(self, lead: Any, contact: Any, talk: Any) -> None:
        self.answers = {"leads": lead, "contacts": contact, "talks": talk}
        self.requests_made = 0

    def _entity(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        answer = self.answers[path.split("/")[3]]
        return answer if isinstance(answer, dict) else {"_items": answer}


def message(crm: str, entity_type: str, entity_id: str, payload: dict[str, Any]) -> InboxMessage:
    return InboxMessage(
        integration_id="p",
        crm=crm,
        account="1",
        event="e",
        entity_type=entity_type,
        entity_id=entity_id,
        received_at=datetime(2026, 3, 1, tzinfo=UTC).isoformat(),
        payload=payload,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    lead=shaped(AMO_KEYS),
    contact=shaped(AMO_KEYS),
    talk=shaped(["entity_id", "contact_id", "origin", "created_at", "_embedded"]),
    payload=st.dictionaries(st.sampled_from(["entity_id", "contact_id", "origin", "created_at"]), json_values),
    ids_known=st.booleans(),
)
def test_amocrm_builder_on_any_answers(
    lead: Any, contact: Any, talk: Any, payload: dict[str, Any], ids_known: bool
) -> None:
    if ids_known:  # mostly the webhook names the lead and the contact, so their answers are read
        payload |= {"entity_id": "3", "contact_id": "4", "entity_type": "lead"}
    try:
        built = build_talk_lead(message("amocrm", "talk", "7", payload), AMO, AnsweringClient(lead, contact, talk))
    except CrmError:
        return
    assert len(fit_for_queue(built.lead).model_dump_json().encode()) <= MAX_LEAD_BYTES


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    entity=shaped(B24_KEYS),
    contact=shaped(B24_KEYS),
    activities=st.one_of(json_values, st.lists(shaped(["RESULT_SOURCE_ID", "PROVIDER_PARAMS"]), max_size=2)),
    history=shaped(["message", "users"]),
    errors=st.dictionaries(st.sampled_from(["x0_e", "x0_c"]), json_values, max_size=2),
)
def test_bitrix24_builder_on_any_answers(entity: Any, contact: Any, activities: Any, history: Any, errors: Any) -> None:
    batch = BatchResult(results={"x0_e": entity, "x0_c": contact, "x0_a": activities, "x0_h": history}, errors=errors)
    try:
        built = build_bitrix_lead(message("bitrix24", "lead", "7", {}), B24, batch, "x0_", give_up_waiting=True)
    except CrmError:
        return
    if isinstance(built, BitrixLead):
        assert len(fit_for_queue(built.lead).model_dump_json().encode()) <= MAX_LEAD_BYTES


@settings(max_examples=300)
@given(history=json_values)
def test_transcript_and_session_marker_on_any_history(history: Any) -> None:
    transcript(history if isinstance(history, dict) else {"message": history})
    session_marker(history if isinstance(history, dict) else None)


# ---------------------------------------------------------------- the worker, whatever the enricher raises


class MemoryLedger:
    def __init__(self) -> None:
        self.states: dict[str, LedgerState] = {}

    def claim(
        self, lead_key: str, lead_id: str, integration_id: str, source: str, now: int | None = None
    ) -> Claimed | AlreadyFinal | HeldElsewhere:
        self.states[lead_key] = "in_progress"
        return Claimed(LedgerEntry(lead_key, "in_progress", 1, 0))

    def finish(self, lead_key: str, state: LedgerState, **fields: object) -> None:
        self.states[lead_key] = state

    def finish_all(self, lead_keys: list[str], state: LedgerState, **fields: object) -> None:
        for lead_key in lead_keys:
            self.states[lead_key] = state

    def finish_each(self, outcomes: list[tuple[list[str], LedgerState, dict[str, object]]]) -> bool:
        for lead_keys, state, _ in outcomes:
            self.finish_all(lead_keys, state)
        return True

    def set_fields(self, lead_key: str, **fields: object) -> None:
        pass

    def set_each(self, changes: list[tuple[str, dict[str, object]]]) -> None:
        pass

    def finished(self, lead_keys: list[str]) -> set[str]:
        return set()


class Quiet:
    def record_outcome(self, *args: object, **kwargs: object) -> None: ...

    def record_delivery(self, *args: object) -> None: ...

    def set_connection_state(self, *args: object, **kwargs: object) -> None: ...

    def record_unknown_channel(self, *args: object) -> None: ...

    def record_notice(self, *args: object) -> None: ...

    def __call__(self, *args: object, **kwargs: object) -> None: ...

    def waiting_for(self, integration_id: str) -> tuple[str | None, float]:
        return None, 0.0

    def park(self, *args: object) -> None: ...

    def publish(self, lead_json: str, lead_id: str, integration_id: str) -> str:
        return "m"

    def get(self, integration_id: str) -> Integration:
        return AMO


class AnswersEnricher:
    def __init__(self, lead: Any, contact: Any) -> None:
        self.lead, self.contact = lead, contact

    def prepare(self, batch: Any) -> None: ...

    def other_keys(self, message: InboxMessage) -> tuple[str, ...]:
        return ()

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip:
        built = build_talk_lead(message, integration, AnsweringClient(self.lead, self.contact, {}))
        return Emission(lead=built.lead)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(lead=shaped(AMO_KEYS), contact=shaped(AMO_KEYS))
def test_the_worker_never_leaves_a_conversation_in_progress(lead: Any, contact: Any) -> None:
    ledger, quiet = MemoryLedger(), Quiet()
    worker = LeadWorker(
        integrations=quiet,
        status=quiet,
        ledger=ledger,
        leads=quiet,
        enrichers={"amocrm": AnswersEnricher(lead, contact)},
        count=quiet,
        parking=quiet,
    )
    with contextlib.suppress(RetryLater, PoisonEvent):
        worker.handle(message("amocrm", "talk", "7", {"entity_id": "3", "contact_id": "4"}))
    assert ledger.states
    assert "in_progress" not in ledger.states.values()
