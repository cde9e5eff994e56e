"""Local AWS: moto in server mode on a free loopback port, provisioned from ``template.yaml``.

The code under test reaches it the way it reaches AWS: boto3 with the standard ``AWS_ENDPOINT_URL``. Nothing
is patched. Each function's environment is resolved from the template (Globals plus its own variables).
"""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
import os
import pickle
import random
import re
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import ast_nodes as dynamodb_ast
from moto.dynamodb.parsing import expressions as dynamodb_expressions
from moto.dynamodb.parsing import validators as dynamodb_validators
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs import models as sqs_models
from werkzeug.serving import BaseWSGIServer, make_server

from leadbridge_local.template import LOCAL_ACCOUNT, Resolver, load_template, resources_of_type

REGION = "eu-central-1"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@cache
def _harness_session() -> boto3.session.Session:
    return boto3.session.Session()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalStack:
    endpoint_url: str
    resolver: Resolver
    template: dict[str, Any]
    function_environments: dict[str, dict[str, str]] = field(default_factory=dict)
    moto: LocalMotoServer | None = None

    def client(self, service: str) -> Any:
        """The harness's own clients, from a session of their own: what the functions call is recorded apart."""
        return _harness_session().client(service, endpoint_url=self.endpoint_url, region_name=REGION)  # type: ignore[call-overload]

    def ref(self, logical_id: str) -> str:
        return self.resolver.ref(logical_id)

    def attribute(self, logical_id: str, attribute: str) -> str:
        return self.resolver.get_att(logical_id, attribute)

    def process_environment(self) -> dict[str, str]:
        """The union of every function's environment; the template never gives one name two values."""
        merged: dict[str, str] = {}
        for function, variables in self.function_environments.items():
            for name, value in variables.items():
                if merged.get(name, value) != value:
                    raise ValueError(f"{function}: {name} differs between functions; cannot share one process")
                merged[name] = value
        return merged


def provision(
    endpoint_url: str, stack_name: str = "leadbridge-local", parameters: dict[str, str] | None = None
) -> LocalStack:
    template = load_template()
    resolver = Resolver(template, stack_name=stack_name, region=REGION, parameters=dict(parameters or {}))
    stack = LocalStack(endpoint_url=endpoint_url, resolver=resolver, template=template)
    _create_keys(stack)
    _create_secrets(stack)
    _create_tables(stack)
    _create_queues(stack)
    _register_api(stack)
    _resolve_functions(stack)
    return stack


def _create_keys(stack: LocalStack) -> None:
    kms = stack.client("kms")
    for name in resources_of_type(stack.template, "AWS::KMS::Key"):
        key = kms.create_key(Description=name)["KeyMetadata"]
        stack.resolver.refs[name] = key["KeyId"]
        stack.resolver.attributes[name] = {"Arn": key["Arn"]}


def _create_secrets(stack: LocalStack) -> None:
    secrets = stack.client("secretsmanager")
    for name, spec in resources_of_type(stack.template, "AWS::SecretsManager::Secret").items():
        generate = spec["Properties"].get("GenerateSecretString", {})
        length = int(generate.get("PasswordLength", 32))
        value = secrets.get_random_password(PasswordLength=length, ExcludePunctuation=True)["RandomPassword"]
        if "SecretStringTemplate" in generate:  # as CloudFormation does: the template with one generated key
            value = json.dumps({**json.loads(generate["SecretStringTemplate"]), generate["GenerateStringKey"]: value})
        arn = secrets.create_secret(Name=f"{stack.resolver.stack_name}-{name}", SecretString=value)["ARN"]
        stack.resolver.refs[name] = arn


def _create_tables(stack: LocalStack) -> None:
    dynamodb = stack.client("dynamodb")
    for name, spec in resources_of_type(stack.template, "AWS::DynamoDB::Table").items():
        props = stack.resolver.resolve(spec["Properties"])
        table_name = props.get("TableName", f"{stack.resolver.stack_name}-{name}")
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        description = dynamodb.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=table_name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        stack.resolver.refs[name] = table_name
        stack.resolver.attributes[name] = {"Arn": description["TableArn"]}


