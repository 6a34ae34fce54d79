"""Replay or park, and the exact records a replay writes."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import ErrorClass
from streamproc.records.dlq import (
    Failure,
    Headers,
    Origin,
    attempt_of,
    decode_dlq_headers,
    encode_dlq_headers,
)
from streamproc.replay.decision import (
    PARKED_REASON,
    Action,
    Targets,
    decide,
    plan,
    replay_record_headers,
)
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.interop import view_dlq_record

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
TARGETS = Targets(raw="leads.raw", parked="leads.parked", dlq="leads.dlq")
RETRIABLE = {
    ErrorClass.PROVIDER_ERROR,
    ErrorClass.PROVIDER_TIMEOUT,
    ErrorClass.RATE_LIMITED,
    ErrorClass.BREAKER_OPEN,
    ErrorClass.BUDGET_EXHAUSTED,
    ErrorClass.INTERNAL,
}


@dataclass
class Rec:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers


def _dlq(error_class: ErrorClass, attempt: int, original: Headers = ()) -> list[tuple[str, bytes]]:
    failure = Failure(error_class, f"{error_class} happened", error_class in RETRIABLE)
    return encode_dlq_headers(list(original), failure, Origin("leads.raw", 2, 40, 1), attempt, T0)


def test_retriable_with_attempts_left_is_replayed() -> None:
    """A retriable failure below --max-attempts is replayed."""
    assert decide(view_dlq_record(_dlq(ErrorClass.PROVIDER_ERROR, 2)), 3).action is Action.REPLAY


def test_out_of_attempts_is_parked_with_the_reason() -> None:
    """attempt == max_attempts parks the record, saying so."""
    d = decide(view_dlq_record(_dlq(ErrorClass.PROVIDER_ERROR, 3)), 3)
    assert d.action is Action.PARK
    assert d.reason == "out of attempts (3 of max 3, last provider_error)"


def test_not_retriable_is_parked_even_on_the_first_attempt() -> None:
    """invalid_payload is parked at attempt 1: the same bytes fail the same way."""
    d = decide(view_dlq_record(_dlq(ErrorClass.INVALID_PAYLOAD, 1)), 3)
    assert (d.action, d.reason) == (Action.PARK, "not retriable (invalid_payload)")


def test_a_truncated_value_is_parked_with_its_size_and_origin() -> None:
    """A retriable record whose value the DLQ holds only in part is parked at attempt 1,
    the reason naming the original size and where the whole value is."""
    headers = [
        *_dlq(ErrorClass.PROVIDER_ERROR, 1),
        ("streamproc.value.truncated", b"true"),
        ("streamproc.original.size", b"2097152"),
    ]
    d = decide(view_dlq_record(headers), 3)
    assert (d.action, d.reason) == (
        Action.PARK,
        "truncated (the DLQ holds only the first bytes of 2097152, last provider_error); "
        "the whole value is at leads.raw partition 2 offset 40",
    )


@pytest.mark.parametrize("cut", ["streamproc.key.truncated", "streamproc.headers.truncated"])
def test_a_cut_key_or_dropped_headers_are_parked_too(cut: str) -> None:
    """A DLQ record whose key was cut or headers dropped to fit is parked: replayed, the
    lead would come back as another record than the one upstream wrote."""
    d = decide(view_dlq_record([*_dlq(ErrorClass.PROVIDER_ERROR, 1), (cut, b"true")]), 3)
    assert d.action is Action.PARK and d.reason.startswith("truncated")


def test_unknown_retriability_is_replayed_until_out_of_attempts() -> None:
    """A foreign record (no retriable header) is replayed; attempts still bound it."""
    assert decide(view_dlq_record([]), 3).action is Action.REPLAY
    assert decide(view_dlq_record([]), 1).action is Action.PARK


@given(st.integers(min_value=1, max_value=10))
def test_a_lead_that_always_fails_is_processed_exactly_max_attempts_times(
    max_attempts: int,
) -> None:
    """Simulating processor + replayer: a failing lead is processed max_attempts times, then
    parked, never looping."""
    headers: list[tuple[str, bytes]] = [("traceparent", b"t")]
    processed = 0
    for _ in range(100):
        attempt = attempt_of(headers)  # what the processor computes
        processed += 1
        dlq = _dlq(ErrorClass.PROVIDER_ERROR, attempt, headers)
        view = view_dlq_record(dlq)
        if decide(view, max_attempts).action is Action.PARK:
            break
        headers = replay_record_headers(dlq, view)
    assert processed == max_attempts


def test_replay_headers_carry_attempt_and_origin_and_drop_the_failure() -> None:
    """Re-injected headers keep the originals, attempt and origin; error headers are gone."""
    dlq = _dlq(ErrorClass.RATE_LIMITED, 2, [("traceparent", b"t")])
    out = dict(replay_record_headers(dlq, view_dlq_record(dlq)))
    assert out["traceparent"] == b"t"
    assert out["streamproc.attempt"] == b"2"
    assert out["streamproc.original.offset"] == b"40"
    assert not {"streamproc.error.class", "streamproc.error.message", "streamproc.failed_at"} & set(
        out
    )


def test_spring_record_gets_our_attempt_and_origin_on_replay() -> None:
    """A Spring DLT record is re-injected with streamproc.attempt and streamproc.original.*
    taken from its Spring headers, and without its stack trace."""
    spring = [
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", struct.pack(">i", 3)),
        ("kafka_dlt-original-offset", struct.pack(">q", 77)),
        ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
        ("kafka_dlt-exception-stacktrace", b"..."),
    ]
    out = replay_record_headers(spring, view_dlq_record(spring))
    names = dict(out)
    assert names["streamproc.attempt"] == b"1"
    assert names["streamproc.original.topic"] == b"orders"
    assert names["streamproc.original.partition"] == b"3"
    assert names["streamproc.original.offset"] == b"77"
    assert "kafka_dlt-exception-stacktrace" not in names
    assert names["kafka_dlt-original-topic"] == b"orders"
    # the processor's DLQ record of it keeps that first origin
    again = encode_dlq_headers(
        out, Failure(ErrorClass.PROVIDER_ERROR, "x", True), Origin("leads.raw", 0, 5, 0), 2, T0
    )
    assert decode_dlq_headers(again).origin == Origin("orders", 3, 77, -1)


def test_plan_skip_puts_the_record_back_unchanged_in_its_partition() -> None:
    """A record not matching the filters goes back to the DLQ: same bytes, headers,
    partition and timestamp."""
    headers = _dlq(ErrorClass.INTERNAL, 1)
    rec = Rec(partition=2, offset=9, timestamp=1234, key=b"k", value=b"\xff\x00", headers=headers)
    only_rate_limited = ReplayFilter(error_classes=frozenset({"rate_limited"}))
    p = plan(rec, only_rate_limited, 3, TARGETS)
    assert (p.outcome, p.topic, p.partition, p.timestamp_ms) == ("skip", "leads.dlq", 2, 1234)
    assert (p.key, p.value, p.headers) == (b"k", b"\xff\x00", headers)


def test_plan_replay_and_park_targets() -> None:
    """Matching records go to leads.raw (replay) or leads.parked (with the reason header)."""
    replay = plan(
        Rec(0, 1, 5, b"a", b"v", _dlq(ErrorClass.INTERNAL, 1)), ReplayFilter(), 3, TARGETS
    )
    assert (replay.outcome, replay.topic, replay.partition) == ("replay", "leads.raw", None)
    park_headers = _dlq(ErrorClass.PROVIDER_REJECTED, 1)
    park = plan(Rec(0, 2, 5, b"b", b"v", park_headers), ReplayFilter(), 3, TARGETS)
    assert (park.outcome, park.topic) == ("park", "leads.parked")
    assert park.headers[:-1] == park_headers
    assert park.headers[-1] == (PARKED_REASON, b"not retriable (provider_rejected)")
