"""Backfill logic without AWS: the period rule, the job record, the listing's cursor, the pace, the drift reading."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadbridge.contract.backfill_job import EARLIEST, MAX_PERIOD_DAYS, BackfillJob, InvalidPeriod, checked_period
from leadbridge.contract.integration import Integration
from leadbridge.flows.recovery.backfill.sources import AmoListing, BitrixListing
from leadbridge.flows.recovery.drift import CHECK_EVERY_SECONDS, DriftMark, DriftReading, due
from leadbridge.http.ratelimit import AMOCRM_RATE, Budgets
from tests.unit.test_ratelimit import MemoryState

NOW = 1_796_000_000
moments = st.integers(min_value=0, max_value=2 * NOW)


@given(start=st.integers(min_value=-(2**40), max_value=2 * NOW), end=moments, now=moments)
def test_a_period_is_accepted_only_when_it_makes_sense(start: int, end: int, now: int) -> None:
    try:
        period_from, period_to = checked_period(start, end, now)
    except InvalidPeriod:
        assert start < EARLIEST or start >= min(end, now) or min(end, now) - start > MAX_PERIOD_DAYS * 86_400
        return
    assert period_from >= EARLIEST
    assert period_from == start < period_to == min(end, now)
    assert period_to - period_from <= MAX_PERIOD_DAYS * 86_400


jobs = st.builds(
    BackfillJob,
    integration_id=st.text(min_size=1, max_size=20),
    backfill_id=st.text(min_size=1, max_size=16),
    crm=st.sampled_from(["amocrm", "bitrix24"]),
    period_from=moments,
    period_to=moments,
    started_at=moments,
    state=st.sampled_from(["running", "done", "cancelled"]),
    cursor=st.one_of(
        st.just({}),
        st.fixed_dictionaries({"page": st.integers(1, 10_000)}),
        st.fixed_dictionaries({"entity": st.sampled_from(["lead", "deal"]), "after_id": st.integers(0, 10**9)}),
    ),
    listing_done=st.booleans(),
    total=st.integers(0, 10**6),
    done=st.integers(0, 10**6),
    already_known=st.integers(0, 10**6),
    errors=st.integers(0, 10**6),
)


@given(job=jobs)
def test_the_job_record_round_trips(job: BackfillJob) -> None:
    record = {k: v for k, v in job.to_record().items() if v is not None}  # what DynamoDB keeps
    assert BackfillJob.from_record(record) == job
    assert job.remaining >= 0


class Pages:
    """A Bitrix24 client that answers crm.*.list from rows per entity, 50 a page by id, as the portal does."""

    def __init__(self, rows: dict[str, list[int]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, method: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append((method, params))
        entity = method.split(".")[1]
        after = params["filter"][">ID"]
        return [{"ID": str(i)} for i in sorted(self.rows[entity]) if i > after][:50]


def bitrix() -> Integration:
    return Integration(integration_id="b", crm="bitrix24", crm_domain="x.bitrix24.ru", account_id="m1")


def test_bitrix_listing_pages_leads_then_deals_then_stops() -> None:
    client = Pages({"lead": list(range(1, 121)), "deal": [5, 6]})
    listing = BitrixListing(bitrix(), client)  # type: ignore[arg-type]
    job = BackfillJob.new("b", "bitrix24", NOW - 86_400, NOW, NOW)
    seen: list[str] = []
    while True:
        keys, cursor = listing.page(job)
        seen.extend(keys)
        if cursor is None:
            break
        job = job.moved(cursor=cursor)
    assert seen == [f"lead#{i}" for i in range(1, 121)] + ["deal#5", "deal#6"]
    assert len(client.calls) == 4  # 50 + 50 + 20 leads, then the deals
    first = client.calls[0][1]["filter"]
    assert first[">=DATE_CREATE"] < first["<DATE_CREATE"]  # the period on both ends
    assert listing.lead_key("deal#5") == "bitrix24:m1:deal:5"


class Talks:
    def __init__(self, started: dict[str, int]) -> None:
        self.started = started

    def get_talk(self, talk_id: str) -> dict[str, Any]:
        return {"talk_id": int(talk_id), "created_at": self.started[talk_id], "entity_id": 1, "entity_type": "lead"}


def test_amocrm_keeps_only_talks_that_began_in_the_period() -> None:
    integration = Integration(integration_id="a", crm="amocrm", crm_domain="x.amocrm.ru", account_id="77")
    job = BackfillJob.new("a", "amocrm", NOW - 1_000, NOW, NOW)
    listing = AmoListing(integration, Talks({"1": NOW - 2_000, "2": NOW - 1_000, "3": NOW}))  # type: ignore[arg-type]
    assert listing.message(job, "talk#1", NOW) is None  # began before
    message = listing.message(job, "talk#2", NOW)
    assert message is not None
    assert message.source == "backfill"
    assert message.payload["backfill_id"] == job.backfill_id
    assert message.lead_key == listing.lead_key("talk#2") == "amocrm:77:talk:2"
    assert message.group_id == "a.backfill"  # never in front of the integration's webhooks
    assert listing.message(job, "talk#3", NOW) is None  # the end is exclusive


@pytest.mark.parametrize("share", [0.05, 0.25, 1.0])
def test_a_backfill_budget_is_a_share_of_the_crm_rate_on_its_own_key(share: float) -> None:
    budgets = Budgets(MemoryState())
    integration = Integration(integration_id="a", crm="amocrm", crm_domain="X.amocrm.ru")
    pace = budgets.for_backfill(integration, share)
    assert pace.rate.interval == pytest.approx(AMOCRM_RATE.interval / share)
    assert pace.key == "backfill:amocrm:x.amocrm.ru" != budgets.for_integration(integration).key


@given(chats=st.integers(0, 10**6), emitted=st.integers(-10, 10**6))
def test_drift_counts_only_chats_beyond_the_leads(chats: int, emitted: int) -> None:
    reading = DriftReading(since=0, until=1, unsorted_chats=chats, emitted=emitted)
    assert reading.missing == max(0, chats - emitted) >= 0


def test_drift_is_checked_once_an_hour() -> None:
    assert due(None, NOW)
    mark = DriftMark.from_status({"drift_mark_at": NOW, "drift_mark_emitted": 3})
    assert mark == DriftMark(NOW, 3)
    assert not due(mark, NOW + CHECK_EVERY_SECONDS - 1)
    assert due(mark, NOW + CHECK_EVERY_SECONDS)
    assert DriftMark.from_status({"drift_mark_at": "x"}) is None
