"""One DLQ record as `dlq show` prints it: headers decoded, payload pretty or escaped."""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers, fit_record
from streamproc.replay.detail import detail_json, read_payload, render_detail, render_rows
from streamproc.replay.detail import summary_json as summary
from streamproc.replay.interop import escape_text, header_text

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


@dataclass
class Record:
    partition: int = 1
    offset: int = 57
    timestamp: int = T0_MS
    key: bytes | None = b"lead-42"
    value: bytes | None = b'{"lead_id":"lead-42","domain":"acme.example"}'
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _ours(attempt: int = 2, retriable: bool = True) -> list[tuple[str, bytes]]:
    return encode_dlq_headers(
        [("traceparent", b"00-abc-01")],
        Failure(ErrorClass.PROVIDER_ERROR, "provider answered 503", retriable),
        Origin("leads.raw", 0, 1234, T0_MS - 60_000),
        attempt,
        T0,
    )


SPRING = [
    ("kafka_dlt-original-topic", b"orders"),
    ("kafka_dlt-original-partition", struct.pack(">i", 4)),
    ("kafka_dlt-original-offset", struct.pack(">q", 123_456_789_012)),
    ("kafka_dlt-original-timestamp", struct.pack(">q", 1_700_000_000_000)),
    ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
    ("kafka_dlt-exception-message", b"listener failed"),
    ("kafka_dlt-exception-stacktrace", b"at a.B(B.java:1)\nat c.D(D.java:2)"),
    ("retry_topic-attempts", b"\x03"),
]


def test_spring_binary_numbers_read_as_decimals() -> None:
    """Spring's 4- and 8-byte big-endian numbers and BigInteger attempts read as numbers."""
    assert header_text("kafka_dlt-original-partition", struct.pack(">i", 4)) == "4"
    assert header_text("kafka_dlt-original-offset", struct.pack(">q", 2**40)) == str(2**40)
    assert header_text("retry_topic-attempts", b"\x03") == "3"
    stamp = header_text("kafka_dlt-original-timestamp", struct.pack(">q", 1_700_000_000_000))
    assert stamp == "1700000000000 (2023-11-14T22:13:20.000Z)"


def test_our_epoch_ms_header_gets_its_utc_time() -> None:
    """streamproc.original.timestamp (decimal epoch ms) is shown with its UTC time."""
    text = header_text("streamproc.original.timestamp", str(T0_MS).encode())
    assert text == f"{T0_MS} (2026-11-26T03:00:00.000Z)"


def test_control_characters_and_bad_bytes_are_escaped() -> None:
    """An ANSI escape, a NUL and invalid UTF-8 are escaped; line breaks are kept."""
    assert escape_text(b"red\x1b[31m\x00\xff ok\nnext") == "red\\x1b[31m\\x00\\xff ok\nnext"
    assert header_text("x-any", None) == "(null)"


def test_detail_json_of_our_record() -> None:
    """--json has the failure, the origin, the replay decision, headers and parsed payload."""
    detail = detail_json(Record(headers=_ours()), "leads.dlq", max_attempts=3)
    assert (detail["partition"], detail["offset"], detail["key"]) == (1, 57, "lead-42")
    assert detail["error_class"] == "provider_error"
    assert detail["message"] == "provider answered 503"
    assert (detail["retriable"], detail["attempt"], detail["source"]) == (True, 2, "streamproc")
    assert detail["failed_at"] == "2026-11-26T03:00:00.000Z"
    assert detail["origin"] == {
        "topic": "leads.raw",
        "partition": 0,
        "offset": 1234,
        "timestamp": "2026-11-26T02:59:00.000Z",
    }
    assert detail["replay_would"] == {"action": "replay", "reason": None, "max_attempts": 3}
    assert {"name": "traceparent", "value": "00-abc-01"} in detail["headers"]
    assert detail["payload"]["encoding"] == "json"
    assert detail["payload"]["value"] == {"lead_id": "lead-42", "domain": "acme.example"}
    orjson.dumps(detail)  # every value is JSON-ready


