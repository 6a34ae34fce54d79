"""Reading a partition record by record past records the Kafka client cannot decode.

aiokafka decodes a fetched batch as a whole and raises on the first record it cannot read
(a header key that is not UTF-8, which Kafka allows and librdkafka or Java producers may
write), without saying where: every record of that batch, the valid ones before and after
the bad one included, is lost to it. Here one partition's batches are fetched raw and
decoded one record at a time, so that a record that cannot be decoded is reported by its
offset and the records around it are read as usual.

Only ``streamproc.kafka`` speaks to aiokafka's internals: the fetch request, the
pure-Python batch class (its decompression and its record reader) and the varint decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CorruptRecordException, KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.util import decode_varint

from streamproc.records.dlq import Headers

__all__ = ["Decoded", "TolerantRead", "Undecodable", "decode_record_set", "read_tolerantly"]

#: Kafka's isolation level READ_COMMITTED in a fetch request.
_READ_COMMITTED = 1
#: What a record that fails to decode raises in aiokafka's reader.
_DECODE_ERRORS = (UnicodeDecodeError, CorruptRecordException, ValueError, IndexError)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record read whole (a :class:`~streamproc.records.consumed.ConsumedRecord`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record whose bytes could not be decoded: its offset and why."""

    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class TolerantRead:
    """Records from the offset asked for, in order, and where to read next."""

    records: list[Decoded | Undecodable]
    next_offset: int


def decode_record_set(
    tp: TopicPartition,
    data: bytes,
    start_offset: int,
    aborted: list[tuple[int, int]] | None = None,
) -> TolerantRead:
    """Decode a fetch response's record set from ``start_offset`` on, one record at a time.

    ``aborted``: the response's aborted transactions (producer id, first offset); their
    batches are skipped, as are control batches, like a ``read_committed`` consumer does.
    A batch cut off at the end of the response is left for the next read. A batch whose
    CRC does not match is unreadable as a whole: each of its offsets is reported.
    """
    pending = sorted(aborted or [], key=lambda item: item[1])
    aborting: set[int] = set()
    records: list[Decoded | Undecodable] = []
    next_offset = start_offset
    pos = 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos + 8 : pos + 12], "big", signed=True)
        end = pos + 12 + length
        if length < 0 or end > len(data):
            break  # the rest of a batch over the response's size: read next time
        raw = data[pos:end]
        pos = end
        if raw[16] < 2:  # magic: v0/v1 message sets carry no headers to fail on
            raise CorruptRecordException(f"message format v{raw[16]} in {tp}")
        batch = _DefaultRecordBatchPy(raw)
        last = batch.base_offset + batch.last_offset_delta
        if last < next_offset:
            continue
        if batch.producer_id is not None and batch.producer_id >= 0:
            while pending and pending[0][1] <= batch.base_offset:
                aborting.add(pending.pop(0)[0])
            if batch.is_control_batch:
                if _is_abort_marker(batch):
                    aborting.discard(batch.producer_id)
                next_offset = last + 1
                continue
            if batch.is_transactional and batch.producer_id in aborting:
                next_offset = last + 1
                continue
        elif batch.is_control_batch:
            next_offset = last + 1
            continue
        if not batch.validate_crc():
            records += [
                Undecodable(offset, f"batch {batch.base_offset}..{last} fails its CRC")
                for offset in range(max(batch.base_offset, next_offset), last + 1)
            ]
            next_offset = last + 1
            continue
        for item in _records_of(tp, batch):
            if item.offset >= next_offset:
                records.append(item)
        next_offset = last + 1
    return TolerantRead(records, next_offset)


def _is_abort_marker(batch: _DefaultRecordBatchPy) -> bool:
    for record in batch:
        return bool(ControlRecord.parse(record.key) == ABORT_MARKER)
    return False


def _records_of(tp: TopicPartition, batch: _DefaultRecordBatchPy) -> list[Decoded | Undecodable]:
    """Each record of ``batch``: decoded, or its offset when it cannot be."""
    out: list[Decoded | Undecodable] = []
    try:
        batch._maybe_uncompress()
    except Exception as exc:  # a codec error: nothing of the batch can be read
        last = batch.base_offset + batch.last_offset_delta
        reason = f"batch cannot be decompressed ({exc.__class__.__name__})"
        return [Undecodable(offset, reason) for offset in range(batch.base_offset, last + 1)]
    buffer = batch._buffer
    for _ in range(batch._header_data[12]):  # the batch's record count
        start = batch._pos
        try:
            length, body = decode_varint(buffer, start)
        except _DECODE_ERRORS:
            break  # the framing itself is broken: nothing further can be located
        try:
            record = batch._read_msg()
        except _DECODE_ERRORS as exc:
            batch._pos = body + length
            reason = f"{exc.__class__.__name__}: {exc}"
            out.append(Undecodable(_offset_at(batch, buffer, body), reason))
            continue
        out.append(
            Decoded(
                tp.topic,
                tp.partition,
                record.offset,
                record.timestamp,
                record.key,
                record.value,
                tuple(record.headers),  # as aiokafka gives them: a null value kept
            )
        )
    return out


def _offset_at(batch: _DefaultRecordBatchPy, buffer: bytearray, body: int) -> int:
    """The offset of the record whose body starts at ``body``: it precedes key and value."""
    _, pos = decode_varint(buffer, body)  # attributes
    _, pos = decode_varint(buffer, pos)  # timestamp delta
    delta, _ = decode_varint(buffer, pos)
    return int(batch.base_offset + delta)


async def read_tolerantly(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, max_bytes: int
) -> TolerantRead:
    """Fetch ``tp`` from ``offset`` (up to ``max_bytes``, ``read_committed``) from its
    leader, and decode it with :func:`decode_record_set`. Raises ``KafkaError``."""
    client = consumer._client
    leader = client.cluster.leader_for_partition(tp)
    if leader is None or leader < 0:
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(tp)
        if leader is None or leader < 0:
            raise KafkaError(f"no leader known for {tp}")
    request = FetchRequest(
        0, 1, max_bytes, _READ_COMMITTED, [(tp.topic, [(tp.partition, offset, max_bytes)])]
    )
    response = await client.send(leader, request)
    for topic, partitions in response.topics:
        for partition, error_code, _highwater, *part_data in partitions:
            if (topic, partition) != (tp.topic, tp.partition):
                continue
            error = for_code(error_code)
            if error_code != 0:
                raise error(f"fetching {tp} at {offset}")
            # The layout of aiokafka's fetcher: v11+ [lso, log start, aborted, preferred
            # replica, records]; v4..v10 [lso, (log start,) aborted, records].
            version = response.API_VERSION
            aborted = part_data[2] if version >= 11 else part_data[-2] if version >= 4 else None
            return decode_record_set(tp, bytes(part_data[-1] or b""), offset, aborted)
    return TolerantRead([], offset)
