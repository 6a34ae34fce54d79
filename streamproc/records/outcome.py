"""What processing one lead produced: the records to write in the lead's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from streamproc.errors import ErrorClass
from streamproc.records.lead import Source

__all__ = ["OutRecord", "Outcome", "OutcomeKind"]


class OutcomeKind(StrEnum):
    """What one lead's transaction carries; its value is the ``outcome`` metric label and
    the ``outcome`` field of the ``lead.committed`` log line."""

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
    #: Set on a DLQ outcome: its ``streamproc.error.class`` header.
    error_class: ErrorClass | None = None
    #: Set on an enriched outcome: its ``enrichment_meta.source``.
    source: Source | None = None
    credits: int = 0
