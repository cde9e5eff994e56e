"""Which AWS actions each function calls on the local stack, on which resources: to compare with its IAM policy.

A botocore hook on the default session (the one the layer's clients come from; the harness's own clients use
another) sees every call; the runner names the function it is invoking (``invoking``), so each call is attributed
to it, also from threads the function starts while it is the only one running. Policies are read from
``template.yaml``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import boto3

from leadbridge_local.aws import LocalStack

_current: ContextVar[str | None] = ContextVar("leadbridge_function", default=None)
# Actions IAM checks under another name than the API operation's.
IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
TRANSACT_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# What the SQS event source mapping does for the worker (Lambda's poller, not the function's code).
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def resources_of(stack: LocalStack) -> dict[str, str]:
    found: dict[str, str] = {ref: logical_id for logical_id, ref in stack.resolver.refs.items()}
    for logical_id, attributes in stack.resolver.attributes.items():
        for value in attributes.values():
            found.setdefault(value, logical_id)
    return found


class AwsCallRecorder:
    def __init__(self) -> None:
        self.calls: dict[str, set[tuple[str, str]]] = {}
        self._active: list[str] = []
        self._lock = threading.Lock()
        self._resources: dict[str, str] = {}

    def install(self, resources: dict[str, str]) -> None:
        """Before any client is created: clients copy the session's hooks when they are made. ``resources``: physical
        name or URL -> logical id (``resources_of``)."""
        self._resources = dict(resources)
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-parameter-build", self._record)

    @contextmanager
    def invoking(self, function: str) -> Iterator[None]:
        token = _current.set(function)
        with self._lock:
            self._active.append(function)
        try:
            yield
        finally:
            _current.reset(token)
            with self._lock:
                self._active.remove(function)

    def merge(self, calls: dict[str, list[tuple[str, str]]]) -> None:
        """Calls another process recorded (an execution environment)."""
        with self._lock:
            for function, found in calls.items():
                self.calls.setdefault(function, set()).update((str(call[0]), str(call[1])) for call in found)

    def _function(self) -> str | None:
        named = _current.get()
        if named is not None:
            return named
        with self._lock:  # a thread the function started (a pool): the one function being invoked, if only one
            return self._active[0] if len(set(self._active)) == 1 else None

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        function = self._function()
        if function is None:
            return
        service = model.service_model.signing_name
        if model.name == "TransactWriteItems":  # IAM checks each item's own action (UpdateItem, DeleteItem, ...)
            with self._lock:
                found = self.calls.setdefault(function, set())
                for item in params.get("TransactItems", []):
                    for kind, request in item.items():
                        action = f"{service}:{TRANSACT_ACTION.get(kind, kind)}"
                        found.update((action, resource) for resource in self._targets(request))
            return
        action = f"{service}:{model.name}"
        action = IAM_ACTION.get(action, action)
        with self._lock:
            found = self.calls.setdefault(function, set())
            for resource in self._targets(params):
                found.add((action, resource))

    def _targets(self, params: dict[str, Any]) -> list[str]:
        if "RequestItems" in params:
            return [self._resources.get(name, name) for name in params["RequestItems"]]
        for key in ("TableName", "QueueUrl", "SecretId"):
            if key in params:
                resource = self._resources.get(params[key], params[key])
                if params.get("IndexName"):
                    resource = f"{resource}/index/{params['IndexName']}"
                return [resource]
        return ["*"]
