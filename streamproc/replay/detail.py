"""One DLQ record for a person or a program: what ``streamproc dlq show`` prints.

Pure: a record read from the DLQ (its coordinates, key, value and headers) in, text or a
JSON-ready dict out. The failure is read by :func:`~streamproc.replay.interop.view_dlq_record`
(ours, Spring Kafka's, Kafka Connect's headers), every header is decoded by
:func:`~streamproc.replay.interop.header_text`, and the payload is pretty-printed when it
is JSON and escaped otherwise; a payload the processor had to cut to fit the DLQ says so,
and where the whole original is. Nothing here raises on malformed input.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from streamproc.records.dlq import ORIGINAL_SIZE, VALUE_TRUNCATED, Headers
from streamproc.replay.decision import DlqRecord, decide
from streamproc.replay.interop import DlqView, escape_text, header_text, view_dlq_record
from streamproc.timestamps import utc_iso

__all__ = [
    "Payload",
    "detail_json",
    "read_payload",
    "render_detail",
    "render_rows",
    "summary_json",
]

#: How a payload is shown: parsed JSON, UTF-8 text, or bytes that are neither.
Encoding = Literal["json", "text", "binary", "none"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A DLQ record's value, read for display.

    ``size`` is the bytes in the DLQ record; when ``truncated``, ``original_size`` is the
    size of the whole original (``streamproc.original.size``), which is still at its origin.
    """

    encoding: Encoding
    size: int
    truncated: bool
    original_size: int | None
    parsed: Any = None
    raw: bytes = b""


def _last(headers: Headers, name: str) -> bytes | None:
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def read_payload(value: bytes | None, headers: Headers) -> Payload:
    """Parse ``value`` as JSON when it is, and read the truncation headers."""
    truncated = (_last(headers, VALUE_TRUNCATED) or b"").lower() == b"true"
    size_text = _last(headers, ORIGINAL_SIZE)
    original_size = int(size_text) if size_text is not None and size_text.isdigit() else None
    if value is None:
        return Payload("none", 0, truncated, original_size)
    encoding: Encoding = "binary"
    parsed: Any = None
    try:
        parsed = orjson.loads(value)
        encoding = "json"
    except orjson.JSONDecodeError:
        try:
            value.decode("utf-8")
            encoding = "text"
        except UnicodeDecodeError:
            pass
    return Payload(encoding, len(value), truncated, original_size, parsed, value)


