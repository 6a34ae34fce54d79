"""The DLQ header codec: exactly the headers of docs/flow.md, originals kept, round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import ErrorClass
from streamproc.records.dlq import (
    Failure,
    Origin,
    attempt_of,
    decode_dlq_headers,
    encode_dlq_headers,
    replay_headers,
    sanitize_message,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ORIGIN = Origin("leads.raw", 2, 41, 1_764_158_400_000)
FAIL = Failure(ErrorClass.PROVIDER_ERROR, "provider answered 503", True)


def test_first_failure_has_every_header() -> None:
    """A first failure adds all contract headers with the record's origin and attempt 1."""
    headers = dict(encode_dlq_headers([], FAIL, ORIGIN, 1, T0))
    assert headers == {
        "streamproc.error.class": b"provider_error",
        "streamproc.error.message": b"provider answered 503",
        "streamproc.error.retriable": b"true",
        "streamproc.attempt": b"1",
        "streamproc.original.topic": b"leads.raw",
        "streamproc.original.partition": b"2",
        "streamproc.original.offset": b"41",
        "streamproc.original.timestamp": b"1764158400000",
        "streamproc.first_failed_at": b"2026-11-26T12:00:00.000Z",
        "streamproc.failed_at": b"2026-11-26T12:00:00.000Z",
    }


def test_original_headers_are_kept_in_order() -> None:
    """Upstream headers survive untouched and before ours."""
    original = [("traceparent", b"00-abc"), ("x-tenant", b"\x00\xff")]
    headers = encode_dlq_headers(original, FAIL, ORIGIN, 1, T0)
    assert headers[:2] == original


def test_replayed_record_keeps_first_origin_and_first_failure() -> None:
    """A lead failing again after a replay keeps its first origin and first failure time."""
    first = encode_dlq_headers([], FAIL, ORIGIN, 1, T0)
    replayed = replay_headers(first)
    attempt = attempt_of(replayed)
    later = T0 + timedelta(hours=3)
    second = encode_dlq_headers(
        replayed,
        Failure(ErrorClass.PROVIDER_TIMEOUT, "timed out", True),
        Origin("leads.raw", 0, 999, 5),
        attempt,
        later,
    )
    info = decode_dlq_headers(second)
    assert attempt == 2
    assert info.attempt == 2
    assert info.origin == ORIGIN
    assert info.first_failed_at == T0
    assert info.failed_at == later
    assert info.error_class == "provider_timeout"
    # no header appears twice
    names = [k for k, _ in second]
    assert len(names) == len(set(names))


def test_replay_headers_drop_the_error_but_carry_attempt() -> None:
    """A re-injected record carries attempt and origin, not the last error."""
    replayed = dict(replay_headers(encode_dlq_headers([], FAIL, ORIGIN, 2, T0)))
    assert replayed["streamproc.attempt"] == b"2"
    assert "streamproc.error.class" not in replayed
    assert replayed["streamproc.original.offset"] == b"41"


def test_fresh_record_is_attempt_one() -> None:
    """A record without our attempt header is processed for the first time."""
    assert attempt_of([]) == 1
    assert attempt_of([("streamproc.attempt", b"garbage")]) == 1


def test_message_is_one_bounded_line() -> None:
    """CR/LF cannot forge a second line and long messages are cut."""
    msg = sanitize_message("bad\r\nstreamproc.error.class: fake" + "x" * 1000)
    assert "\n" not in msg
    assert "\r" not in msg
    assert len(msg) <= 300


def test_decode_tolerates_garbage() -> None:
    """Foreign or broken headers decode to None fields, never an exception."""
    info = decode_dlq_headers([("streamproc.original.partition", b"x"), ("a", b"\xff")])
    assert info.origin is None
    assert info.error_class is None
    assert info.attempt == 1


@given(
    error_class=st.sampled_from(list(ErrorClass)),
    message=st.text(max_size=500),
    retriable=st.booleans(),
    attempt=st.integers(min_value=1, max_value=10_000),
    partition=st.integers(min_value=0, max_value=10_000),
    offset=st.integers(min_value=0, max_value=2**62),
    original=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20).filter(lambda s: not s.startswith("streamproc.")),
            st.binary(max_size=20),
        ),
        max_size=5,
    ),
)
def test_round_trip(
    error_class: ErrorClass,
    message: str,
    retriable: bool,
    attempt: int,
    partition: int,
    offset: int,
    original: list[tuple[str, bytes]],
) -> None:
    """Whatever is encoded decodes to the same values, originals untouched."""
    origin = Origin("leads.raw", partition, offset, 123)
    headers = encode_dlq_headers(
        original, Failure(error_class, message, retriable), origin, attempt, T0
    )
    info = decode_dlq_headers(headers)
    assert headers[: len(original)] == original
    assert info.error_class == error_class.value
    assert info.retriable is retriable
    assert info.attempt == attempt
    assert info.origin == origin
    assert info.message == sanitize_message(message)
