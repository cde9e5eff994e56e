"""The normalized lead's contract with the loader: field names, the committed schema, the documented examples."""

from __future__ import annotations

import json
import re
from pathlib import Path

from leadbridge.contract.lead import NormalizedLead, lead_id_for, lead_key
from leadbridge_local.schema import SCHEMA_PATH, render

REPO = Path(__file__).resolve().parents[2]

TOP_LEVEL = {
    "schema_version", "lead_id", "integration_id", "crm", "crm_account", "source_entity", "channel", "created_at",
    "contact", "attribution", "employee_id", "chat", "received_at",
    "backfill",  # added with backfills (issue 13): optional, null unless a backfill imported the conversation
}  # fmt: skip
OPTIONAL = {"schema_version", "backfill"}
NESTED = {
    "source_entity": {"type", "id"},
    "channel": {"kind", "messenger", "origin"},
    "contact": {"name", "phones", "emails"},
    "attribution": {"kind", "session_id", "campaign_id", "source_id", "site_id", "utm"},
    "chat": {"messages"},
    "backfill": {"id", "period_from", "period_to"},
}


def test_field_names_are_the_agreed_ones() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["properties"]) == TOP_LEVEL
    assert set(schema["required"]) == TOP_LEVEL - OPTIONAL
    defs = schema["$defs"]
    for field, names in NESTED.items():
        ref = json.dumps(schema["properties"][field])
        name = re.search(r"#/\$defs/(\w+)", ref)
        assert name is not None
        assert set(defs[name[1]]["properties"]) == names
    assert set(defs["Utm"]["properties"]) == {"source", "medium", "campaign", "content", "term"}
    assert set(defs["ChatMessage"]["properties"]) == {"at", "author", "text"}


def test_committed_schema_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), "run `make schema` and commit the result"


def test_documented_examples_are_valid_leads() -> None:
    doc = (REPO / "docs" / "lead-contract.md").read_text(encoding="utf-8")
    examples = re.findall(r"```json\n(.*?)```", doc, flags=re.S)
    assert len(examples) >= 2
    crms = set()
    for example in examples:
        lead = NormalizedLead.model_validate_json(example)
        crms.add(lead.crm)
        assert json.loads(lead.model_dump_json()) == json.loads(example)
    assert crms == {"amocrm", "bitrix24"}


def test_lead_id_is_stable_per_conversation() -> None:
    key = lead_key("amocrm", "31337", "talk", "191")
    assert key == "amocrm:31337:talk:191"
    assert lead_id_for(key) == lead_id_for("amocrm:31337:talk:191") != lead_id_for("amocrm:31337:talk:192")
