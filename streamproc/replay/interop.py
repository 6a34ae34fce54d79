"""One view of a DLQ record, whoever wrote it: streamproc, Spring Kafka or Kafka Connect.

Pure: headers (and the DLQ record's own timestamp) in, a :class:`DlqView` out; nothing
here raises on malformed input, because a DLQ is exactly where malformed things end up.

Header formats read, in this order of precedence (the first one that has a value wins):

**streamproc** (``streamproc.records.dlq``, docs/flow.md): ``streamproc.error.class``,
``.message``, ``.retriable``, ``streamproc.attempt``, ``streamproc.original.*`` (decimal
strings), ``streamproc.failed_at`` / ``first_failed_at`` (ISO-8601).

**Spring Kafka** (``DeadLetterPublishingRecoverer``; names from ``KafkaHeaders.DLT_*``):

===================================  ==============================================
``kafka_dlt-original-topic``         UTF-8
``kafka_dlt-original-partition``     4-byte big-endian int (``ByteBuffer.putInt``)
``kafka_dlt-original-offset``        8-byte big-endian long (``ByteBuffer.putLong``)
``kafka_dlt-original-timestamp``     8-byte big-endian long, epoch ms
``kafka_dlt-exception-fqcn``         UTF-8, the exception's class name
``kafka_dlt-exception-cause-fqcn``   UTF-8 (Spring 2.8+)
``kafka_dlt-exception-message``      UTF-8 (absent when the exception had none)
``kafka_dlt-key-exception-*``        the same, for a key deserialisation failure
``retry_topic-attempts``             attempts made; a 4-byte int in Spring 2.7, a
                                     ``BigInteger.toByteArray()`` (1+ bytes) later
===================================  ==============================================

Encodings were checked against Spring Kafka 2.7's ``DeadLetterPublishingRecoverer``
(``maybeAddOriginalHeaders``). Custom recoverers sometimes write the numbers as decimal
strings, so a value whose length is not 4 or 8 bytes is also tried as ASCII digits.

**Kafka Connect** (``DeadLetterQueueReporter`` with ``errors.deadletterqueue.context.
headers.enable=true``): ``__connect.errors.topic``, ``.partition``, ``.offset`` (decimal
strings), ``__connect.errors.exception.class.name``, ``__connect.errors.exception.message``,
``__connect.errors.connector.name``, ``__connect.errors.stage``. Connect gives the DLQ
record the *original* record's timestamp, so it is the origin timestamp, and the best
failure time there is.

Neither Java tool says whether a failure is worth retrying, nor (outside Spring's retry
topics) how often the record was tried: such records read as ``retriable=None`` and
``attempt=1`` (the failure that put them in the DLQ), error class ``unclassified``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from streamproc.records.dlq import (
    ATTEMPT,
    HEADERS_TRUNCATED,
    KEY_TRUNCATED,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_SIZE,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    VALUE_TRUNCATED,
    Headers,
    Origin,
    decode_dlq_headers,
    sanitize_message,
)
from streamproc.timestamps import utc_iso

__all__ = [
    "FOREIGN_FAILURE_HEADERS",
    "UNCLASSIFIED",
    "DlqSource",
    "DlqView",
    "escape_text",
    "header_text",
    "origin_headers",
    "view_dlq_record",
]

#: The error class label of a record without a ``streamproc.error.class`` header.
UNCLASSIFIED = "unclassified"

SPRING_TOPIC = "kafka_dlt-original-topic"
SPRING_PARTITION = "kafka_dlt-original-partition"
SPRING_OFFSET = "kafka_dlt-original-offset"
SPRING_TIMESTAMP = "kafka_dlt-original-timestamp"
SPRING_FQCN = "kafka_dlt-exception-fqcn"
SPRING_CAUSE_FQCN = "kafka_dlt-exception-cause-fqcn"
SPRING_MESSAGE = "kafka_dlt-exception-message"
SPRING_STACKTRACE = "kafka_dlt-exception-stacktrace"
SPRING_KEY_FQCN = "kafka_dlt-key-exception-fqcn"
SPRING_KEY_MESSAGE = "kafka_dlt-key-exception-message"
SPRING_KEY_STACKTRACE = "kafka_dlt-key-exception-stacktrace"
SPRING_ATTEMPTS = "retry_topic-attempts"

CONNECT_TOPIC = "__connect.errors.topic"
CONNECT_PARTITION = "__connect.errors.partition"
CONNECT_OFFSET = "__connect.errors.offset"
CONNECT_EXCEPTION = "__connect.errors.exception.class.name"
CONNECT_MESSAGE = "__connect.errors.exception.message"
CONNECT_STACKTRACE = "__connect.errors.exception.stacktrace"
CONNECT_CONNECTOR = "__connect.errors.connector.name"
CONNECT_STAGE = "__connect.errors.stage"

#: Foreign headers that describe *the failure*, not the record: like our own per-failure
#: headers they are dropped when a record is re-injected (a stack trace can be kilobytes,
#: and a record in ``leads.raw`` must not look like a failure). The origin headers stay.
FOREIGN_FAILURE_HEADERS = frozenset(
    {
        SPRING_FQCN,
        SPRING_CAUSE_FQCN,
        SPRING_MESSAGE,
        SPRING_STACKTRACE,
        SPRING_KEY_FQCN,
        SPRING_KEY_MESSAGE,
        SPRING_KEY_STACKTRACE,
        CONNECT_EXCEPTION,
        CONNECT_MESSAGE,
        CONNECT_STACKTRACE,
        "__connect.errors.class.name",
        "__connect.errors.stage",
        "__connect.errors.task.id",
        "__connect.errors.connector.name",
    }
)


class DlqSource(StrEnum):
    """Who wrote the DLQ record, judged by its headers."""

    STREAMPROC = "streamproc"
    SPRING = "spring"
    CONNECT = "connect"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DlqView:
    """What the replayer and ``dlq stats`` need to know about one DLQ record.

    ``error_class`` is our class (``streamproc.error.class``) or :data:`UNCLASSIFIED`;
    ``exception_class`` is the Java exception's class name for foreign records.
    ``failed_at`` falls back to the DLQ record's own timestamp; ``None`` when neither is
    known. ``attempt`` is how many times the record was processed (at least 1).
    ``truncated``: the DLQ holds only the first bytes of the value
    (``streamproc.value.truncated``), whose whole size was ``original_size``, or a cut key
    or dropped headers (``streamproc.key.truncated``, ``streamproc.headers.truncated``).
    """

    source: DlqSource
    error_class: str
    message: str | None
    retriable: bool | None
    attempt: int
    origin: Origin | None
    failed_at: datetime | None
    first_failed_at: datetime | None
    exception_class: str | None = None
    truncated: bool = False
    original_size: int | None = None


def _last(headers: Headers, name: str) -> bytes | None:
    found = None
    for key, value in headers:
        if key == name:
            found = value  # repeated headers: the last one wins, as Kafka clients read them
    return found


def _text(headers: Headers, name: str) -> str | None:
    raw = _last(headers, name)
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _decimal(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def _java_int(raw: bytes | None) -> int | None:
    """A Java ``int``/``long`` as Spring writes it (4 or 8 bytes big-endian), else digits."""
    if raw is None:
        return None
    if len(raw) == 4:
        return int(struct.unpack(">i", raw)[0])
    if len(raw) == 8:
        return int(struct.unpack(">q", raw)[0])
    return _decimal(raw)


def _big_integer(raw: bytes | None) -> int | None:
    """``BigInteger.toByteArray()`` (big-endian two's complement, any length) or a 4-byte int."""
    if not raw or len(raw) > 8:
        return _decimal(raw) if raw else None
    return int.from_bytes(raw, "big", signed=True)


def _from_epoch_ms(ms: int | None) -> datetime | None:
    if ms is None or ms < 0:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _message(text: str | None) -> str | None:
    return None if text is None else sanitize_message(text)


def _spring_origin(headers: Headers) -> Origin | None:
    topic = _text(headers, SPRING_TOPIC)
    partition = _java_int(_last(headers, SPRING_PARTITION))
    offset = _java_int(_last(headers, SPRING_OFFSET))
    if topic is None or partition is None or offset is None:
        return None
    timestamp = _java_int(_last(headers, SPRING_TIMESTAMP))
    return Origin(topic, partition, offset, timestamp if timestamp is not None else -1)


def _connect_origin(headers: Headers, timestamp_ms: int | None) -> Origin | None:
    topic = _text(headers, CONNECT_TOPIC)
    partition = _decimal(_last(headers, CONNECT_PARTITION))
    offset = _decimal(_last(headers, CONNECT_OFFSET))
    if topic is None or partition is None or offset is None:
        return None
    # Connect copies the original record's timestamp onto the DLQ record.
    return Origin(topic, partition, offset, timestamp_ms if timestamp_ms is not None else -1)


def _source(headers: Headers) -> DlqSource:
    names = {key for key, _ in headers}
    if any(name.startswith("streamproc.error.") for name in names):
        return DlqSource.STREAMPROC
    if any(name.startswith("kafka_dlt-") for name in names):
        return DlqSource.SPRING
    if any(name.startswith("__connect.errors.") for name in names):
        return DlqSource.CONNECT
    if ORIGINAL_TOPIC in names or ATTEMPT in names:
        return DlqSource.STREAMPROC
    return DlqSource.UNKNOWN


def view_dlq_record(headers: Headers, timestamp_ms: int | None = None) -> DlqView:
    """Decode a DLQ record's headers, whichever tool wrote them (never raises).

    ``timestamp_ms`` is the DLQ record's own Kafka timestamp (epoch ms): the failure time
    of records that carry none in their headers.
    """
    ours = decode_dlq_headers(headers)
    source = _source(headers)
    spring_origin = _spring_origin(headers)
    connect_origin = _connect_origin(headers, timestamp_ms)
    origin = ours.origin or spring_origin or connect_origin

    exception_class: str | None = None
    message = ours.message
    if source is DlqSource.SPRING or (ours.error_class is None and spring_origin is not None):
        exception_class = _text(headers, SPRING_FQCN) or _text(headers, SPRING_KEY_FQCN)
        message = message or _message(
            _text(headers, SPRING_MESSAGE) or _text(headers, SPRING_KEY_MESSAGE)
        )
    elif source is DlqSource.CONNECT or (ours.error_class is None and connect_origin is not None):
        exception_class = _text(headers, CONNECT_EXCEPTION)
        message = message or _message(_text(headers, CONNECT_MESSAGE))

    attempt = ours.attempt
    if _last(headers, ATTEMPT) is None:
        spring_attempts = _big_integer(_last(headers, SPRING_ATTEMPTS))
        if spring_attempts is not None and spring_attempts >= 1:
            attempt = spring_attempts

    return DlqView(
        source=source,
        error_class=ours.error_class or UNCLASSIFIED,
        message=message,
        retriable=ours.retriable,
        attempt=attempt,
        origin=origin,
        failed_at=ours.failed_at or _from_epoch_ms(timestamp_ms),
        first_failed_at=ours.first_failed_at,
        exception_class=exception_class,
        # A cut key or dropped headers make a replay as wrong as a cut value: the lead
        # would come back as another record than the one upstream wrote.
        truncated=any(
            (_last(headers, name) or b"").strip().lower() == b"true"
            for name in (VALUE_TRUNCATED, KEY_TRUNCATED, HEADERS_TRUNCATED)
        ),
        original_size=_decimal(_last(headers, ORIGINAL_SIZE)),
    )


def origin_headers(origin: Origin) -> list[tuple[str, bytes]]:
    """Our ``streamproc.original.*`` headers for an origin read from a foreign format."""
    return [
        (ORIGINAL_TOPIC, origin.topic.encode()),
        (ORIGINAL_PARTITION, str(origin.partition).encode()),
        (ORIGINAL_OFFSET, str(origin.offset).encode()),
        (ORIGINAL_TIMESTAMP, str(origin.timestamp_ms).encode()),
    ]


def escape_text(raw: bytes) -> str:
    """Bytes for a terminal: UTF-8 as text, line breaks and tabs kept; invalid bytes as
    ``\\xff`` and every other control character escaped (``\\x1b``), so a record cannot
    move the cursor or recolour the screen of whoever reads it."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(
        ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode()
        for ch in text
    )


#: Headers whose value is a number in binary (Spring's ``ByteBuffer`` ints and longs).
_BINARY_NUMBERS = {
    SPRING_PARTITION: _java_int,
    SPRING_OFFSET: _java_int,
    SPRING_TIMESTAMP: _java_int,
    SPRING_ATTEMPTS: _big_integer,
}
#: Headers that hold epoch milliseconds: shown with their UTC time as well.
_EPOCH_MS = frozenset({SPRING_TIMESTAMP, ORIGINAL_TIMESTAMP})


def header_text(name: str, value: bytes | None) -> str:
    """One header's value for a person, whichever tool wrote it (never raises).

    Spring's binary partition, offset, timestamp and attempts read as decimal numbers;
    epoch-millisecond timestamps get their UTC time in brackets; anything else is
    :func:`escape_text`. A ``None`` value (a header without one) is ``(null)``.
    """
    if value is None:
        return "(null)"
    decode = _BINARY_NUMBERS.get(name)
    number = decode(value) if decode is not None else None
    if number is None and name in _EPOCH_MS:
        number = _decimal(value)
    if number is None:
        return escape_text(value)
    if name in _EPOCH_MS:
        moment = _from_epoch_ms(number)
        return f"{number} ({utc_iso(moment, 'milliseconds')})" if moment else str(number)
    return str(number)
