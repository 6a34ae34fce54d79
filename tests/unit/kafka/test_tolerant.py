"""Decoding a fetched record set one record at a time: a record aiokafka cannot decode
costs that record only, never the records of its batch around it."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from streamproc.kafka.tolerant import Decoded, Undecodable, decode_record_set

TP = TopicPartition("leads.raw", 1)


class _RawKey(str):
    """A header key the pure-Python builder writes as the given bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawKey:
        made = super().__new__(cls, raw.decode("utf-8", errors="replace"))
        made.raw = raw
        return made

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def _batch(base_offset: int, bad: set[int], count: int, *, gzip: bool = True) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(2, 1 if gzip else 0, 0, -1, -1, -1, batch_size=1_000_000)
    for delta in range(count):
        key = _RawKey(b"bad\xffkey") if base_offset + delta in bad else "ok"
        builder.append(delta, 1_000 + delta, b"k%d" % delta, b"v%d" % delta, [(key, b"h")])
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")  # the broker assigns the base offset
    return bytes(raw)


def _shape(items: list[Decoded | Undecodable]) -> list[tuple[int, str]]:
    return [(i.offset, "bad" if isinstance(i, Undecodable) else "ok") for i in items]


def test_the_bad_record_of_a_batch_costs_only_itself() -> None:
    """A batch of 12 whose second record has a header key that is not UTF-8: that record
    is reported by its offset, the other 11 are decoded whole."""
    read = decode_record_set(TP, _batch(40, {41}, 12), 40)
    assert _shape(read.records) == [(40, "ok"), (41, "bad")] + [(o, "ok") for o in range(42, 52)]
    assert read.next_offset == 52
    first = read.records[0]
    assert isinstance(first, Decoded)
    assert (first.key, first.value, list(first.headers)) == (b"k0", b"v0", [("ok", b"h")])
    assert (first.topic, first.partition, first.timestamp) == ("leads.raw", 1, 1_000)
    bad = read.records[1]
    assert isinstance(bad, Undecodable) and "UnicodeDecodeError" in bad.reason


def test_records_before_the_offset_asked_are_left_out() -> None:
    """Read from the middle of a batch (past its bad record): only what follows."""
    data = _batch(0, {1}, 5, gzip=False) + _batch(5, set(), 3)
    read = decode_record_set(TP, data, 2)
    assert _shape(read.records) == [(o, "ok") for o in range(2, 8)]
    assert read.next_offset == 8


def test_a_batch_cut_off_at_the_end_of_the_response_is_left_for_the_next_read() -> None:
    """The response's size limit cut the last batch: it is not read, and the next read
    starts at it."""
    data = _batch(0, set(), 3) + _batch(3, set(), 3)[:-5]
    read = decode_record_set(TP, data, 0)
    assert _shape(read.records) == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert read.next_offset == 3


def test_a_batch_failing_its_crc_is_unreadable_offset_by_offset() -> None:
    """A corrupted batch: each of its offsets is reported, the next batch is read."""
    corrupt = bytearray(_batch(0, set(), 2, gzip=False))
    corrupt[-1] ^= 0xFF
    read = decode_record_set(TP, bytes(corrupt) + _batch(2, set(), 1), 0)
    assert _shape(read.records) == [(0, "bad"), (1, "bad"), (2, "ok")]
