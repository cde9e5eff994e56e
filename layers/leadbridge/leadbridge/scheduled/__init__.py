"""Scheduled work, fanned out: a schedule plans, one queued job per integration and kind does the work.

A schedule starts the planner, which puts one ``expand`` job per shard of the sparse ``scheduled-work`` index (or of
the tokens' refresh index) on the jobs queue; each ``expand`` job reads one page of its shard and puts one job per
integration (sweep, backfill step, token upkeep) and, when the shard has more, the ``expand`` job of its next page.
The jobs function runs them with bounded concurrency, each under its own deadline; see ``docs/operations.md``.
"""
