"""``make demo`` as a newcomer runs it: its own process, the README's first command."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_the_demo_prints_its_leads_and_no_library_warnings() -> None:
    # A fresh shell's environment: nothing of the suite's own local stack.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LEADBRIDGE_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = "layers/leadbridge:local"
    done = subprocess.run(
        [sys.executable, "-m", "leadbridge_local.demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2_000:]
    assert "7 leads from" in done.stdout
    assert "(0 dead-lettered)" in done.stdout
    assert "Warning" not in done.stderr, done.stderr  # library warnings go to the function log
    assert "Warning" not in done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-2_000:]  # every environment stopped cleanly
