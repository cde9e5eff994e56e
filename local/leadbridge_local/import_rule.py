"""The package's import rule, checked over its own source (``make lint``): layers only look down.

    composition > flows > crms > aws > http > contract

Within ``flows``: api | scheduled > recovery | connect > worker | hooks (``|``: neither imports the other). Within
``crms``: ``amocrm`` and ``bitrix24`` know nothing of each other, and the shared modules at ``crms/``'s top import
neither. Every import counts, those inside functions and under ``TYPE_CHECKING`` included. Exit status 1 names each
import that breaks the rule.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "leadbridge" / "leadbridge"
LAYERS = ("contract", "http", "aws", "crms", "flows", "composition")  # lowest first
FLOW_LEVELS = {"hooks": 0, "worker": 0, "recovery": 1, "connect": 1, "api": 2, "scheduled": 2}
CRM_TWINS = ("amocrm", "bitrix24")


def modules(root: Path = PACKAGE) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports_of(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of the package in ``path``, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "leadbridge":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "leadbridge":
                continue
            for alias in node.names:  # ``from leadbridge.x import y`` may name a module y
                yield node.lineno, f"{base}.{alias.name}"


def _parts(module: str) -> list[str]:
    return module.split(".")[1:]  # without "leadbridge"


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when it may)."""
    source, target = _parts(importer), _parts(imported)
    if not source or not target or target[0] not in LAYERS or source[0] not in LAYERS:
        return None
    low, high = LAYERS.index(target[0]), LAYERS.index(source[0])
    if low > high:
        return f"{source[0]}/ may not import the higher layer {target[0]}/"
    if low < high:
        return None
    layer = source[0]
    if layer == "flows" and len(source) > 1 and len(target) > 1 and source[1] != target[1]:
        here, there = FLOW_LEVELS.get(source[1]), FLOW_LEVELS.get(target[1])
        if here is not None and there is not None and there >= here:
            return f"flows/{source[1]} may not import flows/{target[1]} (not below it)"
    if layer == "crms":
        source_crm = source[1] if len(source) > 1 and source[1] in CRM_TWINS else None
        target_crm = target[1] if len(target) > 1 and target[1] in CRM_TWINS else None
        if target_crm and source_crm != target_crm:
            return (
                f"crms/{source_crm or source[-1]} may not import crms/{target_crm}: the CRMs know nothing of each other"
            )
    return None


def check(root: Path = PACKAGE) -> list[str]:
    problems = []
    for module, path in modules(root):
        for line, imported in imports_of(path, module):
            why = violation(module, imported)
            if why:
                problems.append(f"{path.relative_to(root.parent.parent.parent)}:{line}: imports {imported}: {why}")
    return problems


def main() -> int:
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        count = sum(1 for _ in modules())
        print(f"import rule: {count} modules, every import looks down")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
