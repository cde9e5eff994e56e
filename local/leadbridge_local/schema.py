"""``make schema``: write what other systems rely on, generated from the code, to ``schema/``: the normalized lead's
JSON Schema and the integrations API's OpenAPI document."""

from __future__ import annotations

import json
import sys
from typing import Any

from leadbridge.contract.lead import NormalizedLead
from leadbridge_local.template import REPO_ROOT

SCHEMA_PATH = REPO_ROOT / "schema" / "lead-v1.schema.json"
OPENAPI_PATH = REPO_ROOT / "schema" / "integrations-api.openapi.json"


def lead_schema() -> dict[str, Any]:
    schema = NormalizedLead.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://leadbridge/schema/lead-v1.schema.json",
        **schema,
    }


def render() -> str:
    return json.dumps(lead_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def render_openapi() -> str:
    from leadbridge.flows.api.app import create_app  # noqa: PLC0415 - FastAPI only for this document

    def no_service() -> Any:
        raise RuntimeError("not needed to describe the API")

    return json.dumps(create_app(no_service).openapi(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main() -> int:
    for path, text in ((SCHEMA_PATH, render()), (OPENAPI_PATH, render_openapi())):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
