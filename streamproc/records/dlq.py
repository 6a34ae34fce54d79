"""The DLQ header codec (docs/flow.md, "DLQ record").

A DLQ record's value is the original record's bytes, unchanged; its headers are the
original headers plus ours. This module is pure: it turns a failure and the record's
position into headers, and headers back into a :class:`DlqInfo`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from streamproc.errors import ErrorClass
from streamproc.timestamps import utc_iso

__all__ = [
    "ATTEMPT",
    "HEADERS_TRUNCATED",
    "KEY_TRUNCATED",
    "ORIGINAL_HEADERS_SIZE",
    "ORIGINAL_KEY_SIZE",
    "DlqInfo",
    "Failure",
    "Headers",
    "Origin",
    "attempt_of",
    "decode_dlq_headers",
    "encode_dlq_headers",
    "fit_record",
    "record_size",
    "replay_headers",
]

Headers = Sequence[tuple[str, bytes]]

PREFIX = "streamproc."
ERROR_CLASS = "streamproc.error.class"
ERROR_MESSAGE = "streamproc.error.message"
ERROR_RETRIABLE = "streamproc.error.retriable"
ATTEMPT = "streamproc.attempt"
ORIGINAL_TOPIC = "streamproc.original.topic"
ORIGINAL_PARTITION = "streamproc.original.partition"
ORIGINAL_OFFSET = "streamproc.original.offset"
ORIGINAL_TIMESTAMP = "streamproc.original.timestamp"
FIRST_FAILED_AT = "streamproc.first_failed_at"
FAILED_AT = "streamproc.failed_at"
#: Set when the DLQ value is only the start of the original (the whole did not fit): the
#: original's size in bytes; the rest is read from the origin coordinates.
ORIGINAL_SIZE = "streamproc.original.size"
VALUE_TRUNCATED = "streamproc.value.truncated"
#: Set when the key did not fit either: the DLQ key is its first bytes; the original's size.
KEY_TRUNCATED = "streamproc.key.truncated"
ORIGINAL_KEY_SIZE = "streamproc.original.key.size"
#: Set when original headers were dropped to fit: the bytes of the headers dropped.
HEADERS_TRUNCATED = "streamproc.headers.truncated"
ORIGINAL_HEADERS_SIZE = "streamproc.original.headers.size"

#: What a record costs beyond its key, value and header bytes (record and batch framing,
#: varints, a header's own framing): generous, so that a fitted record always fits.
RECORD_OVERHEAD_BYTES = 512
HEADER_OVERHEAD_BYTES = 16

#: Headers that describe *this* failure; replaced on every trip through the DLQ.
_PER_FAILURE = (ERROR_CLASS, ERROR_MESSAGE, ERROR_RETRIABLE, FAILED_AT, ATTEMPT)
#: Headers that describe the *first* time; carried unchanged through any number of trips.
_ORIGIN = (ORIGINAL_TOPIC, ORIGINAL_PARTITION, ORIGINAL_OFFSET, ORIGINAL_TIMESTAMP, FIRST_FAILED_AT)

#: A DLQ message is for humans and dashboards, not a payload dump.
MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was read: topic, partition, offset and its timestamp (epoch ms)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Failure:
    error_class: ErrorClass
    message: str
    retriable: bool


@dataclass(frozen=True, slots=True)
class DlqInfo:
    """Our headers of a DLQ record, decoded. Fields are ``None`` when a header is absent."""

    error_class: str | None
    message: str | None
    retriable: bool | None
    attempt: int
    origin: Origin | None
    first_failed_at: datetime | None
    failed_at: datetime | None


def _get(headers: Iterable[tuple[str, bytes | None]], name: str) -> bytes | None:
    found = None
    for key, value in headers:
        if key == name:
            found = value  # the last one wins, as Kafka clients treat repeated headers
    return found


def _text(headers: Headers, name: str) -> str | None:
    raw = _get(headers, name)
    if raw is None:
        return None
    return raw.decode("utf-8", errors="replace")


def _int(headers: Headers, name: str) -> int | None:
    text = _text(headers, name)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _iso(moment: datetime) -> bytes:
    return utc_iso(moment, "milliseconds").encode()


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def sanitize_message(message: str) -> str:
    """One line, bounded: CR/LF and other control characters become spaces."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in message)
    if len(cleaned) > MAX_MESSAGE_CHARS:
        cleaned = cleaned[: MAX_MESSAGE_CHARS - 1] + "…"
    return cleaned


