"""Shared fixtures: one local stack per test session (moto over HTTP, fake CRMs, the real handlers).

Every output line a test produced (stdout, stderr, log records) is kept, so that the last test of the suite can
check that no token, code or secret the fakes issued ever reached a log line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from leadbridge_local.runner import LocalRunner

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
CAPTURED_OUTPUT: list[str] = []

# Property tests judge what a parser does with an input, never how fast a loaded machine ran it: no per-example
# deadline (Hypothesis's default of 200 ms fails examples on a busy 2-core machine).
settings.register_profile("leadbridge", deadline=None)
settings.load_profile("leadbridge")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    CAPTURED_OUTPUT.extend([report.capstdout, report.capstderr, report.caplog])  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="session")
def runner() -> Iterator[LocalRunner]:
    with LocalRunner(
        amocrm_data=EVENTS / "crm_data" / "amocrm", bitrix24_data=EVENTS / "crm_data" / "bitrix24"
    ) as local:
        yield local


def load_event(folder: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / folder / name).read_text(encoding="utf-8"))
    return loaded