def _create_queues(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    pending = resources_of_type(stack.template, "AWS::SQS::Queue")
    while pending:
        progressed = False
        for name, spec in list(pending.items()):
            try:
                props = stack.resolver.resolve(spec["Properties"])
            except KeyError:
                continue  # its dead-letter queue is not created yet
            attributes = {
                key: json.dumps(value)
                if isinstance(value, dict)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
                for key, value in props.items()
                if key != "QueueName"
            }
            url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            stack.resolver.refs[name] = url
            stack.resolver.attributes[name] = {"Arn": arn, "QueueName": props["QueueName"], "QueueUrl": url}
            del pending[name]
            progressed = True
        if not progressed:
            raise ValueError(f"queues with unresolvable properties: {sorted(pending)}")


def _register_api(stack: LocalStack) -> None:
    for name in resources_of_type(stack.template, "AWS::Serverless::HttpApi"):
        stack.resolver.refs[name] = "local"
    for name in resources_of_type(stack.template, "AWS::Serverless::LayerVersion"):
        stack.resolver.refs[name] = f"arn:aws:lambda:{REGION}:{LOCAL_ACCOUNT}:layer:{name}:1"


def _resolve_functions(stack: LocalStack) -> None:
    global_vars = stack.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for name, spec in resources_of_type(stack.template, "AWS::Serverless::Function").items():
        own = spec["Properties"].get("Environment", {}).get("Variables", {})
        variables = {**global_vars, **own}
        stack.function_environments[name] = {k: str(stack.resolver.resolve(v)) for k, v in variables.items()}


# SQS's allowed set (SendMessage: "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"); moto
# takes anything, AWS refuses the message with InvalidMessageContents.
_NOT_FOR_SQS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
SQS_SENDS = {"AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"}
THROTTLED = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"The level of configured provisioned throughput for the table was exceeded."}'
)


def _transaction_throttled(body: bytes) -> bytes:
    """A throttled transaction is cancelled as a whole (``TransactionCanceledException``, which the SDK does not
    retry), its items' reasons ``ThrottlingError``: insufficient capacity for one of them cancels them all."""
    items = json.loads(body or b"{}").get("TransactItems") or []
    reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity of your table."}] * len(
        items
    )
    cancelled = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join(['ThrottlingError'] * len(items))}]",
        "CancellationReasons": reasons,
    }
    return json.dumps(cancelled).encode()


def _refused_character(entry: dict[str, Any]) -> str | None:
    """The first character of a message (body or string attribute) that SQS would refuse, as SQS names it."""
    texts = [entry.get("MessageBody") or ""] + [
        str(attribute.get("StringValue") or "") for attribute in (entry.get("MessageAttributes") or {}).values()
    ]
    for text in texts:
        found = _NOT_FOR_SQS.search(text)
        if found:
            return f"#x{ord(found.group()):X}"
    return None


def _invalid_contents(character: str) -> str:
    return (
        f"Invalid binary character '{character}' was found in the message body, the set of allowed characters is "
        "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
    )


SERVICE_OF_TARGET = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "secretsmanager": "secretsmanager"}


def _operation(environ: dict[str, Any]) -> str:
    """``service:Operation`` of a JSON-protocol request (X-Amz-Target), else the path's first part."""
    target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
    if target:
        prefix, _, operation = target.partition(".")
        return f"{SERVICE_OF_TARGET.get(prefix, prefix.lower())}:{operation}"
    return f"other:{str(environ.get('PATH_INFO') or '/').split('/')[1][:40]}"


BILLED_BY_CONTENT = frozenset(
    {
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:TransactWriteItems",
        "dynamodb:TransactGetItems",
        "sqs:SendMessage",
        "sqs:SendMessageBatch",
    }
)
SQS_BILLING_CHUNK = 64 * 1024  # SQS bills each 64 KiB of a request's payload as one request


