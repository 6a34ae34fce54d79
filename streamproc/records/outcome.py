"""What processing one lead produced: the records to write in the lead's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["OutRecord", "Outcome", "OutcomeKind"]


class OutcomeKind(StrEnum):
    ENRICHED = "enriched"
    DLQ = "dlq"
    #: Handed to an asynchronous provider (Clay): the transaction carries the pending-lead
    #: state record and the offset, no output; the output follows when the callback comes.
    SUBMITTED = "submitted"
    #: Not admitted by pacing now: the transaction carries the lead to its deferral topic
    #: (docs/budget.md) and the offset.
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce: an output lead, a DLQ record, or a state update."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None
    #: The record's timestamp (epoch ms); None lets the producer stamp it.
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    records: list[OutRecord]
    lead_id: str | None
    attempt: int
    error_class: str | None = None
    source: str | None = None
    credits: int = 0
