"""The import rule (``make lint``) over the package itself, and over small packages that break it."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadbridge_local.import_rule import check, imports_of, modules, violation


def test_the_package_keeps_the_rule() -> None:
    assert check() == []


def test_the_top_of_the_package_holds_the_layers_and_the_composition_root() -> None:
    top = {name.split(".")[1] for name, _ in modules() if name.count(".") >= 1}
    assert top == {"contract", "http", "aws", "crms", "flows", "composition"}


def test_the_rule_reads_every_import_of_the_package() -> None:
    found = {imported for name, path in modules() for _, imported in imports_of(path, name)}
    assert "leadbridge.crms.enrichment.Emission" in found
    assert any(i.startswith("leadbridge.flows.worker.parking") for i in found)  # connect and recovery use it


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("leadbridge.aws.queues", "leadbridge.contract.integration", True),
        ("leadbridge.aws.store.backfills", "leadbridge.flows.recovery.backfill.runner", False),
        ("leadbridge.contract.lead", "leadbridge.http.errors", False),
        ("leadbridge.crms.amocrm.enricher", "leadbridge.flows.worker.lead_worker", False),
        ("leadbridge.crms.amocrm.enricher", "leadbridge.crms.enrichment", True),
        ("leadbridge.crms.amocrm.enricher", "leadbridge.crms.bitrix24.client", False),
        ("leadbridge.crms.enrichment", "leadbridge.crms.amocrm.client", False),
        ("leadbridge.flows.recovery.sweep", "leadbridge.flows.worker.parking", True),
        ("leadbridge.flows.worker.lead_worker", "leadbridge.flows.hooks.intake", False),
        ("leadbridge.flows.hooks.intake", "leadbridge.flows.recovery.sweep", False),
        ("leadbridge.flows.recovery.sweep", "leadbridge.flows.connect.callback", False),
        ("leadbridge.flows.api.service", "leadbridge.flows.recovery.backfill.begin", True),
        ("leadbridge.composition", "leadbridge.flows.api.service", True),
    ],
)
def test_what_may_import_what(importer: str, imported: str, allowed: bool) -> None:
    assert (violation(importer, imported) is None) == allowed


def test_a_lower_layer_importing_a_higher_one_is_named(tmp_path: Path) -> None:
    package = tmp_path / "layers" / "leadbridge" / "leadbridge"
    (package / "aws").mkdir(parents=True)
    (package / "flows").mkdir()
    for init in (package, package / "aws", package / "flows"):
        (init / "__init__.py").write_text("")
    (package / "flows" / "work.py").write_text("X = 1\n")
    (package / "aws" / "queues.py").write_text("def f() -> None:\n    from ..flows.work import X\n")
    [problem] = check(package)
    assert "aws/queues.py:2: imports leadbridge.flows.work.X" in problem
