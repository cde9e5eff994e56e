"""What every worker batch reads first, in one request: its conversations' ledger states (a duplicate of a
finished one needs nothing more) and, for each integration in it, the settings, the status (its connection state)
and the token that its events would each read on their own (``store/read_ahead.py``)."""

from __future__ import annotations

from leadbridge.aws.store.integrations import settings_key, status_key
from leadbridge.aws.store.ledger import FINAL_STATES
from leadbridge.aws.store.read_ahead import ReadAhead
from leadbridge.aws.store.tokens import token_key


class BatchReads:
    def __init__(self, read_ahead: ReadAhead, integrations_table: str, ledger_table: str) -> None:
        self.read_ahead = read_ahead
        self.integrations_table = integrations_table
        self.ledger_table = ledger_table

    def read(self, lead_keys: list[str], integration_ids: list[str]) -> set[str]:
        """Read ahead the integrations' items; return which of ``lead_keys`` are final (emitted or skipped)."""
        ledger_keys = [{"lead_key": {"S": key}} for key in dict.fromkeys(lead_keys)]
        per_integration = [
            key(integration_id)
            for integration_id in dict.fromkeys(integration_ids)
            for key in (settings_key, status_key, token_key)
        ]
        self.read_ahead.load(
            {self.ledger_table: ledger_keys, self.integrations_table: per_integration},
            projections={self.ledger_table: "lead_key, ledger_state"},
        )
        finished = set()
        for key in ledger_keys:  # taken here: the ledger's own reads and writes never go through the read-ahead
            item = self.read_ahead.take(self.ledger_table, key)
            if isinstance(item, dict) and item.get("ledger_state", {}).get("S") in FINAL_STATES:
                finished.add(key["lead_key"]["S"])
        return finished

    def end_batch(self) -> None:
        self.read_ahead.clear()
