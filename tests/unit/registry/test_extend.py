"""The enriched schema: the input's own schema plus the enrichment, Avro and JSON Schema."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.registry.extend import avro_enrichment, extend_avro, extend_json_schema

INPUT = {
    "type": "record",
    "name": "Lead",
    "fields": [{"name": "id", "type": "long"}, {"name": "email", "type": "string"}],
}
META = {
    "source": "provider",
    "credits": 1,
    "attempt": 1,
    "enriched_at": "2026-01-01T00:00:00Z",
    "processor": {"name": "streamproc", "version": "1"},
    "cache_key": None,
    "cached_at": None,
}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(st.dictionaries(st.text(max_size=6), _json, max_size=5))
def test_any_json_enrichment_round_trips_through_the_extended_avro_schema(
    enrichment: dict[str, Any],
) -> None:
    """Any provider answer is written with the extended schema and read back by a reader
    of that schema: scalars as they are, nested values as their JSON text."""
    schema = fastavro.parse_schema(extend_avro(INPUT))
    record = {"id": 7, "email": "a@b.example", "enrichment": avro_enrichment(enrichment),
              "enrichment_meta": META}  # fmt: skip
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema, None) == record


def test_the_input_schema_reads_an_enriched_record() -> None:
    """A consumer still on the input's schema reads the enriched records (the fields are
    only added), and the extended schema reads old records (the added ones default)."""
    old, new = fastavro.parse_schema(INPUT), fastavro.parse_schema(extend_avro(INPUT))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, new, {"id": 1, "email": "e", "enrichment": {"a": 1},
                                             "enrichment_meta": META})  # fmt: skip
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, new, old) == {"id": 1, "email": "e"}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, old, {"id": 1, "email": "e"})
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, old, new)["enrichment"] is None


def test_a_schema_that_has_the_fields_already_or_is_no_record_is_refused() -> None:
    """ValueError (an output_refused lead, or a start-up line) rather than a clash."""
    taken = {**INPUT, "fields": [*INPUT["fields"], {"name": "enrichment", "type": "string"}]}
    with pytest.raises(ValueError, match="already has a field named enrichment"):
        extend_avro(taken)
    with pytest.raises(ValueError, match="not a record"):
        extend_avro("string")
    with pytest.raises(ValueError, match="object"):
        extend_json_schema({"type": "array"})


def test_the_extended_json_schema_validates_an_enriched_record() -> None:
    """A closed input schema (additionalProperties false) still accepts the added fields."""
    schema = {
        "type": "object",
        "properties": {"lead_id": {"type": "string"}},
        "required": ["lead_id"],
        "additionalProperties": False,
    }
    extended = extend_json_schema(schema)
    meta = {k: v for k, v in META.items() if v is not None}
    jsonschema.validate(
        {"lead_id": "x", "enrichment": {"a": [1]}, "enrichment_meta": meta}, extended
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"lead_id": "x", "enrichment_meta": {"source": "x"}}, extended)
    assert "enrichment" not in schema["properties"]  # the input's schema is left alone
