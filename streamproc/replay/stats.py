"""``streamproc dlq stats``: what is waiting in the DLQ, by class, retriability and attempt.

By default it counts the records **pending** for the replayer: from the committed offsets
of the group ``<group>-replayer`` (the beginning where it has none) to the end offsets seen
at start. Records before that line have been replayed, parked or put back by a filtered
run (see :mod:`streamproc.replay.replayer`), so counting them again would mislead;
``--all`` counts the whole retained topic instead. Reads ``read_committed`` and commits
nothing.

Foreign records (Spring Kafka, Kafka Connect) are counted as ``unclassified`` with their
exception class in the messages; see :mod:`streamproc.replay.interop`.

:class:`DlqStats` is the pure aggregate; :func:`collect_dlq_stats` is the Kafka reader.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer

from streamproc.kafka.client import assign_from_committed, start_client
from streamproc.kafka.client import consumer as make_consumer
from streamproc.replay.config import ReplayConfig
from streamproc.replay.decision import decide
from streamproc.replay.interop import DlqView, view_dlq_record
from streamproc.replay.replayer import replayer_group
from streamproc.timestamps import utc_iso

__all__ = ["DlqStats", "collect_dlq_stats", "dlq_stats", "print_stats"]

#: How many distinct error messages ``top_messages`` lists.
TOP_MESSAGES = 10


@dataclass
class DlqStats:
    """Counts over DLQ records; :meth:`add` one :class:`DlqView` at a time."""

    max_attempts: int = 3
    total: int = 0
    by_error_class: Counter[str] = field(default_factory=Counter)
    by_retriable: Counter[str] = field(default_factory=Counter)
    by_attempt: Counter[int] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    #: What ``streamproc replay --max-attempts <max_attempts>`` would do with them.
    by_decision: Counter[str] = field(default_factory=Counter)
    messages: Counter[tuple[str, str]] = field(default_factory=Counter)
    oldest_failure: datetime | None = None
    newest_failure: datetime | None = None
    #: ``partition -> (first offset read, end offset)``: the range that was counted.
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    scope: str = "pending"

    def add(self, view: DlqView) -> None:
        self.total += 1
        self.by_error_class[view.error_class] += 1
        retriable = "unknown" if view.retriable is None else str(view.retriable).lower()
        self.by_retriable[retriable] += 1
        self.by_attempt[view.attempt] += 1
        self.by_source[view.source.value] += 1
        self.by_decision[decide(view, self.max_attempts).action.value] += 1
        message = view.message or "(no message)"
        if view.exception_class:
            message = f"{view.exception_class}: {message}"
        self.messages[(view.error_class, message)] += 1
        at = view.failed_at
        if at is not None:
            if self.oldest_failure is None or at < self.oldest_failure:
                self.oldest_failure = at
            if self.newest_failure is None or at > self.newest_failure:
                self.newest_failure = at

    def top_messages(self, n: int = TOP_MESSAGES) -> list[dict[str, Any]]:
        ranked = sorted(self.messages.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [{"error_class": c, "message": m, "count": k} for (c, m), k in ranked]

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "total": self.total,
            "by_error_class": dict(sorted(self.by_error_class.items())),
            "by_retriable": dict(sorted(self.by_retriable.items())),
            "by_attempt": {str(k): v for k, v in sorted(self.by_attempt.items())},
            "by_source": dict(sorted(self.by_source.items())),
            "replay_would": {"max_attempts": self.max_attempts, **dict(self.by_decision)},
            "oldest_failure": _iso(self.oldest_failure),
            "newest_failure": _iso(self.newest_failure),
            "top_messages": self.top_messages(),
            "partitions": {
                str(p): {"from": a, "to": b} for p, (a, b) in sorted(self.ranges.items())
            },
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment, "milliseconds")


async def collect_dlq_stats(
    config: ReplayConfig, *, include_all: bool = False, max_attempts: int = 3
) -> DlqStats:
    """Read the DLQ (pending part, or all with ``include_all``) up to its end offsets."""
    stats = DlqStats(max_attempts=max_attempts, scope="all" if include_all else "pending")
    kafka = config.kafka
    consumer = make_consumer(kafka, group_id=replayer_group(config), fetch_max_wait_ms=100)
    await start_client(kafka, consumer)
    try:
        await _read(consumer, config.topic_dlq, stats, include_all)
    finally:
        await consumer.stop()
    return stats


async def _read(consumer: AIOKafkaConsumer, topic: str, stats: DlqStats, all_: bool) -> None:
    ranges = await assign_from_committed(consumer, topic, from_start=all_)
    tps = list(ranges)
    ends = {tp: end for tp, (_, end) in ranges.items()}
    for tp, span in ranges.items():
        stats.ranges[tp.partition] = span
    while True:
        behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
        if not behind:
            return
        batch = await consumer.getmany(*behind, timeout_ms=200)
        for tp, records in batch.items():
            for m in records:
                if m.offset < ends[tp]:
                    stats.add(view_dlq_record(m.headers, m.timestamp))


def render_stats_table(stats: DlqStats, topic: str, file: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, highlight=False)
    scope = "pending for the replayer" if stats.scope == "pending" else "all retained"
    console.print(f"[bold]{topic}[/]: {stats.total} records ({scope})")
    if stats.total == 0:
        return
    console.print(
        f"failures from {_iso(stats.oldest_failure) or '-'} to {_iso(stats.newest_failure) or '-'}"
    )
    classes = Table(title="by error class")
    classes.add_column("error class")
    classes.add_column("records", justify="right")
    for name, n in sorted(stats.by_error_class.items(), key=lambda kv: (-kv[1], kv[0])):
        classes.add_row(name, str(n))
    console.print(classes)

    small = Table(title="by retriable / attempt / source")
    small.add_column("dimension")
    small.add_column("value")
    small.add_column("records", justify="right")
    for value, n in sorted(stats.by_retriable.items()):
        small.add_row("retriable", value, str(n))
    for attempt, n in sorted(stats.by_attempt.items()):
        small.add_row("attempt", str(attempt), str(n))
    for source, n in sorted(stats.by_source.items()):
        small.add_row("written by", source, str(n))
    for action, n in sorted(stats.by_decision.items()):
        small.add_row(f"replay would (max {stats.max_attempts})", action, str(n))
    console.print(small)

    messages = Table(title=f"top {TOP_MESSAGES} error messages")
    messages.add_column("records", justify="right")
    messages.add_column("error class")
    messages.add_column("message", overflow="fold")
    for row in stats.top_messages():
        messages.add_row(str(row["count"]), row["error_class"], row["message"])
    console.print(messages)


def print_stats(stats: DlqStats, topic: str, *, as_json: bool, file: TextIO | None = None) -> None:
    out = file or sys.stdout
    if as_json:
        out.write(orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render_stats_table(stats, topic, out)


async def dlq_stats(
    config: ReplayConfig, *, as_json: bool, include_all: bool = False, max_attempts: int = 3
) -> int:
    """The ``dlq stats`` command: exit code 0."""
    stats = await collect_dlq_stats(config, include_all=include_all, max_attempts=max_attempts)
    print_stats(stats, config.topic_dlq, as_json=as_json)
    return 0
