"""What streamproc reads of a record it consumed: the handler's input, the replayer's DLQ
record. A Protocol, so aiokafka's ``ConsumerRecord`` and the tests' own records fit."""

from __future__ import annotations

from typing import Protocol

from streamproc.records.dlq import Headers

__all__ = ["ConsumedRecord"]


class ConsumedRecord(Protocol):
    """The parts of an aiokafka ``ConsumerRecord`` that streamproc reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers
