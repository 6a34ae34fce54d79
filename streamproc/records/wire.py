"""The schema registry's wire format: magic byte 0, the schema id (4 bytes, big-endian),
then the payload (Avro binary, or JSON for JSON Schema).

It is how Confluent's serializers, Kafka Connect's converters and Apicurio's
Confluent-compatible serializers write a record (docs/schema-registry.md). Pure.
"""

from __future__ import annotations

import struct

from streamproc.errors import UndecodablePayload

__all__ = ["HEADER_BYTES", "MAGIC", "frame", "split"]

MAGIC = 0
#: The magic byte and the schema id.
HEADER_BYTES = 5
_HEADER = struct.Struct(">bI")


def split(value: bytes | None) -> tuple[int, memoryview]:
    """The schema id and the payload of a framed record; :class:`UndecodablePayload` when
    it is not framed (plain JSON starts with ``{``, never with a zero byte)."""
    if value is None:
        raise UndecodablePayload("empty record (null value)")
    if len(value) < HEADER_BYTES:
        raise UndecodablePayload(
            f"{len(value)} bytes: too short for the registry wire format (magic byte, schema id)"
        )
    magic, schema_id = _HEADER.unpack_from(value)
    if magic != MAGIC:
        raise UndecodablePayload(
            f"first byte is {value[0]:#04x}, not the registry wire format's magic byte 0x00"
            " (plain JSON? then input_format is json)"
        )
    return schema_id, memoryview(value)[HEADER_BYTES:]


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` in the wire format, naming ``schema_id``."""
    return _HEADER.pack(MAGIC, schema_id) + payload