def _ms_iso(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    try:
        return utc_iso(datetime.fromtimestamp(ms / 1000, UTC), "milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment, "milliseconds")


def _one_line(raw: bytes) -> str:
    """:func:`escape_text` with line breaks and tabs escaped too: one cell of one row."""
    return escape_text(raw).replace("\n", "\\n").replace("\t", "\\t")


def _key(key: bytes | None) -> str | None:
    return None if key is None else _one_line(key)


def _retriable(view: DlqView) -> str:
    return "unknown" if view.retriable is None else str(view.retriable).lower()


def summary_json(record: DlqRecord, view: DlqView | None = None) -> dict[str, Any]:
    """The one-line facts of a record, as a list shows them."""
    view = view or view_dlq_record(record.headers, record.timestamp)
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": _ms_iso(record.timestamp),
        "key": _key(record.key),
        "source": view.source.value,
        "error_class": view.error_class,
        "exception_class": view.exception_class,
        "message": view.message,
        "retriable": view.retriable,
        "attempt": view.attempt,
        "failed_at": _iso(view.failed_at),
    }


def _payload_json(payload: Payload) -> dict[str, Any]:
    out: dict[str, Any] = {
        "encoding": payload.encoding,
        "bytes": payload.size,
        "truncated": payload.truncated,
        "original_bytes": payload.original_size,
    }
    if payload.encoding == "json":
        out["value"] = payload.parsed
    elif payload.encoding == "text":
        out["value"] = payload.raw.decode("utf-8")
    elif payload.encoding == "binary":
        out["value"] = base64.b64encode(payload.raw).decode("ascii")
    else:
        out["value"] = None
    return out


def detail_json(record: DlqRecord, topic: str, max_attempts: int) -> dict[str, Any]:
    """Everything about one record: where it is, the failure, where it came from, what a
    replay with ``max_attempts`` would do, every header decoded, and the payload."""
    view = view_dlq_record(record.headers, record.timestamp)
    decision = decide(view, max_attempts)
    origin = view.origin
    return {
        "topic": topic,
        **summary_json(record, view),
        "first_failed_at": _iso(view.first_failed_at),
        "origin": None
        if origin is None
        else {
            "topic": origin.topic,
            "partition": origin.partition,
            "offset": origin.offset,
            "timestamp": _ms_iso(origin.timestamp_ms),
        },
        "replay_would": {
            "action": decision.action.value,
            "reason": decision.reason,
            "max_attempts": max_attempts,
        },
        "headers": [{"name": k, "value": header_text(k, v)} for k, v in record.headers],
        "payload": _payload_json(read_payload(record.value, record.headers)),
    }


def _error_line(view: DlqView) -> str:
    parts = [view.error_class]
    if view.exception_class:
        parts.append(view.exception_class)
    return _one_line(": ".join([*parts, view.message or "(no message)"]).encode())


def _payload_title(payload: Payload, origin: str | None) -> str:
    kind = {"json": "JSON", "text": "text", "binary": "binary, escaped", "none": "none"}
    title = f"payload ({kind[payload.encoding]}, {payload.size} bytes)"
    if payload.truncated:
        whole = f"{payload.original_size} bytes" if payload.original_size else "the original"
        where = f" at {origin}" if origin else " at its origin"
        title += f": TRUNCATED to fit the DLQ; the whole {whole} is{where}"
    return title


def _payload_body(payload: Payload) -> str:
    if payload.encoding == "json":
        return orjson.dumps(payload.parsed, option=orjson.OPT_INDENT_2).decode()
    if payload.encoding == "none":
        return "(no value: a tombstone)"
    return escape_text(payload.raw)


def _indented(text: str, width: int) -> str:
    """Continuation lines of a multi-line value lined up under its first line."""
    return text.replace("\n", "\n" + " " * width)


def render_detail(record: DlqRecord, topic: str, max_attempts: int) -> str:
    """One record as text: the failure first, then every header, then the payload."""
    view = view_dlq_record(record.headers, record.timestamp)
    decision = decide(view, max_attempts)
    origin = view.origin
    origin_text = (
        None
        if origin is None
        else f"{origin.topic} {origin.partition}:{origin.offset}"
        + (f" at {_ms_iso(origin.timestamp_ms)}" if _ms_iso(origin.timestamp_ms) else "")
    )
    failed = _iso(view.failed_at) or "unknown"
    if view.first_failed_at is not None and view.first_failed_at != view.failed_at:
        failed += f" (first {_iso(view.first_failed_at)})"
    would = decision.action.value + (f": {decision.reason}" if decision.reason else "")
    facts = [
        ("record", f"{topic} {record.partition}:{record.offset} at {_ms_iso(record.timestamp)}"),
        ("key", _key(record.key) or "(none)"),
        ("written by", view.source.value),
        ("error", _error_line(view)),
        ("retriable", _retriable(view)),
        ("attempt", str(view.attempt)),
        ("failed at", failed),
        ("origin", origin_text or "unknown"),
        (f"replay would (max {max_attempts})", would),
    ]
    width = max(len(name) for name, _ in facts) + 2
    lines = [f"{name:<{width}}{value}" for name, value in facts]
    headers = list(record.headers)
    lines.append(f"headers ({len(headers)})")
    if headers:
        name_width = max(len(k) for k, _ in headers) + 4
        for k, v in headers:
            value = _indented(header_text(k, v), name_width)
            lines.append(f"  {_one_line(k.encode()):<{name_width - 2}}{value}")
    payload = read_payload(record.value, record.headers)
    lines.append(_payload_title(payload, origin_text))
    lines.append(_payload_body(payload))
    return "\n".join(lines)


def render_rows(rows: list[dict[str, Any]]) -> str:
    """Records as aligned lines (from :func:`summary_json`): position, failure time, class,
    attempt, retriable, key and message."""
    table = [("P:OFFSET", "FAILED AT", "ERROR CLASS", "ATTEMPT", "RETRIABLE", "KEY", "MESSAGE")]
    for row in rows:
        message = row["message"] or "(no message)"
        if row["exception_class"]:
            message = f"{row['exception_class']}: {message}"
        message = _one_line(message.encode())
        retriable = row["retriable"]
        table.append(
            (
                f"{row['partition']}:{row['offset']}",
                row["failed_at"] or "-",
                row["error_class"],
                str(row["attempt"]),
                "unknown" if retriable is None else str(retriable).lower(),
                row["key"] if row["key"] is not None else "-",
                message,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in table
    )
