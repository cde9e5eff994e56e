"""Execution environments as Lambda runs them: separate processes, each importing the function once.

Lambda gives a function several execution environments and no affinity: consecutive batches of one FIFO message
group land on whichever environment is free, each with its own memory (its own caches and in-process state). A
local runner that ran everything in one process would hide every bug that depends on that (an in-process rate
limiter, a per-process cache taken for shared state). So the local worker runs in ``size`` processes and the
poller hands each batch to a free one at random.

Each process reaches local AWS and the fake CRMs over HTTP, as the functions do in AWS. What a process's calls to
AWS were is sent back with each result (for the least-privilege check).
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import random
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from leadbridge_local.aws_calls import AwsCallRecorder
from leadbridge_local.console import send_warnings_to

FUNCTION_LOG_ENV = "LEADBRIDGE_FUNCTION_LOG"


def _serve(
    connection: Connection,
    path: str,
    handler_name: str,
    env: dict[str, str],
    logical_id: str,
    resources: dict[str, str],
) -> None:
    """The environment's life: import the function once (its cold start), then one invocation per message."""
    os.environ.update(env)
    if env.get(FUNCTION_LOG_ENV):  # the demo and the bench keep function logs out of their own output
        sys.stdout = open(env[FUNCTION_LOG_ENV], "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        send_warnings_to(sys.stdout)
    recorder = AwsCallRecorder()
    recorder.install(resources)
    spec = importlib.util.spec_from_file_location(f"leadbridge_fn_{logical_id}", path)
    if spec is None or spec.loader is None:
        connection.send(("error", f"cannot load {path}", {}))
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, handler_name)
    connection.send(("ready", None, {}))
    while True:
        request = connection.recv()
        if request is None:
            return
        event, context = request
        try:
            with recorder.invoking(logical_id):
                result = handler(event, context)
            outcome: tuple[str, Any] = ("ok", result)
        except Exception:
            outcome = ("error", traceback.format_exc())
        calls = {function: sorted(found) for function, found in recorder.calls.items()}
        recorder.calls.clear()
        connection.send((*outcome, calls))


class ExecutionEnvironment:
    def __init__(
        self, path: str, handler_name: str, env: dict[str, str], logical_id: str, resources: dict[str, str]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(child, path, handler_name, env, logical_id, resources),
            name=f"{logical_id}-env",
            daemon=True,
        )
        self.process.start()
        self.invocations = 0
        status, detail, _ = self.connection.recv()
        if status != "ready":
            raise RuntimeError(f"{logical_id} environment failed to start: {detail}")

    def invoke(self, event: dict[str, Any], context: Any) -> tuple[Any, dict[str, list[tuple[str, str]]]]:
        self.invocations += 1
        self.connection.send((event, context))
        status, detail, calls = self.connection.recv()
        if status != "ok":
            raise RuntimeError(f"invocation failed in its environment:\n{detail}")
        return detail, calls

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.connection.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


class EnvironmentPool:
    """``size`` environments of one function; ``invoke`` runs on a free one chosen at random."""

    def __init__(
        self, path: str, handler_name: str, env: dict[str, str], logical_id: str, resources: dict[str, str], size: int
    ) -> None:
        self.environments = [ExecutionEnvironment(path, handler_name, env, logical_id, resources) for _ in range(size)]
        self._free = list(self.environments)
        self._available = threading.Condition()
        self._random = random.Random()  # noqa: S311 - picking an environment, not a secret

    def invoke(self, event: dict[str, Any], context: Any) -> tuple[Any, dict[str, list[tuple[str, str]]]]:
        with self._available:
            while not self._free:
                self._available.wait()
            environment = self._free.pop(self._random.randrange(len(self._free)))
        try:
            return environment.invoke(event, context)
        finally:
            with self._available:
                self._free.append(environment)
                self._available.notify()

    def used(self) -> int:
        """How many environments have run at least one invocation."""
        return sum(1 for e in self.environments if e.invocations)

    def stop(self) -> None:
        for environment in self.environments:
            environment.stop()
