"""The enriched lead's schema: the input's own schema extended with the enrichment. Pure.

An enriched record is the input record plus two fields, ``enrichment`` (the provider's
answer) and ``enrichment_meta`` (how it was enriched; ``EnrichmentMeta`` in
streamproc.records.lead). Both are optional in the extended schema, with defaults in Avro,
so that the output subject's next version (when the input's schema evolves) stays
compatible under BACKWARD, and a reader of the input's schema can read the output.

Avro cannot say "any JSON", so ``enrichment`` is a map from name to a scalar (null, boolean,
long, double, string); a nested value (a list, an object) is written as its JSON text
(:func:`avro_enrichment`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson

__all__ = [
    "ENRICHMENT_FIELDS",
    "avro_enrichment",
    "extend_avro",
    "extend_json_schema",
]

ENRICHMENT_FIELDS = ("enrichment", "enrichment_meta")

_SCALARS = ["null", "boolean", "long", "double", "string"]
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_OPTIONAL_TEXT = ["null", "string"]

#: ``EnrichmentMeta`` in Avro; named in the ``streamproc`` namespace so that it never meets
#: a name of the user's schema.
_AVRO_META: dict[str, Any] = {
    "type": "record",
    "name": "EnrichmentMeta",
    "namespace": "streamproc",
    "fields": [
        {"name": "source", "type": "string"},
        {"name": "credits", "type": "long"},
        {"name": "attempt", "type": "int"},
        {"name": "enriched_at", "type": "string", "doc": "ISO-8601, UTC"},
        {
            "name": "processor",
            "type": {
                "type": "record",
                "name": "ProcessorInfo",
                "namespace": "streamproc",
                "fields": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                ],
            },
        },
        {"name": "cache_key", "type": _OPTIONAL_TEXT, "default": None},
        {"name": "cached_at", "type": _OPTIONAL_TEXT, "default": None},
    ],
}

_JSON_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "enum": ["provider", "cache", "fallback"]},
        "credits": {"type": "integer", "minimum": 0},
        "attempt": {"type": "integer", "minimum": 1},
        "enriched_at": {"type": "string", "format": "date-time"},
        "processor": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            "required": ["name", "version"],
        },
        "cache_key": {"type": "string", "enum": ["domain", "email"]},
        "cached_at": {"type": "string", "format": "date-time"},
    },
    "required": ["source", "credits", "attempt", "enriched_at", "processor"],
}


def extend_avro(schema: Any) -> dict[str, Any]:
    """The input's Avro record schema with the two enrichment fields added.

    Raises ValueError when the schema is not a record or already has one of the fields.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ValueError("the input's Avro schema is not a record: a lead is a record")
    extended = copy.deepcopy(schema)
    names = {field.get("name") for field in extended.get("fields", [])}
    _refuse_taken(names)
    extended["fields"] = [
        *extended.get("fields", []),
        {
            "name": "enrichment",
            "type": ["null", {"type": "map", "values": _SCALARS}],
            "default": None,
        },
        {"name": "enrichment_meta", "type": ["null", _AVRO_META], "default": None},
    ]
    return extended


def extend_json_schema(schema: Any) -> dict[str, Any]:
    """The input's JSON Schema with the two enrichment properties added (not required)."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ValueError("the input's JSON Schema does not describe an object: a lead is one")
    extended = copy.deepcopy(schema)
    properties = extended.setdefault("properties", {})
    _refuse_taken(set(properties))
    properties["enrichment"] = {"type": "object"}
    properties["enrichment_meta"] = copy.deepcopy(_JSON_META)
    return extended


def avro_enrichment(enrichment: dict[str, Any]) -> dict[str, Any]:
    """``enrichment`` as the Avro map holds it: scalars as they are, the rest as JSON text
    (an integer beyond Avro's 64-bit ``long`` as its decimal text)."""
    out: dict[str, Any] = {}
    for name, value in enrichment.items():
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not _LONG_MIN <= value <= _LONG_MAX
        ):
            out[name] = str(value)
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = _json_text(value)
    return out


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson writes no integer beyond 64 bits; the standard library does
        return json.dumps(value, ensure_ascii=False, default=str)


def _refuse_taken(names: set[Any]) -> None:
    taken = [name for name in ENRICHMENT_FIELDS if name in names]
    if taken:
        raise ValueError(
            f"the input's schema already has a field named {taken[0]}, which the enriched "
            "record adds"
        )
