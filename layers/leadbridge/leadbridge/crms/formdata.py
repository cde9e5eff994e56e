"""PHP-style bracket forms (``talk[add][0][talk_id]=191``), as both CRMs send their webhooks.

The body is untrusted: anything that is not a well-formed form raises :class:`FormDataError` (the hooks turn
it into a 400), never another exception. Like PHP, a later key wins over an earlier one where they collide.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import parse_qsl

type FormValue = str | FormNode
type FormNode = dict[str, FormValue]

MAX_BODY_BYTES = 1024 * 1024
MAX_FIELDS = 2_000
MAX_DEPTH = 16


class FormDataError(ValueError):
    """The body is not a urlencoded bracket form we accept."""


def parse_form(body: bytes | str) -> FormNode:
    """Parse an ``application/x-www-form-urlencoded`` body into nested dicts of strings."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise FormDataError("body too large")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormDataError("body is not a urlencoded UTF-8 form") from exc
    root: FormNode = {}
    for key, value in pairs:
        if "\x00" in key:
            raise FormDataError("NUL byte in a form key")
        # A NUL inside a chat message's text is the sender's data, not a broken form: it is replaced, not refused.
        _assign(root, split_key(key), value.replace("\x00", "\ufffd"))
    return root


def split_key(key: str) -> list[str]:
    """``a[b][0][]`` -> ``["a", "b", "0", ""]``; a key without well-formed brackets is one literal name."""
    head, bracket, rest = key.partition("[")
    if not bracket or not head:
        return [key]
    parts = [head]
    rest = "[" + rest
    while rest:
        if not rest.startswith("["):
            return [key]
        end = rest.find("]")
        if end < 0:
            return [key]
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    if len(parts) > MAX_DEPTH:
        raise FormDataError("form nesting too deep")
    return parts


def _assign(root: FormNode, path: list[str], value: str) -> None:
    node = root
    for index, segment in enumerate(path):
        last = index == len(path) - 1
        # PHP's a[]=x appends
        name = segment if segment != "" else str(sum(1 for k in node if k.isdigit()))
        if last:
            node[name] = value
            return
        child = node.get(name)
        if not isinstance(child, dict):
            child = {}
            node[name] = child
        node = child


def items(node: FormValue | None) -> list[FormNode]:
    """The item dicts of a ``[0]``, ``[1]``... block, in index order; other values are skipped."""
    if not isinstance(node, dict):
        return []
    keyed = sorted(((_index(k), v) for k, v in node.items()), key=lambda kv: kv[0])
    return [v for _, v in keyed if isinstance(v, dict)]


def _index(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() and len(key) < 10 else (1, key)


def text(node: Mapping[str, FormValue] | None, *path: str) -> str | None:
    """The string at ``path``, or None when it is missing, empty or not a string."""
    value: FormValue | None = node if node is None else dict(node)
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def flag(node: Mapping[str, FormValue] | None, *path: str) -> bool | None:
    """``"1"``/``"0"`` (and ``Y``/``N``, ``true``/``false``) as a bool; None when missing or unrecognised."""
    value = text(node, *path)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in {"1", "y", "true", "yes"}:
        return True
    if lowered in {"0", "n", "false", "no"}:
        return False
    return None


def walk_keys(node: FormNode, prefix: str = "") -> Iterator[str]:
    """Every leaf key in bracket notation; used for diagnostics without values (values may be personal data)."""
    for key, value in node.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            yield from walk_keys(value, name)
        else:
            yield name
