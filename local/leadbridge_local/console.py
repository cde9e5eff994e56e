"""Output of the local commands: function logs to a file, results to the real stdout, progress to stderr."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import TextIO

from leadbridge_local.template import REPO_ROOT

OUT_DIR = REPO_ROOT / "out"


def capture_function_logs(name: str) -> tuple[TextIO, Path]:
    """Send everything the functions print (Powertools logs and metrics) to ``out/<name>.log``.

    Must run before any function module is imported: Powertools binds its handler to the stdout of that moment.
    Returns the real stdout for the command's own results.
    """
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"{name}.log"
    real = sys.stdout
    sys.stdout = path.open("w", encoding="utf-8")
    send_warnings_to(sys.stdout)
    os.environ["LEADBRIDGE_FUNCTION_LOG"] = str(path)  # the worker's execution environments (processes) too
    return real, path


def send_warnings_to(log: TextIO) -> None:
    """Library warnings (Powertools' "No application metrics to publish") belong with the function's own log,
    as in Lambda, not among a command's results."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        log.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
