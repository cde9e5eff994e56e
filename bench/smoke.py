"""Every benchmark run end to end at tiny sizes (``make bench-smoke``, in CI): seconds, not minutes.

A benchmark whose set-up broke (a function's environment it no longer provides, a moved module) fails here, and so
does one whose results lack a figure its full run publishes (the committed ``bench/*.json``, which the README's
tables show). Smoke figures are never compared with targets: the machine is noisy and the sizes are tiny.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "bench-smoke"
BENCHES = (  # (script, its full run's committed results, its smoke results)
    ("bench/run.py", REPO / "bench" / "results.json", OUT / "results.json"),
    ("bench/scale.py", REPO / "bench" / "scale-results.json", OUT / "scale-results.json"),
)


def main() -> int:
    problems: list[str] = []
    env = {**os.environ, "BENCH_SMOKE": "1"}
    for script, published, smoke in BENCHES:
        smoke.unlink(missing_ok=True)
        started = time.monotonic()
        run = subprocess.run([sys.executable, script], check=False, cwd=REPO, env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        if run.returncode != 0:
            problems.append(f"{script} failed ({run.returncode}):\n{run.stderr[-3000:]}")
            continue
        if not smoke.is_file():
            problems.append(f"{script} wrote no {smoke.relative_to(REPO)}")
            continue
        missing = sorted(set(json.loads(published.read_text())) - set(json.loads(smoke.read_text())))
        if missing:
            problems.append(f"{script}: its results lack {', '.join(missing)} (published in {published.name})")
        print(f"{script}: smoke run in {took:.0f} s, {len(json.loads(smoke.read_text()))} figures")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
