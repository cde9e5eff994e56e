"""A worker batch reads its integrations' settings, connection states and tokens, and its talks' messages, ahead in
one request each (``store/read_ahead.py``), and never serves what it read ahead after something changed it."""

from __future__ import annotations

import os
import time
from collections import Counter

from leadbridge.aws.request_count import requests_so_far
from leadbridge.aws.store.batch_reads import BatchReads
from leadbridge.aws.store.ledger import ClaimAsRead, Claimed, DynamoLedger, LedgerEntry
from leadbridge.aws.store.read_ahead import NOT_READ_AHEAD, ReadAhead
from leadbridge.aws.store.tokens import DynamoTokens, TokenSet, token_key
from leadbridge.composition import refreshers
from leadbridge.crms.token_provider import TokenProvider
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import add_amo_talks, new_amo_integration, post_amo_talks, sample_body


def test_read_ahead_serves_each_item_once_and_remembers_what_is_absent(runner: LocalRunner) -> None:
    table = runner.stack.ref("LeadLedgerTable")
    client = runner.stack.client("dynamodb")
    present = [{"lead_key": {"S": f"read-ahead-test:{n}"}} for n in range(150)]
    for key in present:
        client.put_item(TableName=table, Item={**key, "n": {"N": key["lead_key"]["S"].rsplit(":", 1)[1]}})
    absent = {"lead_key": {"S": "read-ahead-test:none"}}
    log = runner.stack.moto.app.requests
    before = Counter(log)
    read_ahead = ReadAhead()
    read_ahead.load({table: [*present, absent, present[0]]})
    assert (Counter(log) - before)["dynamodb:BatchGetItem"] == 2  # 151 distinct keys: 100 a request

    assert read_ahead.take(table, present[7]) == {**present[7], "n": {"N": "7"}}
    assert read_ahead.take(table, present[7]) is NOT_READ_AHEAD  # once: a second read goes to the table
    assert read_ahead.take(table, absent) is None  # read, and not there
    assert read_ahead.take(table, {"lead_key": {"S": "never-asked"}}) is NOT_READ_AHEAD
    read_ahead.forget(table, present[8])
    assert read_ahead.take(table, present[8]) is NOT_READ_AHEAD
    read_ahead.clear()
    assert read_ahead.take(table, present[9]) is NOT_READ_AHEAD


def test_a_batch_reads_ahead_and_a_message_absorbed_in_it_reaches_its_lead(runner: LocalRunner) -> None:
    made = [new_amo_integration(runner, amo_note_enabled=False) for _ in range(3)]
    for k, (integration, _, _) in enumerate(made):
        add_amo_talks(runner, integration, range(81_000 + 10 * k, 81_002 + 10 * k))
    runner.drain(timeout=120, environments=0)
    integration, secret, account = made[0]
    talk = 81_000
    url = f"/hooks/amocrm/{integration.integration_id}/{secret}/"
    fields = {"account[subdomain]": integration.account_name, "account[id]": str(account)}
    fields |= {f"message[add][{i}][talk_id]": str(talk) for i in range(2)}
    # In the same batch as its talk and before it: the read ahead saw no messages; the lead must have them.
    assert runner.post(url, sample_body("amo_hook", "message_incoming.json", **fields)).status_code == 200
    for k, (each, each_secret, each_account) in enumerate(made):
        post_amo_talks(runner, each, each_secret, each_account, range(81_000 + 10 * k, 81_002 + 10 * k))

    reported_before, batches_before = requests_so_far(), runner.invocations.get("LeadWorkerFunction", 0)
    runner.drain(timeout=120, environments=0)  # the worker in this process: its own counter is read here
    spent = requests_so_far() - reported_before
    batches = runner.invocations.get("LeadWorkerFunction", 0) - batches_before
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] in {i.integration_id for i, _, _ in made}]
    assert len(leads) == 6
    chats = [[m["text"] for m in (lead.get("chat") or {}).get("messages", [])] for lead in leads]
    assert sorted(chats, key=len)[-1][:1] == ["Здравствуйте! Сколько стоит доставка в Казань?"]
    assert sum(1 for chat in chats if chat) == 1
    # Settings, states and tokens of three integrations, the talks' messages and the leads' Salesbot sessions:
    # read with the conversations' entries, one request a batch, not one by one.
    assert spent["dynamodb:GetItem"] <= 1  # the talk whose message came in the batch reads it again
    assert spent["dynamodb:BatchGetItem"] == batches >= 1


