"""Lead decoding: every kind of bad input is an InvalidPayload with a reason, never a crash."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import ErrorClass, InvalidPayload
from streamproc.records.lead import decode_lead
from streamproc.records.schemas import SCHEMA_FILES, render

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty record"),
        (b"{not json", "not JSON"),
        (b"[1,2]", "JSON array"),
        (b'"lead"', "JSON string"),
        (orjson.dumps({"email": "a@b.example"}), "missing required field lead_id"),
        (orjson.dumps({"lead_id": "l1"}), "at least one of email or domain"),
        (orjson.dumps({"lead_id": "", "domain": "x.example"}), "lead_id"),
        (orjson.dumps({"lead_id": 7, "domain": "x.example"}), "lead_id"),
        (b'{"lead_id": "l1", "domain": "' + b"x" * 2000 + b'"}', "over the"),
    ],
)
def test_invalid_input_is_invalid_payload(value: bytes | None, reason: str) -> None:
    """Each malformed record is refused with a reason naming what is wrong."""
    with pytest.raises(InvalidPayload) as info:
        decode_lead(value, max_bytes=1024)
    assert reason in info.value.message
    assert info.value.error_class is ErrorClass.INVALID_PAYLOAD
    assert info.value.retriable is False


def test_unknown_fields_pass_through() -> None:
    """Unknown fields are kept untouched in the decoded object."""
    raw = {"lead_id": "l1", "email": "a@b.example", "crm": {"id": [1, 2]}, "score": 0.5}
    lead, obj = decode_lead(orjson.dumps(raw), max_bytes=1024)
    assert obj == raw
    assert lead.lookup_domain == "b.example"


def test_reason_never_quotes_the_payload() -> None:
    """A secret inside a bad record does not reach the DLQ message."""
    with pytest.raises(InvalidPayload) as info:
        decode_lead(orjson.dumps({"lead_id": ["SECRET-TOKEN"], "domain": "x"}), max_bytes=1024)
    assert "SECRET-TOKEN" not in info.value.message


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_invalid_payload(value: bytes) -> None:
    """Arbitrary bytes never raise anything but InvalidPayload."""
    with contextlib.suppress(InvalidPayload):
        decode_lead(value, max_bytes=1024)


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_files_match_models(name: str) -> None:
    """The checked-in JSON Schema equals the one generated from the model."""
    assert (SCHEMAS / name).read_bytes() == render(SCHEMA_FILES[name]), (
        f"schemas/{name} is stale: run python -m streamproc.records.schemas"
    )
