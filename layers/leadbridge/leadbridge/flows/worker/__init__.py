"""The lead worker: inbox batches to leads through the CRMs' enrichers, the ledger and parking."""