def test_detail_json_of_a_spring_record() -> None:
    """A Spring record: unclassified, its exception, origin and attempts from its headers."""
    detail = detail_json(Record(headers=SPRING), "leads.dlq", max_attempts=3)
    assert detail["source"] == "spring"
    assert detail["error_class"] == "unclassified"
    assert detail["exception_class"] == "java.lang.IllegalStateException"
    assert detail["attempt"] == 3
    assert detail["origin"]["offset"] == 123_456_789_012
    assert detail["replay_would"]["action"] == "park"
    values = {h["name"]: h["value"] for h in detail["headers"]}
    assert values["kafka_dlt-original-partition"] == "4"


def test_text_shows_failure_origin_headers_and_pretty_json() -> None:
    """The text form names the error, origin and decision, lists headers, indents JSON."""
    text = render_detail(Record(headers=_ours()), "leads.dlq", max_attempts=3)
    facts = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines()[:9])
    assert facts["record"] == "leads.dlq 1:57 at 2026-11-26T03:00:00.000Z"
    assert facts["error"] == "provider_error: provider answered 503"
    assert facts["origin"] == "leads.raw 0:1234 at 2026-11-26T02:59:00.000Z"
    assert facts["replay would (max 3)"] == "replay"
    assert re.search(r"^  streamproc.error.retriable +true$", text, re.MULTILINE)
    assert 'payload (JSON, 45 bytes)\n{\n  "lead_id": "lead-42",' in text


def test_multi_line_header_values_stay_under_their_column() -> None:
    """A stack trace's second line is indented under its first, not at the margin."""
    text = render_detail(Record(headers=SPRING), "leads.dlq", max_attempts=3)
    first, second = (line for line in text.splitlines() if "(B.java:1)" in line or "D.java" in line)
    assert second.index("at c.D") == first.index("at a.B")


def test_not_json_is_escaped_text() -> None:
    """A payload that is not JSON is printed as escaped text, and as text in --json."""
    record = Record(value=b"{not json\x1b[2J", headers=_ours())
    text = render_detail(record, "leads.dlq", 3)
    assert text.endswith("payload (text, 13 bytes)\n{not json\\x1b[2J")
    assert detail_json(record, "leads.dlq", 3)["payload"]["value"] == "{not json\x1b[2J"


def test_binary_payload_is_base64_in_json() -> None:
    """Bytes that are not UTF-8 are escaped in text and base64 in --json."""
    record = Record(value=b"\xff\xfe\x00", headers=_ours())
    payload = detail_json(record, "leads.dlq", 3)["payload"]
    assert payload["encoding"] == "binary"
    assert base64.b64decode(payload["value"]) == b"\xff\xfe\x00"
    assert "\\xff\\xfe\\x00" in render_detail(record, "leads.dlq", 3)


def test_truncated_payload_says_so_and_where_the_whole_is() -> None:
    """A value cut to fit the DLQ is flagged, with the original's size and origin."""
    value = orjson.dumps({"lead_id": "big", "blob": "x" * 5000})
    _, cut, headers = fit_record(b"big", value, _ours(), max_bytes=2048)
    record = Record(key=b"big", value=cut, headers=headers)
    payload = read_payload(record.value, record.headers)
    assert payload.truncated
    assert payload.original_size == len(value)
    assert payload.encoding == "text"  # a cut JSON document no longer parses
    text = render_detail(record, "leads.dlq", 3)
    assert f"TRUNCATED to fit the DLQ; the whole {len(value)} bytes is at leads.raw 0:1234" in text
    assert detail_json(record, "leads.dlq", 3)["payload"]["truncated"] is True


def test_rows_line_up_and_escape_keys() -> None:
    """The list has one aligned line per record; a newline in a key cannot break a row."""
    rows = [
        summary(Record(offset=5, headers=_ours())),
        summary(Record(offset=123, key=b"evil\nkey", headers=SPRING)),
    ]
    lines = render_rows(rows).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("P:OFFSET")
    assert "evil\\nkey" in lines[2]
    assert "java.lang.IllegalStateException: listener failed" in lines[2]
    assert lines[1].index("provider_error") == lines[2].index("unclassified")
