"""Backfills of a past period: begin, the stepwise runner, the CRMs' listings, the operators' command."""