def billed_units(operation: str, body: bytes) -> int:
    """What AWS bills for one request, from its body: DynamoDB's batch reads and writes by item (each item as its
    own read or write of up to 4 KiB / 1 KiB: item sizes are not looked at), transactions at two units an item;
    SQS by 64 KiB of payload. (On-demand pricing; item sizes above the unit are left out.)"""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return 1
    if operation == "dynamodb:BatchGetItem":
        return sum(len(entry.get("Keys") or []) for entry in (request.get("RequestItems") or {}).values())
    if operation == "dynamodb:BatchWriteItem":
        return sum(len(entries) for entries in (request.get("RequestItems") or {}).values())
    if operation in {"dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"}:
        return 2 * len(request.get("TransactItems") or [])
    messages = request.get("Entries") or [request]  # SendMessageBatch, or SendMessage
    payload = sum(len(str(message.get("MessageBody") or "").encode()) for message in messages)
    return max(1, -(-payload // SQS_BILLING_CHUNK))


class SerializedApp:
    """DynamoDB makes every conditional write atomic; moto's backends take no locks and its server is threaded, so
    a check and its write from two concurrent requests can interleave. Serving one request at a time restores the
    guarantee the code relies on (leases, compare-and-swap, ledger claims).

    It also answers as AWS does where moto is kinder: SQS refuses a message with a character outside its allowed
    set (``InvalidMessageContents``; in a batch, that entry fails and the others go)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.fault: Callable[[dict[str, Any], bytes], bool] | None = None
        self.throttle: Callable[[dict[str, Any], bytes], bool] | None = None  # DynamoDB's throughput refusals
        self.injected = 0
        self.watched: dict[str, int] = {}  # benchmarks: requests whose body names this (a table, a queue)
        # The request log: every request any process made, by service and operation (``dynamodb:UpdateItem``), as
        # AWS bills them (a batch is one request; the pollers' receives and deletes count as they would).
        self.requests: Counter[str] = Counter()
        # What AWS bills for them, in its own units: a request is one, except where the price counts items or
        # payload (``billed_units``). Benchmarks price these, not requests.
        self.billed: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            operation = _operation(environ)
            self.requests[operation] += 1
            sending = environ.get("HTTP_X_AMZ_TARGET", "") in SQS_SENDS
            inspected = self.fault is not None or self.watched or self.throttle is not None
            body = b""
            if sending or inspected or operation in BILLED_BY_CONTENT:  # read once, kept for moto
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                environ["wsgi.input"] = io.BytesIO(body)
            self.billed[operation] += billed_units(operation, body) if operation in BILLED_BY_CONTENT else 1
            with _attributes_read_once(operation):
                if sending:
                    return self._send(environ, body, start_response)
                if inspected:
                    injected = self._injected(environ, body, start_response)
                    if injected is not None:
                        return injected
                return list(self.app(environ, start_response))

    def _injected(self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]) -> list[bytes] | None:
        """Count the watched texts; answer an injected throttle or fault instead of moto, if one applies."""
        for text in self.watched:
            if text.encode() in body:
                self.watched[text] += 1
        if self.throttle is not None and self.throttle(environ, body):
            self.injected += 1
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
            if environ.get("HTTP_X_AMZ_TARGET") == "DynamoDB_20120810.TransactWriteItems":
                return [_transaction_throttled(body)]
            return [THROTTLED]
        if self.fault is not None and self.fault(environ, body):
            self.injected += 1
            start_response("500 Internal Server Error", [("Content-Type", "application/x-amz-json-1.0")])
            return [b'{"__type":"com.amazonaws.sqs#InternalError","message":"injected fault"}']
        return None

    def _send(self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]) -> list[bytes]:
        injected = self._injected(environ, body, start_response)
        if injected is not None:
            return injected
        request = json.loads(body or b"{}")
        if environ["HTTP_X_AMZ_TARGET"] == "AmazonSQS.SendMessage":
            refused = _refused_character(request)
            if refused is not None:
                start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
                error = {"__type": "com.amazonaws.sqs#InvalidMessageContents", "message": _invalid_contents(refused)}
                return [json.dumps(error).encode()]
            return self._to_moto(environ, start_response, body)
        failed = []
        kept = []
        for entry in request.get("Entries") or []:
            refused = _refused_character(entry)
            if refused is None:
                kept.append(entry)
            else:
                failed.append(
                    {
                        "Id": entry.get("Id"),
                        "SenderFault": True,
                        "Code": "InvalidMessageContents",
                        "Message": _invalid_contents(refused),
                    }
                )
        if not failed:
            return self._to_moto(environ, start_response, body)
        if not kept:
            start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
            return [json.dumps({"Successful": [], "Failed": failed}).encode()]
        answered: list[Any] = []
        chunks = self._to_moto(
            environ,
            lambda status, headers, *_: answered.append((status, headers)),
            json.dumps({**request, "Entries": kept}).encode(),
        )
        status, headers = answered[0]
        merged = json.loads(b"".join(chunks) or b"{}")
        merged["Failed"] = [*merged.get("Failed", []), *failed]
        payload = json.dumps(merged).encode()
        start_response(
            status,
            [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _to_moto(self, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes) -> list[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return list(self.app(environ, start_response))


def _transactions_snapshot_their_items() -> None:
    """moto rolls a failed TransactWriteItems back by deep-copying every table it names before it starts, once per
    item: with a few thousand integrations in the table that is seconds per transaction, and (one request at a time)
    every other request of the stack waits behind it. DynamoDB's cost does not grow with the table. Here the items
    the transaction names are copied instead, and put back if it fails; moto's own copies become the tables
    themselves (its rollback then assigns each table to itself)."""
    original = dynamodb_models.DynamoDBBackend.transact_write_items
    if getattr(original, "snapshots_items", False):
        return
    real_copy = copy

    class TablesAsThemselves:
        copy = staticmethod(real_copy.copy)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else real_copy.deepcopy(value, memo)

    def stored(table: Any, hash_key: Any, range_key: Any) -> Any:
        found = table.items.get(hash_key)
        return found.get(range_key) if range_key is not None and isinstance(found, dict) else found

    def restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            return
        if item is None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            names = (table.hash_key_attr, table.range_key_attr)
            keys = op["Key"] if "Key" in op else {k: v for k, v in op.get("Item", {}).items() if k in names}
            try:
                hash_key, range_key = self.get_keys_value(table, keys)
            except Exception:  # noqa: S112 - a malformed key: moto refuses it below with its own error
                continue
            saved.append((table, hash_key, range_key, real_copy.deepcopy(stored(table, hash_key, range_key))))
        dynamodb_models.copy = TablesAsThemselves  # type: ignore[attr-defined,assignment]
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                restore(table, hash_key, range_key, item)
            raise
        finally:
            dynamodb_models.copy = real_copy  # type: ignore[attr-defined]

    transact_write_items.snapshots_items = True  # type: ignore[attr-defined]
    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _update_expressions_parsed_once() -> None:
    """moto tokenizes and parses an UpdateExpression twice for each item it updates (once to check the names and
    values it uses, once to apply it) and deep-copies the tree before applying it: about 1 ms of the stack's one
    request at a time per item, for the few expressions the code sends thousands of times. Each distinct expression
    is parsed once here (its tree is only read: moto changes the copy it applies), and the copy is a pickle round
    trip of the tree's bytes, made once. An expression moto refuses is refused each time, as before."""
    parser: Any = vars(dynamodb_expressions)["UpdateExpressionParser"]
    if getattr(parser.make, "parsed_once", False):
        return
    parse = functools.lru_cache(maxsize=1024)(parser.make)
    parsed: dict[int, tuple[object, bytes]] = {}  # id(tree) -> (the tree, its bytes): the trees this cache made

    def make(cls: Any, expression_str: str) -> Any:
        tree = parse(expression_str)
        if id(tree) not in parsed:
            if len(parsed) > 4096:
                parsed.clear()
            parsed[id(tree)] = (tree, pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
        return tree

    def copy_tree(value: Any, memo: Any = None) -> Any:
        found = parsed.get(id(value))
        if found is None or found[0] is not value:  # anything else moto copies: as before
            return copy.deepcopy(value, memo)
        return pickle.loads(found[1])  # noqa: S301 - bytes this process made from moto's own tree

    make.parsed_once = True  # type: ignore[attr-defined]
    parser.make = classmethod(make)
    vars(dynamodb_validators)["deepcopy"] = copy_tree


def _update_trees_walked_by_type() -> None:
    """moto walks an update's tree some ten times per item (each check and each step of applying it), asking at every
    node whether it is a ``Node`` and whether the walk handles it: ``isinstance`` against abstract base classes, the
    largest share of the 45 ms a 10-item transaction took; and it looks for clauses the same way, some 200 times an
    item. The same walks, with each answer worked out once per node class (moto's node classes are plain subclasses,
    none registered virtually)."""
    walker: Any = vars(dynamodb_ast)["DepthFirstTraverser"]
    node_class: type = vars(dynamodb_ast)["Node"]
    if getattr(walker.traverse_node_recursively, "by_type", False):
        return
    is_node: dict[type, bool] = {}
    handled: dict[tuple[type, type], Any] = {}  # (walk, node class) -> the walk's first key the node is a subclass of

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        node_type = type(node)
        known = is_node.get(node_type)
        if known is None:
            known = is_node[node_type] = issubclass(node_type, node_class)
        if not known:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        walk = (type(self), node_type)
        if walk not in handled:
            handled[walk] = next((k for k in self._processing_map() if issubclass(node_type, k)), None)
        if handled[walk] is not None:
            node = self._processing_map()[handled[walk]](node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    nested: dict[type, bool] = {}  # node class -> whether moto looks for clauses inside it
    containers = (vars(dynamodb_ast)["Expression"], vars(dynamodb_ast)["UpdateExpressionFunction"])

    def find_clauses(self: Any, clause_types: list[type]) -> list[Any]:
        clauses = []
        for child in self.children or []:
            child_type = type(child)
            if child_type in clause_types:
                clauses.append(child)
                continue
            inside = nested.get(child_type)
            if inside is None:
                inside = nested[child_type] = issubclass(child_type, containers)
            if inside:
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    traverse_node_recursively.by_type = True  # type: ignore[attr-defined]
    walker.traverse_node_recursively = traverse_node_recursively
    node_class.find_clauses = find_clauses  # type: ignore[attr-defined]


def _fifo_deduplication_as_sqs_does() -> None:
    """SQS FIFO accepts and drops a message whose deduplication id was sent in the last 5 minutes, in the scope the
    queue names (``DeduplicationScope``: the queue, or the message group), whether or not the first one has been
    received and deleted since. moto compares a new message with those still in the queue, one by one: kinder (a
    send repeated after the first was deleted goes through) and slower with the queue's length (a batch send to a
    leads queue holding a few thousand leads took 150 ms of the stack's one request at a time). Here each FIFO queue
    keeps the ids it was sent, with when, and moto's own scan is skipped."""
    original = sqs_models.Queue.add_message
    if getattr(original, "deduplicates_as_sqs", False):
        return

    def add_message(self: Any, message: Any) -> None:
        if not self.fifo_queue or not message.deduplication_id:
            original(self, message)
            return
        sent: dict[tuple[str, str], int] = self.__dict__.setdefault("_sent_deduplication_ids", {})
        now = message.sent_timestamp
        window = sqs_models.DEDUPLICATION_TIME_IN_SECONDS * 1000
        if len(sent) > 10_000:  # forget what is past the window
            for key in [k for k, at in sent.items() if now - at >= window]:
                del sent[key]
        scope = message.group_id or "" if getattr(self, "deduplication_scope", "queue") == "messageGroup" else ""
        key = (scope, message.deduplication_id)
        first = sent.get(key)
        if first is not None and now - first < window:
            return  # accepted, not delivered: what SQS answers a duplicate
        sent[key] = now
        deduplication_id, message.deduplication_id = message.deduplication_id, None  # moto: no scan of its own
        try:
            original(self, message)
        finally:
            message.deduplication_id = deduplication_id

    add_message.deduplicates_as_sqs = True  # type: ignore[attr-defined]
    sqs_models.Queue.add_message = add_message  # type: ignore[method-assign]


def _sqs_reads_the_clock_cheaply() -> None:
    """moto's SQS asks the time for every message it looks at (is it visible, is it delayed), and each asking builds
    two datetimes: with a few thousand messages waiting, a send or a receive spent 10-20 ms on the clock alone, of
    the stack's one request at a time. The same wall clock, read with ``time.time``."""
    names = vars(sqs_models)
    if getattr(names["unix_time_millis"], "cheap", False):
        return
    original_seconds, original_millis = names["unix_time"], names["unix_time_millis"]

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(original_seconds(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else float(original_millis(dt))

    unix_time_millis.cheap = True  # type: ignore[attr-defined]
    names["unix_time"], names["unix_time_millis"] = unix_time, unix_time_millis


_attributes_of_this_request: dict[int, dict[str, Any]] | None = None
ATTRIBUTES_READ_ONCE = frozenset({"sqs:SendMessage", "sqs:SendMessageBatch", "sqs:ReceiveMessage"})


def _queue_attributes_once_a_request() -> None:
    """moto recomputes all of a queue's attributes, its message counts included (a pass over every message each),
    whenever its own code reads one setting: about 50 times for a batch send, once per message received. A send or
    a receive changes none of the settings it reads, so within one of them (the stack serves one request at a time)
    each queue's attributes are computed once; what SQS's cost does not grow with, the local one does not either."""
    compute: Callable[[Any], dict[str, Any]] = sqs_models.Queue.__dict__["attributes"].fget  # the property's getter
    if getattr(compute, "once_a_request", False):
        return

    def attributes(self: Any) -> dict[str, Any]:
        memo = _attributes_of_this_request
        if memo is None:
            return compute(self)
        if id(self) not in memo:
            memo[id(self)] = compute(self)
        return memo[id(self)]

    attributes.once_a_request = True  # type: ignore[attr-defined]
    sqs_models.Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]


@contextmanager
def _attributes_read_once(operation: str) -> Iterator[None]:
    global _attributes_of_this_request  # noqa: PLW0603 - one request at a time (SerializedApp's lock)
    if operation not in ATTRIBUTES_READ_ONCE:
        yield
        return
    _attributes_of_this_request = {}
    try:
        yield
    finally:
        _attributes_of_this_request = None


class HostsRemembered(DomainDispatcherApplication):
    """moto finds a request's backend by its host, listing moto's own package directory each time (a stat a
    backend, some 150 a request): once a host here."""

    def __init__(self, create_app: Callable[..., Any]) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


class LocalMotoServer:
    """Moto's own WSGI application on a free loopback port, one request at a time."""

    def __init__(self) -> None:
        _transactions_snapshot_their_items()
        _fifo_deduplication_as_sqs_does()
        _queue_attributes_once_a_request()
        _update_expressions_parsed_once()
        _update_trees_walked_by_type()
        _sqs_reads_the_clock_cheaply()
        self.app = SerializedApp(HostsRemembered(create_backend_app))
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=MotoRequestHandler
        )
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()

    def throttle_dynamodb(
        self, table: str, ratio: float, operations: tuple[str, ...] = (), seed: int = 13, containing: str = ""
    ) -> None:
        """Fault tests: answer a share of DynamoDB requests naming ``table`` (of ``operations``, e.g. ``UpdateItem``;
        all when empty; whose body has ``containing``) with ``ProvisionedThroughputExceededException``, as a hot
        partition or an exhausted on-demand limit does (a transaction: cancelled, ``ThrottlingError``). ``ratio``
        0 turns it off."""
        rng = random.Random(seed)  # noqa: S311 - not for security

        def throttled(environ: dict[str, Any], body: bytes) -> bool:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if not target.startswith("DynamoDB_20120810."):
                return False
            if operations and target.removeprefix("DynamoDB_20120810.") not in operations:
                return False
            return table.encode() in body and containing.encode() in body and rng.random() < ratio

        self.app.throttle = throttled if ratio > 0 else None

    def fail_sends_to(
        self,
        queue_name: str,
        ratio: float,
        seed: int = 11,
        containing: str = "",
        after: int = 0,
        times: int | None = None,
    ) -> None:
        """Fault tests: answer a share of SendMessage(Batch) calls to one queue (whose body has ``containing``)
        with SQS's 500 InternalError; the first ``after`` such calls go through (a failure half-way); at most
        ``times`` are refused (an outage that ends, past the SDK's own retries)."""
        rng = random.Random(seed)  # noqa: S311 - not for security
        passed = [0]
        refused = [0]

        def fault(environ: dict[str, Any], body: bytes) -> bool:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            sending = target in {"AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"}
            matches = sending and queue_name.encode() in body and containing.encode() in body
            if matches and passed[0] < after:
                passed[0] += 1
                return False
            if times is not None and refused[0] >= times:
                return False
            refuse = matches and rng.random() < ratio
            refused[0] += refuse
            return refuse

        self.app.fault = fault if ratio > 0 else None


@contextmanager
def local_aws(
    public_base_url: str = "http://127.0.0.1",
    stack_name: str = "leadbridge-local",
    parameters: dict[str, str] | None = None,
) -> Iterator[LocalStack]:
    """Start moto on a free port, point this process's boto3 at it, provision the stack, stop it afterwards."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = LocalMotoServer()
    server.start()
    endpoint = server.endpoint
    saved = {k: os.environ.get(k) for k in [*LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    forget_clients()
    # Moto's backends are global to the process: a stack started after another must not see the first one's state.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    try:
        overrides = {"PublicBaseUrl": public_base_url, "InboxDelaySeconds": "0", **(parameters or {})}
        stack = provision(endpoint, stack_name, overrides)
        stack.moto = server
        yield stack
    finally:
        server.stop()
        forget_clients()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def forget_clients() -> None:
    """The layer keeps one boto3 client per process; a new local endpoint needs new clients."""
    from leadbridge.aws.queues import sqs_client  # noqa: PLC0415 - only the local harness resets them
    from leadbridge.aws.store.dynamo import dynamodb_client  # noqa: PLC0415

    sqs_client.cache_clear()
    dynamodb_client.cache_clear()
