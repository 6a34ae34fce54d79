"""The `dlq stats` aggregate over DLQ records."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers
from streamproc.replay.interop import DlqView, view_dlq_record
from streamproc.replay.stats import DlqStats

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def _ours(
    error_class: ErrorClass, retriable: bool, attempt: int, at: datetime, msg: str
) -> DlqView:
    headers = encode_dlq_headers(
        [], Failure(error_class, msg, retriable), Origin("leads.raw", 0, 1, 2), attempt, at
    )
    return view_dlq_record(headers)


def test_counts_by_every_dimension() -> None:
    """Class, retriable, attempt, source, replay decision, oldest/newest and top messages."""
    stats = DlqStats(max_attempts=3)
    stats.add(_ours(ErrorClass.PROVIDER_ERROR, True, 1, T0, "503"))
    stats.add(_ours(ErrorClass.PROVIDER_ERROR, True, 3, T0 + timedelta(hours=1), "503"))
    stats.add(_ours(ErrorClass.INVALID_PAYLOAD, False, 1, T0 - timedelta(hours=1), "not JSON"))
    spring = [
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", struct.pack(">i", 0)),
        ("kafka_dlt-original-offset", struct.pack(">q", 5)),
        ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
        ("kafka_dlt-exception-message", b"bad state"),
    ]
    stats.add(view_dlq_record(spring, timestamp_ms=int(T0.timestamp() * 1000)))
    out = stats.to_json()
    assert out["total"] == 4
    assert out["by_error_class"] == {"invalid_payload": 1, "provider_error": 2, "unclassified": 1}
    assert out["by_retriable"] == {"false": 1, "true": 2, "unknown": 1}
    assert out["by_attempt"] == {"1": 3, "3": 1}
    assert out["by_source"] == {"spring": 1, "streamproc": 3}
    assert out["replay_would"] == {"max_attempts": 3, "replay": 2, "park": 2}
    assert out["oldest_failure"] == "2026-11-26T02:00:00.000Z"
    assert out["newest_failure"] == "2026-11-26T04:00:00.000Z"
    assert out["top_messages"][0] == {"error_class": "provider_error", "message": "503", "count": 2}
    assert {
        "error_class": "unclassified",
        "message": "java.lang.IllegalStateException: bad state",
        "count": 1,
    } in out["top_messages"]


def test_empty_dlq() -> None:
    """No records: zero total and no failure times."""
    out = DlqStats().to_json()
    assert (out["total"], out["oldest_failure"], out["top_messages"]) == (0, None, [])
