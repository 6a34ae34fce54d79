"""JSON Schema files in ``schemas/``, generated from the record models.

Regenerate with ``python -m streamproc.records.schemas``; ``tests/unit/records`` fails
when the checked-in files drift from the models.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from streamproc.records.lead import EnrichedLead, Lead

__all__ = ["SCHEMA_FILES", "render", "write"]

SCHEMA_FILES: dict[str, type[Lead]] = {
    "lead.schema.json": Lead,
    "enriched-lead.schema.json": EnrichedLead,
}


def render(model: type[Lead]) -> bytes:
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **model.model_json_schema(mode="validation"),
    }
    if model is Lead:
        # pydantic cannot express the "email or domain" validator; say it in the schema.
        schema["anyOf"] = [{"required": ["email"]}, {"required": ["domain"]}]
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_FILES.items():
        path = directory / name
        path.write_bytes(render(model))
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2] / "schemas"
    for path in write(target):
        print(path)
