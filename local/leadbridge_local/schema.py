"""``make schema``: write the normalized lead's JSON Schema, generated from the model, to ``schema/``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from leadbridge.lead import NormalizedLead
from leadbridge_local.template import REPO_ROOT

SCHEMA_PATH = REPO_ROOT / "schema" / "lead-v1.schema.json"


def lead_schema() -> dict[str, Any]:
    schema = NormalizedLead.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://leadbridge/schema/lead-v1.schema.json",
        **schema,
    }


def render() -> str:
    return json.dumps(lead_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main(path: Path = SCHEMA_PATH) -> int:
    path.parent.mkdir(exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
