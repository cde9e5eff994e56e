"""What every worker batch reads first, in one request: its conversations' ledger entries (a duplicate of a
finished one needs nothing more; an open one can be claimed with its other keys in one write) and, for each
integration in it, the settings, the status (its connection state) and the token that its events would each read
on their own (``store/read_ahead.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from leadbridge.aws.store.dynamo import batch_get
from leadbridge.aws.store.integrations import settings_key, status_key
from leadbridge.aws.store.ledger import ENTRY_PROJECTION, LedgerEntry, entries_of
from leadbridge.aws.store.read_ahead import ReadAhead
from leadbridge.aws.store.tokens import token_key


class BatchReads:
    def __init__(self, read_ahead: ReadAhead, integrations_table: str, ledger_table: str) -> None:
        self.read_ahead = read_ahead
        self.integrations_table = integrations_table
        self.ledger_table = ledger_table

    def read(
        self, lead_keys: list[str], integration_ids: list[str], ledger_items: Sequence[str] = ()
    ) -> dict[str, LedgerEntry]:
        """Read ahead the integrations' items and ``ledger_items`` (other items of the ledger table the batch
        will read: amoCRM's talk messages, Salesbot sessions); return the ledger entries of ``lead_keys`` that
        exist."""
        wanted_entries = set(lead_keys)
        entry_keys = [{"lead_key": {"S": key}} for key in lead_keys]
        item_keys = [{"lead_key": {"S": key}} for key in ledger_items if key not in wanted_entries]
        per_integration = [key(each) for each in integration_ids for key in (settings_key, status_key, token_key)]
        wanted = {self.ledger_table: entry_keys + item_keys, self.integrations_table: per_integration}
        # A request has one projection a table: the entries' alone, or none when whole items come with them.
        found = batch_get(wanted, {} if item_keys else {self.ledger_table: ENTRY_PROJECTION})
        # The entries are the worker's (the ledger reads its own); the rest serve the stores that read them.
        entries = [item for item in found[self.ledger_table] if item["lead_key"]["S"] in wanted_entries]
        items = [item for item in found[self.ledger_table] if item["lead_key"]["S"] not in wanted_entries]
        self.read_ahead.hold(
            {self.integrations_table: per_integration, self.ledger_table: item_keys},
            {self.integrations_table: found[self.integrations_table], self.ledger_table: items},
        )
        return entries_of(entries)

    def end_batch(self) -> None:
        self.read_ahead.clear()
