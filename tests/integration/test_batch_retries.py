"""A record that must be retried holds its integration's FIFO group only for the worker's backoff.

Lambda's poller leaves a failed record invisible for whatever the function set, else for the queue's visibility
timeout (360 s). The records of the same group behind a failed one are failed without being tried; unless the
worker sets their visibility too, the whole integration waits six minutes for a 12-second outage. The runner here
leaves visibility as the function set it, as Lambda does.
"""

from __future__ import annotations

import threading
import time

from leadbridge_local.fakes.base import Faults
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import add_amo_talks, integration_status, new_amo_integration, post_amo_talks

TALKS = [7_901, 7_902, 7_903]


def test_records_behind_a_retried_one_come_back_with_it(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, integration, TALKS)
    saved = runner.amocrm.faults, runner.retry_visibility_seconds
    runner.retry_visibility_seconds = None
    runner.amocrm.faults = Faults(ratio=1.0, kinds=("5xx",))  # amoCRM is down
    retried_before = runner.retried_records
    try:
        post_amo_talks(runner, integration, secret, account, TALKS)
        drained = threading.Thread(target=runner.drain, kwargs={"timeout": 120})
        drained.start()
        while runner.retried_records - retried_before < len(TALKS) and drained.is_alive():
            time.sleep(0.05)  # the first batch came back failed: every record of the group handed back
        runner.amocrm.faults = Faults()  # the outage is over
        over = time.monotonic()
        drained.join(400)
        recovered_in = time.monotonic() - over
    finally:
        runner.amocrm.faults, runner.retry_visibility_seconds = saved
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert sorted(int(lead["source_entity"]["id"]) for lead in leads) == TALKS
    # The worker's backoff is 5 s: with the queue's 360 s for the skipped records it would be six minutes (or two,
    # were the claims the batch took ahead for them not let go).
    assert recovered_in < 90, recovered_in
    # Each event accepted once: a claim let go unused gives its attempt back.
    assert integration_status(runner, integration.integration_id)["count_accepted"] == len(TALKS)