def test_a_batch_keeps_its_token_until_the_crm_refuses_it_and_never_past_its_end(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    table = runner.stack.ref("IntegrationsTable")
    elsewhere = DynamoTokens(table)  # another process: a refresh, or the OAuth callback of a re-connect
    read_ahead = ReadAhead()
    provider = TokenProvider(DynamoTokens(table, read_ahead), refreshers(os.environ["OAUTH_REDIRECT_URI"]))

    provider.begin_batch()
    read_ahead.load({table: [token_key(integration.integration_id)]})
    first = provider.get(integration)
    stored = elsewhere.read(integration.integration_id)
    assert stored is not None
    assert first.value == stored.tokens.access_token
    newer = TokenSet("access-newer", stored.tokens.refresh_token, int(time.time()) + 3600, None, stored.tokens.extra)
    elsewhere.save_new(integration.integration_id, integration.crm, newer)
    assert provider.get(integration).value == first.value  # the batch's read: no request per use
    again = provider.after_unauthorized(integration, first.version)  # the CRM refused it: the table's is taken
    assert again.value == "access-newer"
    assert again.version > first.version
    assert provider.get(integration).value == "access-newer"
    provider.end_batch()

    newest = TokenSet("access-newest", stored.tokens.refresh_token, int(time.time()) + 3600, None, stored.tokens.extra)
    elsewhere.save_new(integration.integration_id, integration.crm, newest)
    assert provider.get(integration).value == "access-newest"  # outside a batch every get reads the table


def test_claiming_keys_together_needs_the_item_as_the_batch_read_it(runner: LocalRunner) -> None:
    """One write claims a conversation and its other keys, and its entry is the one a read would show; a key that
    changed since the batch's read, or another key already final, refuses the whole write (nothing claimed)."""
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), retention_days=30)
    table = runner.stack.ref("LeadLedgerTable")
    own, session = "claim-together:lead:1", "claim-together:session:1"
    ledger.claim(own, "L1", "i-1", "webhook", now=1_000)
    ledger.finish(own, "waiting", last_error="open-lines activity not written yet")
    seen = BatchReads(ReadAhead(), runner.stack.ref("IntegrationsTable"), table).read([own, session], [])
    assert set(seen) == {own}  # the session has no item yet
    assert (seen[own].attempts, seen[own].state) == (1, "waiting")

    def together(
        seen: LedgerEntry | None, key: str = own, others: tuple[tuple[str, str], ...] = ((session, "S1"),)
    ) -> Claimed | None:
        claimed = ledger.claim_each([ClaimAsRead(key, "L1", "i-1", "webhook", seen, others)], now=3_000)
        return claimed[0] if claimed else None

    claimed = together(seen[own])
    assert claimed is not None
    assert claimed.entry == ledger.get(own)  # known without reading it back
    assert (claimed.entry.attempts, claimed.entry.first_seen_at, claimed.entry.state) == (2, 1_000, "in_progress")
    assert getattr(ledger.get(session), "state", None) == "in_progress"

    ledger.finish_all([own, session], "failed", last_error="released")
    stale = seen[own]  # attempts 1; the item says 2 now
    assert together(stale) is None
    fresh = ledger.get(own)
    assert fresh is not None
    assert (fresh.state, fresh.attempts) == ("failed", 2)  # untouched

    ledger.finish(session, "emitted")  # another event emitted the conversation meanwhile
    assert together(fresh) is None
    after = ledger.get(own)
    assert after is not None
    assert (after.state, after.attempts) == ("failed", 2)
    assert together(None, "claim-together:lead:2", ()) is not None
    assert together(None, "claim-together:lead:2", ()) is None


def test_several_outcomes_are_one_write_each_with_its_own_fields_or_nothing(runner: LocalRunner) -> None:
    """``finish_each``: each conversation's keys get their own fields in one request; a key named twice (two
    outcomes for one item, which a transaction refuses) writes nothing and says so."""
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), retention_days=30)
    keys = [f"finish-each:{n}" for n in range(3)]
    for n, key in enumerate(keys):
        ledger.claim(key, f"L{n}", "i-1", "webhook", now=1_000)
    assert not ledger.finish_each([([keys[0]], "emitted", {"leads_message_id": "m0"}), ([keys[0]], "failed", {})])
    assert {getattr(ledger.get(key), "state", None) for key in keys} == {"in_progress"}
    outcomes = [([keys[0], keys[1]], "emitted", {"leads_message_id": "m0"}), ([keys[2]], "emitted", {})]
    assert ledger.finish_each(outcomes)  # type: ignore[arg-type]
    items = {key: ledger._raw(key) for key in keys}
    assert {key: item["ledger_state"] for key, item in items.items()} == dict.fromkeys(keys, "emitted")
    assert [item.get("leads_message_id") for item in items.values()] == ["m0", "m0", None]
    assert not any("lease_until" in item for item in items.values())


def test_a_batchs_conversations_claimed_in_one_write_and_let_go_unused(runner: LocalRunner) -> None:
    """``claim_each``: several conversations (one with another key) in one write, each entry as a read would show
    it; ``unclaim`` lets go of the claims of that write only, giving their attempts back, and a batch that reads
    them again claims them again."""
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), retention_days=30)
    table = runner.stack.ref("LeadLedgerTable")
    fresh, retried, with_session, session = (f"claim-each:{name}" for name in ("a", "b", "c", "c-session"))
    ledger.claim(retried, "Lb", "i-1", "webhook", now=1_000)
    ledger.finish(retried, "failed", last_error="crm_unavailable")
    reads = BatchReads(ReadAhead(), runner.stack.ref("IntegrationsTable"), table)

    def claim_all(now: int) -> list[Claimed] | None:
        seen = reads.read([fresh, retried, with_session], [])
        claims = [
            ClaimAsRead(fresh, "La", "i-1", "webhook", seen.get(fresh)),
            ClaimAsRead(retried, "Lb", "i-1", "webhook", seen.get(retried)),
            ClaimAsRead(with_session, "Lc", "i-1", "webhook", seen.get(with_session), ((session, "Ls"),)),
        ]
        return ledger.claim_each(claims, now=now)

    claimed = claim_all(2_000)
    assert claimed is not None
    assert [c.entry for c in claimed] == [ledger.get(key) for key in (fresh, retried, with_session)]
    assert [c.entry.attempts for c in claimed] == [1, 2, 1]
    assert claim_all(2_001) is None  # held now: nothing written
    ledger.unclaim([fresh, with_session, session], claimed_at=1_999)  # not this write's: left alone
    assert {getattr(ledger.get(key), "state", None) for key in (fresh, with_session, session)} == {"in_progress"}
    ledger.unclaim([fresh, with_session, session], claimed_at=2_000)
    let_go = [ledger.get(key) for key in (fresh, with_session, session)]
    assert [(e.state, e.attempts) for e in let_go if e] == [("failed", 0)] * 3
    ledger.finish(retried, "failed")
    again = claim_all(3_000)
    assert again is not None
    assert [c.entry.attempts for c in again] == [1, 3, 1]
