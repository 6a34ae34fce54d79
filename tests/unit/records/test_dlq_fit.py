"""Fitting a DLQ record to its topic's limit: whatever is over (value, key or headers),
the record fits, keeps its origin, and says what was cut."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.errors import ErrorClass
from streamproc.records.dlq import (
    HEADERS_TRUNCATED,
    KEY_TRUNCATED,
    ORIGINAL_HEADERS_SIZE,
    ORIGINAL_KEY_SIZE,
    ORIGINAL_SIZE,
    VALUE_TRUNCATED,
    Failure,
    Origin,
    decode_dlq_headers,
    encode_dlq_headers,
    fit_record,
    record_size,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ORIGIN = Origin("leads.raw", 2, 41, 1_764_158_400_000)
FAIL = Failure(ErrorClass.INVALID_PAYLOAD, "lead over max_lead_bytes", False)
LIMIT = 1_048_576


def _dlq_headers(original: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return encode_dlq_headers(original, FAIL, ORIGIN, 1, T0)


def test_a_record_that_fits_is_kept_whole() -> None:
    """Under the limit, key, value and headers come back unchanged and unmarked."""
    headers = _dlq_headers([("h", b"v")])
    assert fit_record(b"k", b"value", headers, LIMIT) == (b"k", b"value", headers)


def test_a_3_mb_header_is_dropped_and_the_value_kept_whole() -> None:
    """A lead with a 3 MB header: the header is dropped (its size said), the lead's own
    value and key stay whole, the origin is kept."""
    headers = _dlq_headers([("small", b"s"), ("huge", b"h" * 3_000_000)])
    key, value, fitted = fit_record(b"lead-1", b'{"lead_id":"1"}', headers, LIMIT)
    assert (key, value) == (b"lead-1", b'{"lead_id":"1"}')
    found = dict(fitted)
    assert "huge" not in found and found["small"] == b"s"
    assert found[HEADERS_TRUNCATED] == b"true"
    assert int(found[ORIGINAL_HEADERS_SIZE]) >= 3_000_000
    assert KEY_TRUNCATED not in found and VALUE_TRUNCATED not in found
    assert decode_dlq_headers(fitted).origin == ORIGIN
    assert record_size(key, value, fitted) <= LIMIT


def test_a_2_mb_key_is_cut_to_its_first_bytes() -> None:
    """A lead with a 2 MB key: the key keeps its first bytes and says its size."""
    big_key = bytes(range(256)) * 8_192
    key, value, fitted = fit_record(big_key, b"{}", _dlq_headers([]), LIMIT)
    assert key is not None and big_key.startswith(key) and len(key) > LIMIT // 2
    found = dict(fitted)
    assert found[KEY_TRUNCATED] == b"true"
    assert int(found[ORIGINAL_KEY_SIZE]) == len(big_key)
    assert record_size(key, value, fitted) <= LIMIT
    assert decode_dlq_headers(fitted).origin == ORIGIN


def test_a_tombstone_stays_a_tombstone() -> None:
    """A null value stays null when the key is what is cut."""
    key, value, _ = fit_record(b"k" * 2_000_000, None, _dlq_headers([]), LIMIT)
    assert value is None and key is not None


_names = st.text(min_size=1, max_size=20).filter(lambda n: not n.startswith("streamproc."))
_sizes = st.integers(min_value=0, max_value=3_000_000)


@settings(max_examples=150, deadline=None)
@given(
    key_size=st.one_of(st.none(), _sizes),
    value_size=st.one_of(st.none(), _sizes),
    headers=st.lists(st.tuples(_names, _sizes), max_size=6),
    limit=st.integers(min_value=4_096, max_value=2 * LIMIT),
)
def test_any_record_fits_and_keeps_its_origin(
    key_size: int | None,
    value_size: int | None,
    headers: list[tuple[str, int]],
    limit: int,
) -> None:
    """Whatever the sizes of key, value and headers, the fitted record is within the limit,
    keeps the origin headers, keeps a prefix of key and value, and names each cut."""
    key = None if key_size is None else b"k" * key_size
    value = None if value_size is None else b"v" * value_size
    original = [(name, b"h" * size) for name, size in headers]
    dlq = _dlq_headers(original)
    cut_key, cut_value, fitted = fit_record(key, value, dlq, limit)
    assert record_size(cut_key, cut_value, fitted) <= limit
    info = decode_dlq_headers(fitted)
    assert info.origin == ORIGIN
    assert info.error_class == "invalid_payload"
    found = dict(fitted)
    assert (cut_key is None) == (key is None) and (cut_value is None) == (value is None)
    if key is not None and cut_key is not None:
        assert key.startswith(cut_key)
        assert (KEY_TRUNCATED in found) == (cut_key != key)
    if value is not None and cut_value is not None:
        assert value.startswith(cut_value)
        assert (VALUE_TRUNCATED in found) == (cut_value != value)
        if cut_value != value:
            assert int(found[ORIGINAL_SIZE]) == len(value)
    kept = [h for h in fitted if not h[0].startswith("streamproc.")]
    assert (HEADERS_TRUNCATED in found) == (len(kept) < len(original))


def test_many_upstream_headers_under_our_prefix_are_cut_like_any() -> None:
    """An upstream header that only starts with ``streamproc.`` is not ours: a thousand of
    them cannot keep a DLQ record over its limit."""
    from streamproc.records.dlq import record_size

    headers = [(f"streamproc.custom.{i}", b"x" * 1000) for i in range(1000)]
    key, value, fitted = fit_record(b"k", b"v", headers, max_bytes=8192)
    assert record_size(key, value, fitted) <= 8192