def attempt_of(headers: Headers) -> int:
    """This processing's attempt number: one more than the attempt a replayed record carries."""
    previous = _int(headers, ATTEMPT)
    return (previous + 1) if previous is not None and previous >= 1 else 1


def encode_dlq_headers(
    original: Headers, failure: Failure, origin: Origin, attempt: int, now: datetime
) -> list[tuple[str, bytes]]:
    """The headers of the DLQ record for a record that failed.

    Original headers are kept in order; our per-failure headers are replaced; the origin
    headers (and the first failure time) are kept when the record already carries them,
    so a lead keeps its first origin through any number of replays.
    """
    out = [(k, v) for k, v in original if k not in _PER_FAILURE]
    present = {k for k, _ in out}
    if ORIGINAL_TOPIC not in present:
        out = [(k, v) for k, v in out if k not in _ORIGIN]
        out += [
            (ORIGINAL_TOPIC, origin.topic.encode()),
            (ORIGINAL_PARTITION, str(origin.partition).encode()),
            (ORIGINAL_OFFSET, str(origin.offset).encode()),
            (ORIGINAL_TIMESTAMP, str(origin.timestamp_ms).encode()),
        ]
    if FIRST_FAILED_AT not in present:
        out.append((FIRST_FAILED_AT, _iso(now)))
    out += [
        (ERROR_CLASS, failure.error_class.value.encode()),
        (ERROR_MESSAGE, sanitize_message(failure.message).encode()),
        (ERROR_RETRIABLE, b"true" if failure.retriable else b"false"),
        (ATTEMPT, str(attempt).encode()),
        (FAILED_AT, _iso(now)),
    ]
    return out


def decode_dlq_headers(headers: Headers) -> DlqInfo:
    """Read our headers back; tolerant of missing or malformed values (never raises)."""
    retriable_text = _text(headers, ERROR_RETRIABLE)
    topic = _text(headers, ORIGINAL_TOPIC)
    partition = _int(headers, ORIGINAL_PARTITION)
    offset = _int(headers, ORIGINAL_OFFSET)
    origin = (
        Origin(topic, partition, offset, _int(headers, ORIGINAL_TIMESTAMP) or -1)
        if topic is not None and partition is not None and offset is not None
        else None
    )
    return DlqInfo(
        error_class=_text(headers, ERROR_CLASS),
        message=_text(headers, ERROR_MESSAGE),
        retriable=None if retriable_text is None else retriable_text.lower() == "true",
        attempt=max(_int(headers, ATTEMPT) or 1, 1),
        origin=origin,
        first_failed_at=_parse_iso(_text(headers, FIRST_FAILED_AT)),
        failed_at=_parse_iso(_text(headers, FAILED_AT)),
    )


