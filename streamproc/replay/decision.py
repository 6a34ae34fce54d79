"""Replay or park: the decision for one DLQ record, and the headers of what is written.

Pure. The rule, in order:

0. ``streamproc.value.truncated: true``: **park** — the DLQ holds only the first bytes of
   the value (it was cut to fit), so replaying them would make an ``invalid_payload`` of
   a lead that may be fine; the whole value is at its origin coordinates.
1. ``streamproc.error.retriable: false`` (``invalid_payload``, ``provider_rejected``,
   ``no_match``):
   **park** — the same bytes would fail the same way again.
2. ``attempt >= max_attempts``: **park** — it has been processed ``max_attempts`` times.
3. otherwise **replay** into ``leads.raw``.

A record whose retriability is unknown (Spring Kafka, Kafka Connect, hand-written) is
replayed: rule 2 still bounds it. Because the processor counts ``attempt + 1`` for a
replayed record and dead-letters it with that count, a lead that fails every time is
processed exactly ``max_attempts`` times and then parked: never a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from streamproc.records.consumed import ConsumedRecord
from streamproc.records.dlq import ATTEMPT, ORIGINAL_TOPIC, Headers, replay_headers
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.interop import (
    FOREIGN_FAILURE_HEADERS,
    DlqView,
    origin_headers,
    view_dlq_record,
)

__all__ = [
    "PARKED_REASON",
    "Action",
    "Decision",
    "DlqRecord",
    "Outcome",
    "Planned",
    "Targets",
    "decide",
    "park_record_headers",
    "plan",
    "replay_record_headers",
]

PARKED_REASON = "streamproc.parked.reason"

#: What happens to one record read from the DLQ. ``skip``: it does not match the filters
#: and is put back at the end of the DLQ, unchanged.
Outcome = Literal["replay", "park", "skip"]


#: A record read from the DLQ, as a plan reads it.
DlqRecord = ConsumedRecord


class Action(StrEnum):
    REPLAY = "replay"
    PARK = "park"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: Why a record is parked (the ``streamproc.parked.reason`` header); ``None`` to replay.
    reason: str | None = None


def decide(view: DlqView, max_attempts: int) -> Decision:
    """Replay the record, or park it (truncated, out of attempts, or not retriable)."""
    if view.truncated:
        whole = "" if view.original_size is None else f" of {view.original_size}"
        origin = (
            ""
            if view.origin is None
            else f"; the whole value is at {view.origin.topic} partition "
            f"{view.origin.partition} offset {view.origin.offset}"
        )
        return Decision(
            Action.PARK,
            f"truncated (the DLQ holds only the first bytes{whole}, last {view.error_class})"
            f"{origin}",
        )
    if view.retriable is False:
        return Decision(Action.PARK, f"not retriable ({view.error_class})")
    if view.attempt >= max_attempts:
        return Decision(
            Action.PARK,
            f"out of attempts ({view.attempt} of max {max_attempts}, last {view.error_class})",
        )
    return Decision(Action.REPLAY)


def replay_record_headers(dlq_headers: Headers, view: DlqView) -> list[tuple[str, bytes]]:
    """Headers for the record re-injected into ``leads.raw``.

    The original headers and ``streamproc.attempt`` travel with the record (the processor
    computes ``attempt + 1``); our per-failure headers and foreign failure headers are
    dropped. A foreign record gets ``streamproc.attempt`` and ``streamproc.original.*``
    from its Spring/Connect headers, so its count and first origin survive from now on.
    """
    out = [(k, v) for k, v in replay_headers(dlq_headers) if k not in FOREIGN_FAILURE_HEADERS]
    names = {k for k, _ in out}
    if ATTEMPT not in names:
        out.append((ATTEMPT, str(view.attempt).encode()))
    if ORIGINAL_TOPIC not in names and view.origin is not None:
        out += origin_headers(view.origin)
    return out


def park_record_headers(dlq_headers: Headers, reason: str) -> list[tuple[str, bytes]]:
    """Headers for ``leads.parked``: the DLQ record's headers unchanged, plus the reason."""
    return [
        *((k, v) for k, v in dlq_headers if k != PARKED_REASON),
        (PARKED_REASON, reason.encode()),
    ]


@dataclass(frozen=True, slots=True)
class Targets:
    """The topics a replay writes to."""

    raw: str
    parked: str
    dlq: str


@dataclass(frozen=True, slots=True)
class Planned:
    """What to do with one DLQ record: the outcome, its class, and the record to produce."""

    outcome: Outcome
    error_class: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    #: Set for a record put back in the DLQ: same partition, same timestamp.
    partition: int | None = None
    timestamp_ms: int | None = None
    #: Parked because its value was cut to fit the DLQ (counted apart in the report).
    truncated: bool = False


def plan(record: DlqRecord, filters: ReplayFilter, max_attempts: int, targets: Targets) -> Planned:
    """Replay, park, or (not matching the filters) put back at the end of the DLQ unchanged."""
    view = view_dlq_record(record.headers, record.timestamp)
    if not filters.matches(view, record.key):
        return Planned(
            "skip",
            view.error_class,
            targets.dlq,
            record.key,
            record.value,
            list(record.headers),
            partition=record.partition,
            timestamp_ms=record.timestamp if record.timestamp >= 0 else None,
        )
    decision = decide(view, max_attempts)
    if decision.action is Action.REPLAY:
        headers = replay_record_headers(record.headers, view)
        return Planned("replay", view.error_class, targets.raw, record.key, record.value, headers)
    assert decision.reason is not None
    headers = park_record_headers(record.headers, decision.reason)
    return Planned(
        "park",
        view.error_class,
        targets.parked,
        record.key,
        record.value,
        headers,
        truncated=view.truncated,
    )
