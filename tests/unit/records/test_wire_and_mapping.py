"""The registry wire format and the lead field mapping: pure codecs, no broker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import InvalidPayload, UndecodablePayload
from streamproc.fieldpaths import MISSING, parse_path, read_path
from streamproc.records.lead import Lead
from streamproc.records.mapping import LeadShape, decode_shaped_json
from streamproc.records.wire import frame, split
from streamproc.settings import LEAD_FIELD_NAMES


@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_frame_then_split_gives_back_the_id_and_payload(schema_id: int, payload: bytes) -> None:
    """Any schema id and payload survive the wire format."""
    assert split(frame(schema_id, payload)) == (schema_id, payload)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null value"),
        (b"\x00\x00\x01", "too short"),
        (b'{"lead_id": "x"}', "magic byte"),
    ],
)
def test_what_is_not_the_wire_format_is_undecodable(value: bytes | None, reason: str) -> None:
    """Null, short and plain JSON records are undecodable_payload, saying why."""
    with pytest.raises(UndecodablePayload, match=reason):
        split(value)


def _pointer(keys: list[str]) -> str:
    return "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in keys)


@given(st.lists(st.text(max_size=8), min_size=1, max_size=4))
def test_a_json_pointer_parses_back_to_its_keys(keys: list[str]) -> None:
    """RFC 6901 escapes (~0, ~1) round-trip for any key, the empty key included."""
    assert parse_path(_pointer(keys)) == tuple(keys)


@pytest.mark.parametrize("bad", ["", " ", "a..b", ".a", "/a~2b", "/~"])
def test_bad_paths_are_refused(bad: str) -> None:
    """Empty paths, empty dotted keys and bad pointer escapes are one-line ValueErrors."""
    with pytest.raises(ValueError, match=r"path|key|~"):
        parse_path(bad)


def test_read_path_follows_objects_and_arrays() -> None:
    """Dotted and pointer paths reach nested objects and array items; absent is MISSING."""
    obj = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x/y": 3}
    assert read_path(obj, parse_path("a.b.1.c")) == 2
    assert read_path(obj, parse_path("/x~1y")) == 3
    assert read_path(obj, parse_path("a.b.5.c")) is MISSING
    assert read_path(obj, parse_path("a.b.c")) is MISSING
    assert read_path(obj, parse_path("a.b.1.c.d")) is MISSING


def test_the_settings_know_every_lead_field() -> None:
    """lead_fields accepts exactly the Lead model's fields (settings cannot import it)."""
    assert tuple(Lead.model_fields) == LEAD_FIELD_NAMES


def test_a_mapped_lead_keeps_its_shape_and_reads_our_fields() -> None:
    """A numeric id is read as text; unmapped fields keep their own names; the object is
    the record as it came."""
    shape = LeadShape({"lead_id": "/id", "email": "contact.email"})
    lead, obj = decode_shaped_json(
        b'{"id": 42, "contact": {"email": "a@b.example"}, "company": "B"}',
        shape,
        max_bytes=1000,
    )
    assert (lead.lead_id, lead.email, lead.company) == ("42", "a@b.example", "B")
    assert dict(obj) == {"id": 42, "contact": {"email": "a@b.example"}, "company": "B"}
    assert obj.lead_fields == {"lead_id": "42", "email": "a@b.example", "company": "B"}


def test_a_mapped_lead_missing_a_field_names_the_mapping() -> None:
    """The DLQ reason names the mapped path, so the operator sees where it looked."""
    shape = LeadShape({"lead_id": "/id", "email": "contact.email"})
    with pytest.raises(InvalidPayload, match=r"email from contact\.email"):
        decode_shaped_json(b'{"id": 1, "contact": {}}', shape, max_bytes=1000)
    with pytest.raises(InvalidPayload, match="not a JSON object"):
        decode_shaped_json(b"[1]", shape, max_bytes=1000)