def replay_headers(dlq_headers: Headers) -> list[tuple[str, bytes]]:
    """Headers for re-injecting a DLQ record into ``leads.raw``.

    The attempt and the origin travel with the record; the per-failure error headers are
    dropped so that a record in ``leads.raw`` never looks like a failure.
    """
    drop = {ERROR_CLASS, ERROR_MESSAGE, ERROR_RETRIABLE, FAILED_AT}
    return [(k, v) for k, v in dlq_headers if k not in drop]


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of the bytes one record takes in an uncompressed batch of its own."""
    header_bytes = sum(len(k.encode()) + len(v or b"") + HEADER_OVERHEAD_BYTES for k, v in headers)
    return RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"") + header_bytes


#: Our own headers longer than this are not ours (an upstream record may carry any name):
#: a minimal record keeps ours whole and needs them small. Ours are under 1 KiB (the
#: message is at most 300 characters).
MAX_OWN_HEADER_BYTES = 2048
#: Room kept for the headers that say what was cut (six names and numbers of 20 digits).
_MARKERS_BYTES = 6 * (HEADER_OVERHEAD_BYTES + 40 + 20)


def _header_bytes(key: str, value: bytes | None) -> int:
    return len(key.encode()) + len(value or b"") + HEADER_OVERHEAD_BYTES


#: The headers this module writes: only these are kept whole when a record is cut. An
#: upstream header that merely starts with ``streamproc.`` is the producer's, cut like any.
_OWN_NAMES = frozenset({
    ERROR_CLASS, ERROR_MESSAGE, ERROR_RETRIABLE, ATTEMPT, ORIGINAL_TOPIC, ORIGINAL_PARTITION,
    ORIGINAL_OFFSET, ORIGINAL_TIMESTAMP, FIRST_FAILED_AT, FAILED_AT, ORIGINAL_SIZE,
    VALUE_TRUNCATED, KEY_TRUNCATED, ORIGINAL_KEY_SIZE, HEADERS_TRUNCATED, ORIGINAL_HEADERS_SIZE,
})  # fmt: skip


def _own(key: str, value: bytes | None) -> bool:
    return key in _OWN_NAMES and _header_bytes(key, value) <= MAX_OWN_HEADER_BYTES


def fit_record(
    key: bytes | None, value: bytes | None, headers: Headers, max_bytes: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The key, value and headers of a DLQ record cut to fit in ``max_bytes``.

    Whole when it fits. Otherwise room goes, in this order, to our own ``streamproc.*``
    headers (the origin coordinates and the failure: always kept), the key (its first
    bytes), the other headers (each whole or dropped, in order), then the value (its first
    bytes); a part that was cut is named in a header, with its original size:
    ``streamproc.value.truncated`` / ``streamproc.original.size``,
    ``streamproc.key.truncated`` / ``streamproc.original.key.size``,
    ``streamproc.headers.truncated`` / ``streamproc.original.headers.size`` (the bytes of
    the headers dropped). The record still leaves its place, and the operator reads the
    whole original at its origin coordinates. Never raises; a limit too small for our own
    headers yields them alone (with an empty key and value).
    """
    kept = [(k, v) for k, v in headers]
    if record_size(key, value, kept) <= max_bytes:
        return key, value, kept
    own = [(k, v) for k, v in kept if _own(k, v)]
    room = max_bytes - record_size(None, None, own) - _MARKERS_BYTES
    cut_key = key if key is None else key[: max(room, 0)]
    room -= len(cut_key or b"")
    keep = [_own(k, v) for k, v in kept]
    dropped = 0
    for index, (k, v) in enumerate(kept):
        if keep[index]:
            continue
        size = _header_bytes(k, v)
        if size <= room:
            keep[index] = True
            room -= size
        else:
            dropped += size
    cut_value = value if value is None else value[: max(room, 0)]
    # The original order, less what was dropped; our markers after.
    out = [header for header, kept_it in zip(kept, keep, strict=True) if kept_it]
    if cut_value is not None and value is not None and len(cut_value) < len(value):
        out += [(VALUE_TRUNCATED, b"true"), (ORIGINAL_SIZE, str(len(value)).encode())]
    if cut_key is not None and key is not None and len(cut_key) < len(key):
        out += [(KEY_TRUNCATED, b"true"), (ORIGINAL_KEY_SIZE, str(len(key)).encode())]
    if dropped:
        out += [(HEADERS_TRUNCATED, b"true"), (ORIGINAL_HEADERS_SIZE, str(dropped).encode())]
    return cut_key, cut_value, out
