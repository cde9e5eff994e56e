"""Backfill: import the conversations of a past period that no webhook brought in (both CRMs)."""
