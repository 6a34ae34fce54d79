"""Reading DLQ headers written by streamproc, Spring Kafka and Kafka Connect."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers
from streamproc.replay.interop import (
    UNCLASSIFIED,
    DlqSource,
    origin_headers,
    view_dlq_record,
)

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def _spring(
    partition: int = 4, offset: int = 123_456_789_012, attempts: bytes | None = None
) -> list[tuple[str, bytes]]:
    headers = [
        ("traceparent", b"00-abc-01"),
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", struct.pack(">i", partition)),
        ("kafka_dlt-original-offset", struct.pack(">q", offset)),
        ("kafka_dlt-original-timestamp", struct.pack(">q", 1_700_000_000_000)),
        ("kafka_dlt-original-timestamp-type", b"CreateTime"),
        ("kafka_dlt-exception-fqcn", b"org.springframework.kafka.KafkaException"),
        ("kafka_dlt-exception-message", b"listener failed:\nboom"),
        ("kafka_dlt-exception-stacktrace", b"at x.y.Z(Z.java:1)\n" * 50),
    ]
    if attempts is not None:
        headers.append(("retry_topic-attempts", attempts))
    return headers


CONNECT = [
    ("__connect.errors.topic", b"crm.contacts"),
    ("__connect.errors.partition", b"2"),
    ("__connect.errors.offset", b"9876"),
    ("__connect.errors.connector.name", b"jdbc-sink"),
    ("__connect.errors.task.id", b"0"),
    ("__connect.errors.stage", b"VALUE_CONVERTER"),
    ("__connect.errors.class.name", b"org.apache.kafka.connect.json.JsonConverter"),
    ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
    ("__connect.errors.exception.message", b"Converting byte[] to Kafka Connect data failed"),
]


def test_streamproc_record_reads_our_headers() -> None:
    """Our own DLQ headers give class, retriable, attempt, origin and failure times."""
    headers = encode_dlq_headers(
        [], Failure(ErrorClass.RATE_LIMITED, "429", True), Origin("leads.raw", 1, 7, 5), 2, T0
    )
    view = view_dlq_record(headers, timestamp_ms=0)
    assert view.source is DlqSource.STREAMPROC
    assert (view.error_class, view.retriable, view.attempt) == ("rate_limited", True, 2)
    assert view.origin == Origin("leads.raw", 1, 7, 5)
    assert view.failed_at == T0
    assert view.exception_class is None


def test_spring_origin_is_decoded_from_big_endian_binary() -> None:
    """Spring's partition (4-byte int) and offset (8-byte long) decode to the origin."""
    view = view_dlq_record(_spring(), timestamp_ms=T0_MS)
    assert view.source is DlqSource.SPRING
    assert view.origin == Origin("orders", 4, 123_456_789_012, 1_700_000_000_000)
    assert view.exception_class == "org.springframework.kafka.KafkaException"
    assert view.message == "listener failed: boom"
    assert view.error_class == UNCLASSIFIED
    assert view.retriable is None
    assert view.attempt == 1
    assert view.failed_at == T0


def test_spring_retry_topic_attempts_in_both_encodings() -> None:
    """retry_topic-attempts is read as a 4-byte int (Spring 2.7) and as BigInteger bytes."""
    assert view_dlq_record(_spring(attempts=struct.pack(">i", 3))).attempt == 3
    assert view_dlq_record(_spring(attempts=(4).to_bytes(1, "big"))).attempt == 4


def test_spring_numbers_written_as_decimal_strings_are_accepted() -> None:
    """A custom recoverer writing decimal strings still yields the origin."""
    headers = [
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", b"11"),
        ("kafka_dlt-original-offset", b"12345"),
    ]
    assert view_dlq_record(headers).origin == Origin("orders", 11, 12345, -1)


def test_connect_origin_is_decoded_from_strings() -> None:
    """Connect's decimal-string context headers decode; its timestamp is the origin's."""
    view = view_dlq_record(CONNECT, timestamp_ms=T0_MS)
    assert view.source is DlqSource.CONNECT
    assert view.origin == Origin("crm.contacts", 2, 9876, T0_MS)
    assert view.exception_class == "org.apache.kafka.connect.errors.DataException"
    assert view.message == "Converting byte[] to Kafka Connect data failed"
    assert view.failed_at == T0


def test_our_headers_win_over_foreign_ones() -> None:
    """A Spring record that failed again in streamproc reads as ours, first origin kept."""
    replayed = [*_spring()[:5], *origin_headers(Origin("orders", 4, 1, 2))]
    headers = encode_dlq_headers(
        replayed,
        Failure(ErrorClass.PROVIDER_ERROR, "503", True),
        Origin("leads.raw", 0, 0, 0),
        2,
        T0,
    )
    view = view_dlq_record(headers)
    assert view.source is DlqSource.STREAMPROC
    assert view.error_class == "provider_error"
    assert view.origin == Origin("orders", 4, 1, 2)
    assert view.exception_class is None


def test_no_headers_at_all_is_unknown_attempt_one() -> None:
    """A bare record reads as unknown, unclassified, attempt 1, failure time from its timestamp."""
    view = view_dlq_record([], timestamp_ms=T0_MS)
    assert (view.source, view.error_class, view.attempt) == (DlqSource.UNKNOWN, UNCLASSIFIED, 1)
    assert view.origin is None
    assert view.failed_at == T0
    assert view_dlq_record([], timestamp_ms=-1).failed_at is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "kafka_dlt-original-partition",
                    "kafka_dlt-original-offset",
                    "kafka_dlt-original-topic",
                    "retry_topic-attempts",
                    "__connect.errors.partition",
                    "__connect.errors.offset",
                    "__connect.errors.topic",
                    "streamproc.attempt",
                    "streamproc.failed_at",
                    "streamproc.error.class",
                ]
            ),
            st.binary(max_size=12),
        ),
        max_size=10,
    ),
    st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
)
def test_garbage_headers_never_raise(headers: list[tuple[str, bytes]], ts: int | None) -> None:
    """Any bytes in any known header decode to a view with attempt >= 1, never an error."""
    view = view_dlq_record(headers, timestamp_ms=ts)
    assert view.attempt >= 1
