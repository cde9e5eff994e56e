"""The local stack: real handlers behind the template's routes, real queues, fake CRMs. Not shipped to Lambda.

- HTTP: a loopback server turns each request into an API Gateway HTTP API (2.0) event for the function whose
  route matches, exactly as listed in ``template.yaml``.
- SQS: ``drain()`` receives real batches from the local inbox (pollers of its own for each source) and hands each
  to a free worker execution environment at random (``environments`` processes, each importing the function once,
  as Lambda runs them: no affinity per message group), several groups at once up to the event source's maximum
  concurrency; messages it reports as failed come back after a (compressed) visibility timeout, and after
  ``maxReceiveCount`` SQS moves them to the DLQ by the queue's own redrive policy. ``environments=0`` runs the worker in this process (debugging).
- Schedules: ``run_schedule(plan)`` fires one of the scheduler's schedules and drains the jobs it plans.
- TTL: DynamoDB's Time to Live, which moto lacks, deletes expired items in the background on the runner's clock;
  ``expire_ttl()`` runs it at once (tests advance ``clock`` first).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import httpx

from leadbridge_local.aws import LocalStack, forget_clients, free_port, local_aws
from leadbridge_local.aws_calls import AwsCallRecorder, resources_of
from leadbridge_local.environments import EnvironmentPool
from leadbridge_local.fakes.amocrm import FakeAmoCRM
from leadbridge_local.fakes.amojo import FakeAmojo
from leadbridge_local.fakes.base import FakeClock
from leadbridge_local.fakes.bitrix24 import FakeBitrix24
from leadbridge_local.fakes.server import FakeCrmServer
from leadbridge_local.lambda_events import LambdaContextStub, http_api_event, match_route, sqs_event
from leadbridge_local.loopback import HttpRequest, HttpResponse, LoopbackServer
from leadbridge_local.template import REPO_ROOT, http_routes
from leadbridge_local.ttl_sweeper import TtlSweeper

Handler = Callable[[dict[str, Any], Any], Any]
ORIGIN_OVERRIDE_ENV = "LEADBRIDGE_CRM_ORIGIN_OVERRIDE"
SEND_LOG_ENV = "LEADBRIDGE_CRM_SEND_LOG"


@contextmanager
def _event_loop_like_lambda() -> Iterator[None]:
    """Lambda runs a handler on the main thread, where ``asyncio.get_event_loop()`` works (Mangum relies on it).
    The runner serves requests on other threads, so it gives each invocation thread a loop of its own."""
    if threading.current_thread() is threading.main_thread():
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class LocalRunner:
    def __init__(
        self,
        amocrm_data: Path | None = None,
        bitrix24_data: Path | None = None,
        retry_visibility_seconds: int | None = 1,
        environments: int | None = None,
        parameters: dict[str, str] | None = None,
    ) -> None:
        self.environments = (
            environments if environments is not None else int(os.environ.get("LEADBRIDGE_LOCAL_ENVIRONMENTS", "4"))
        )
        self._pools: dict[str, EnvironmentPool] = {}
        self._pool_lock = threading.Lock()
        self.clock = FakeClock()
        self.amocrm = FakeAmoCRM(self.clock, data_dir=amocrm_data)
        self.bitrix24 = FakeBitrix24(self.clock, data_dir=bitrix24_data)
        self.amojo = FakeAmojo(self.amocrm, self.clock)
        self.crm_server = FakeCrmServer(self.amocrm, self.bitrix24, self.amojo)
        # Failed records made visible again after this many seconds, to keep local runs short; None leaves them as
        # the function set them, as Lambda's poller does (and the queue's visibility timeout where it set nothing).
        self.retry_visibility_seconds = retry_visibility_seconds
        self.http_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self._modules: dict[str, ModuleType] = {}
        # Template parameters as `sam deploy --parameter-overrides` sets them (benchmarks size a stack this way).
        self._aws = local_aws(public_base_url=self.base_url, parameters=parameters)
        self._saved_env: dict[str, str | None] = {}
        self.stack: LocalStack
        self._http = LoopbackServer(self._api, name="local-api", port=self.http_port)
        # The CRMs' side of a webhook: a new connection each (as a CRM's sender opens one); one client for all of
        # them, since making one costs 30 ms of this process's CPU (an SSL context), which the stack's hooks share.
        self._poster = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        self.invocations: dict[str, int] = {}
        self.invocation_seconds: dict[str, list[float]] = {}  # wall time of each invocation, by function
        self.retried_records = 0
        self._settling = threading.Lock()
        self.ttl: TtlSweeper
        self.aws_calls = AwsCallRecorder()
        self._scratch = tempfile.TemporaryDirectory(prefix="leadbridge-local-")
        self.send_log = Path(self._scratch.name) / "crm-sends.jsonl"  # every process's CRM send instants

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalRunner:
        self.crm_server.start()
        self.stack = self._aws.__enter__()
        # The chat channel amoCRM registered (the fake amojo's), put in as an operator would after the deploy.
        self.stack.client("secretsmanager").put_secret_value(
            SecretId=self.stack.ref("ChatChannelSecret"), SecretString=self.amojo.credentials_json()
        )
        self.aws_calls.install(resources_of(self.stack))
        forget_clients()  # the layer's clients are made again, through the recorded session
        environment = {
            **self.stack.process_environment(),
            ORIGIN_OVERRIDE_ENV: self.crm_server.origin,
            SEND_LOG_ENV: str(self.send_log),
        }
        environment.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Leadbridge")
        self._saved_env = {k: os.environ.get(k) for k in environment}
        os.environ.update(environment)
        self._reset_http_client()
        self._http.start()
        self.ttl = TtlSweeper(self.stack, self.clock.now)
        self.ttl.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.ttl.stop()
        for pool in self._pools.values():
            pool.stop()
        self._http.stop()
        self._poster.close()
        self.crm_server.stop()
        self._aws.__exit__(exc_type, exc, tb)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._reset_http_client()
        self._scratch.cleanup()

    @staticmethod
    def _reset_http_client() -> None:
        from leadbridge.http.client import crm_http  # noqa: PLC0415 - a per-process cache, reset between stacks

        crm_http.cache_clear()

    # ------------------------------------------------------------------ functions
    def module(self, logical_id: str) -> ModuleType:
        """Import a function's entry point from its CodeUri, as Lambda would (one module per function)."""
        if logical_id not in self._modules:
            spec_props = self.stack.template["Resources"][logical_id]["Properties"]
            module_name, _ = spec_props["Handler"].rsplit(".", 1)
            path = REPO_ROOT / spec_props["CodeUri"] / f"{module_name}.py"
            spec = importlib.util.spec_from_file_location(f"leadbridge_fn_{logical_id}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._modules[logical_id] = module
        return self._modules[logical_id]

    def handler(self, logical_id: str) -> Handler:
        spec_props = self.stack.template["Resources"][logical_id]["Properties"]
        function: Handler = getattr(self.module(logical_id), spec_props["Handler"].rsplit(".", 1)[1])
        return function

    def invoke(self, logical_id: str, event: dict[str, Any], context: Any = None) -> Any:
        self.invocations[logical_id] = self.invocations.get(logical_id, 0) + 1
        timeout = int(self.stack.template["Resources"][logical_id]["Properties"].get("Timeout", 10))
        context = context or LambdaContextStub(function_name=logical_id, timeout_seconds=timeout)
        started = time.monotonic()
        try:
            with _event_loop_like_lambda(), self.aws_calls.invoking(logical_id):
                return self.handler(logical_id)(event, context)
        finally:
            self._timed(logical_id, time.monotonic() - started)

    def _timed(self, logical_id: str, seconds: float) -> None:
        with self._settling:
            self.invocation_seconds.setdefault(logical_id, []).append(seconds)

    # ------------------------------------------------------------------ HTTP
    def http_event(
        self, method: str, url_path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, dict[str, Any]] | None:
        for route_method, route_path, function in http_routes(self.stack.template):
            if route_method not in {method, "ANY"}:
                continue
            params = match_route(route_path, url_path)
            if params is not None:
                return function, http_api_event(method, route_path, url_path, params, query, headers, body)
        return None

    def _api(self, request: HttpRequest) -> HttpResponse:
        found = self.http_event(request.method, request.path, request.raw_query, request.headers, request.body)
        if found is None:
            return HttpResponse(404, b'{"message":"Not Found"}', {"content-type": "application/json"})
        function, event = found
        try:
            response = self.invoke(function, event)
        except Exception:  # an unhandled error is API Gateway's 500; Lambda would log it
            logging.getLogger("leadbridge_local").exception("%s failed", function)
            return HttpResponse(500, b'{"message":"Internal Server Error"}', {"content-type": "application/json"})
        return HttpResponse(
            int(response.get("statusCode", 200)),
            str(response.get("body") or "").encode(),
            dict(response.get("headers") or {}),
        )

    def post(
        self, path: str, body: bytes | str, content_type: str = "application/x-www-form-urlencoded"
    ) -> httpx.Response:
        data = body.encode() if isinstance(body, str) else body
        return self._poster.post(self.base_url + path, content=data, headers={"Content-Type": content_type})

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.base_url + path, params=params, timeout=30)

    # ------------------------------------------------------------------ queues
    def pool(self, logical_id: str) -> EnvironmentPool:
        """The function's execution environments (started on first use, kept for the runner's life; the first
        batches of two queues may ask at once, and only one pool may be started)."""
        with self._pool_lock:
            return self._pool(logical_id)

    def _pool(self, logical_id: str) -> EnvironmentPool:
        if logical_id not in self._pools:
            props = self.stack.template["Resources"][logical_id]["Properties"]
            module_name, handler_name = props["Handler"].rsplit(".", 1)
            path = str(REPO_ROOT / props["CodeUri"] / f"{module_name}.py")
            env = {k: v for k, v in os.environ.items() if isinstance(v, str)}
            self._pools[logical_id] = EnvironmentPool(
                path, handler_name, env, logical_id, resources_of(self.stack), self.environments
            )
        return self._pools[logical_id]

    def drain(
        self,
        timeout: float = 60.0,
        function: str = "LeadWorkerFunction",
        context_factory: Callable[[], Any] | None = None,
        environments: int | None = None,
    ) -> int:
        """Feed the function's SQS sources (the inbox, the Salesbot continues) to it until they are empty, as its
        event source mappings would (each batch from one queue); returns the number of records handled.

        Each source has its own pollers, as each event source mapping has (Lambda starts with five batches at a
        time, and never more than the source's maximum concurrency): one poller, its receives waiting in turn behind
        the stack's other requests, took in fewer messages a second than a busy inbox was sent, while most worker
        environments stood idle. The function's environments are shared by its sources, each up to its own maximum
        concurrency.

        ``timeout`` bounds a stall, not the whole drain: it gives up after that many seconds with no batch running
        and none handed out, so a slower (or busier) machine takes longer but never changes the verdict. (A batch
        that never ends is the per-test timeout's to catch, as Lambda's function timeout would.)"""
        sources = self._sqs_sources(function)
        if (self.environments if environments is None else environments) == 0:
            return self._drain_in_process(function, sources, timeout, context_factory)
        return _Drain(self, function, sources, self.environments, timeout, context_factory).run()

    def _drain_in_process(
        self,
        function: str,
        sources: list[tuple[str, str, str, int, int]],
        timeout: float,
        context_factory: Callable[[], Any] | None,
    ) -> int:
        """The worker in this process, one batch at a time (debugging; tests that read its own counters)."""
        sqs = self.stack.client("sqs")
        handled = 0
        progressed = time.monotonic()
        turn = 0
        while time.monotonic() - progressed < timeout:
            _, url, arn, batch_size, _ = sources[turn % len(sources)]
            turn += 1
            received = self._receive(sqs, url, batch_size)
            if not received:
                if turn % len(sources):
                    continue  # the next source's turn before deciding anything
                if sum(self.queue_depth(q) for q, *_ in sources) == 0:
                    return handled
                time.sleep(0.2)
                continue
            context = context_factory() if context_factory else None
            result = self.invoke(function, sqs_event(received, arn), context) or {}
            handled += self._settle(url, received, result)
            progressed = time.monotonic()
        left = {q: self.queue_depth(q) for q, *_ in sources}
        raise TimeoutError(f"{function}'s queues stalled for {timeout} s ({left} left)")

    @staticmethod
    def _receive(sqs: Any, url: str, batch_size: int) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=batch_size, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        return received

    def _sqs_sources(self, function: str) -> list[tuple[str, str, str, int, int]]:
        """(logical id, URL, ARN, batch size, maximum concurrency) of each queue the function's SQS events read, in
        the template's order. The batch size is the event's ``BatchSize`` (Lambda's default 10): never more records
        per invocation than Lambda would hand the function; the maximum concurrency its ``ScalingConfig``'s (Lambda's
        default 1,000)."""
        found = []
        for event in self.stack.template["Resources"][function]["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
                batch_size = min(10, int(self.stack.resolver.resolve(event["Properties"].get("BatchSize", 10))))
                maximum = event["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency", 1000)
                found.append(
                    (
                        queue,
                        self.stack.ref(queue),
                        self.stack.attribute(queue, "Arn"),
                        batch_size,
                        int(self.stack.resolver.resolve(maximum)),  # a number, or a parameter's value
                    )
                )
        return found

    def _in_environment(
        self, function: str, url: str, received: list[dict[str, Any]], event: dict[str, Any], context: Any
    ) -> int:
        timeout = int(self.stack.template["Resources"][function]["Properties"].get("Timeout", 10))
        context = context or LambdaContextStub(function_name=function, timeout_seconds=timeout)
        self.invocations[function] = self.invocations.get(function, 0) + 1
        started = time.monotonic()
        result, calls = self.pool(function).invoke(event, context)
        self._timed(function, time.monotonic() - started)
        self.aws_calls.merge(calls)
        return self._settle(url, received, result or {})

    def _settle(self, url: str, received: list[dict[str, Any]], result: dict[str, Any]) -> int:
        """As Lambda's poller does: successes deleted, and failures' visibility set, in batches."""
        sqs = self.stack.client("sqs")
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        with self._settling:
            self.retried_records += len(failed)
        done = [m for m in received if m["MessageId"] not in failed]
        retry = [m for m in received if m["MessageId"] in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if retry and self.retry_visibility_seconds is not None:
            # Compress the worker's backoff so local runs finish; SQS still counts the receives.
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_visibility_seconds,
                    }
                    for i, m in enumerate(retry)
                ],
            )
        return len(received)

    def expire_ttl(self) -> int:
        """Delete every item whose TTL has passed on the runner's clock, as DynamoDB would; returns how many."""
        return self.ttl.sweep()

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.ref(logical_id),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def take_messages(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete everything in a queue (the leads queue, a DLQ)."""
        sqs = self.stack.client("sqs")
        url = self.stack.ref(logical_id)
        taken: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
            ).get("Messages", [])
            if not batch:
                return taken
            for message in batch:
                taken.append(message)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def crm_sends(self, budget: str) -> list[float]:
        """When the code under test sent each request of one CRM budget (``amocrm:<domain>``, ``bitrix24:<domain>``),
        in any process, as its HTTP client's hook recorded them; sorted."""
        if not self.send_log.exists():
            return []
        lines = self.send_log.read_text(encoding="utf-8").splitlines()
        return sorted(float(sent["at"]) for sent in map(json.loads, lines) if sent["budget"] == budget)

    def take_leads(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.take_messages("LeadsQueue")]

    def run_schedule(
        self,
        plan: str,
        timeout: float = 60.0,
        environments: int | None = None,
        context_factory: Callable[[], Any] | None = None,
    ) -> int:
        """Fire the scheduler's schedule for ``plan`` (recovery, backfill, tokens) as EventBridge does (the rule's
        input is the event), then run the jobs it plans until the jobs queue is empty, as the jobs function's event
        source mapping would; returns the number of job records handled (retries included)."""
        events = self.stack.template["Resources"]["SchedulerFunction"]["Properties"]["Events"]
        inputs = [json.loads(e["Properties"]["Input"]) for e in events.values() if e["Type"] == "Schedule"]
        event = next((i for i in inputs if i.get("plan") == plan), None)
        if event is None:
            raise KeyError(f"no schedule of SchedulerFunction plans {plan!r}")
        self.invoke("SchedulerFunction", event)
        return self.drain(
            timeout=timeout,
            function="ScheduledJobsFunction",
            context_factory=context_factory,
            environments=environments,
        )


LAMBDA_START_POLLERS = 5  # an SQS event source mapping starts with five batches at a time


class _Drain:
    """``LocalRunner.drain`` with environments: pollers per source, each receiving a batch when an environment is
    free and running it there; done when no batch runs and the sources are empty (their in-flight and delayed
    messages counted), failed after ``timeout`` seconds with no batch running and none handed out."""

    def __init__(
        self,
        runner: LocalRunner,
        function: str,
        sources: list[tuple[str, str, str, int, int]],
        environments: int,
        timeout: float,
        context_factory: Callable[[], Any] | None,
    ) -> None:
        self.runner = runner
        self.function = function
        self.sources = sources
        self.timeout = timeout
        self.context_factory = context_factory
        self.environments = threading.Semaphore(environments)  # the function's, shared by its sources
        # Each source's own cap: its event source mapping's maximum concurrency.
        self.source_slots = {source[1]: threading.Semaphore(min(source[4], environments)) for source in sources}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.handled = 0
        self.running = 0
        self.progressed = time.monotonic()
        self.checked_at = 0.0  # when a poller last asked the queues' depths (one asks for all, at most every 0.2 s)
        self.error: BaseException | None = None

    def run(self) -> int:
        pollers = [
            threading.Thread(target=self._poll, args=(source,), name=f"poller-{source[0]}", daemon=True)
            for source in self.sources
            for _ in range(min(LAMBDA_START_POLLERS, source[4]))
        ]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.join()
        while True:  # the batches a failure left running finish before the drain reports it
            with self.lock:
                if self.running == 0:
                    break
            time.sleep(0.05)
        if self.error is not None:
            raise self.error
        return self.handled

    def _poll(self, source: tuple[str, str, str, int, int]) -> None:
        _, url, arn, batch_size, _ = source
        sqs = self.runner.stack.client("sqs")
        try:
            slots = self.source_slots[url]
            while not self.done.is_set():
                if not slots.acquire(timeout=0.2):
                    continue  # the source's maximum concurrency reached
                if not self.environments.acquire(timeout=0.2):
                    slots.release()
                    continue  # every environment busy
                received: list[dict[str, Any]] = []
                try:
                    received = LocalRunner._receive(sqs, url, batch_size)
                finally:
                    if not received:  # nothing to run (or the receive failed): the slots go back at once
                        self.environments.release()
                        slots.release()
                if not received:
                    self._idle()
                    continue
                with self.lock:
                    self.running += 1  # counted before the poller moves on: the drain is not done while it runs
                    self.progressed = time.monotonic()
                # The batch runs on its own thread, as Lambda invokes while its pollers go on receiving.
                threading.Thread(target=self._run, args=(url, arn, received, slots), name="batch", daemon=True).start()
        except BaseException as exc:  # a batch's failure is the drain's: every poller stops, the caller sees it
            with self.lock:
                self.error = self.error or exc
            self.done.set()

    def _run(self, url: str, arn: str, received: list[dict[str, Any]], slots: threading.Semaphore) -> None:
        try:
            context = self.context_factory() if self.context_factory else None
            handled = self.runner._in_environment(self.function, url, received, sqs_event(received, arn), context)
            with self.lock:
                self.handled += handled
        except BaseException as exc:  # a batch's failure is the drain's: every poller stops, the caller sees it
            with self.lock:
                self.error = self.error or exc
            self.done.set()
        finally:
            self.environments.release()
            slots.release()
            with self.lock:
                self.running -= 1
                self.progressed = time.monotonic()

    def _idle(self) -> None:
        """Nothing to receive here: the drain is done if nothing runs and no source holds a message; it has stalled
        if nothing has run for ``timeout`` seconds; else wait a moment."""
        now = time.monotonic()
        with self.lock:
            check = self.running == 0 and now - self.checked_at >= 0.2
            if check:
                self.checked_at = now
            stalled = self.running == 0 and now - self.progressed >= self.timeout
        if check and sum(self.runner.queue_depth(q) for q, *_ in self.sources) == 0:
            with self.lock:
                empty = self.running == 0
            if empty:
                self.done.set()
                return
        if stalled:
            left = {q: self.runner.queue_depth(q) for q, *_ in self.sources}
            with self.lock:
                self.error = self.error or TimeoutError(
                    f"{self.function}'s queues stalled for {self.timeout} s ({left} left)"
                )
            self.done.set()
            return
        self.done.wait(0.2)
