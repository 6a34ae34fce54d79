"""``streamproc dlq show``: DLQ records a page at a time, or one record whole.

The list takes the replay filters (:func:`~streamproc.replay.command.add_filter_arguments`,
the same flags and rules as ``replay``), so what it lists is what a replay with those
filters would move. Like ``dlq stats`` it reads what is **pending** for the replayer (from
the committed offsets of ``<group>-replayer`` to the end offsets seen at start; ``--all``
for the whole retained topic), in partition order then offset order, and pages through
the matches with ``--skip``/``--limit``. ``--partition P --offset O`` prints one record:
the failure, its origin, what a replay would do, every header decoded and the payload
(:mod:`streamproc.replay.detail`).

Read-only: the consumer is assigned its partitions (it never joins a group) and commits
nothing; the replayer's group is only asked for its committed offsets.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streamproc.errors import ConfigError, KafkaSetupError
from streamproc.kafka.client import assign_from_committed, partitions_of, start_client
from streamproc.kafka.client import consumer as make_consumer
from streamproc.replay.command import add_filter_arguments, filters_from_args, whole_number
from streamproc.replay.config import ReplayConfig
from streamproc.replay.detail import detail_json, render_detail, render_rows, summary_json
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.interop import view_dlq_record
from streamproc.replay.replayer import replayer_group

__all__ = [
    "DEFAULT_LIMIT",
    "DlqPage",
    "ShowOptions",
    "add_show_arguments",
    "dlq_show",
    "list_dlq",
    "read_dlq_record",
    "show_options_from_args",
]

#: Records per page: a terminal's worth.
DEFAULT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class ShowOptions:
    """What ``dlq show`` prints: a page of the matching records, or the record ``at``
    ``(partition, offset)``. ``max_attempts`` is for the "replay would" line."""

    filters: ReplayFilter = field(default_factory=ReplayFilter)
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    include_all: bool = False
    max_attempts: int = 3
    at: tuple[int, int] | None = None


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dlq show`` flags (the settings flags are added by the CLI)."""
    add_filter_arguments(parser)
    page = parser.add_argument_group("paging")
    page.add_argument(
        "--limit",
        metavar="N",
        help=f"list at most N matching records (default {DEFAULT_LIMIT})",
    )
    page.add_argument(
        "--skip",
        metavar="N",
        help="leave out the first N matching records: the next page is --skip <skip+limit> "
        "(records are in partition order, then offset order)",
    )
    page.add_argument(
        "--all",
        action="store_true",
        help="list the whole retained topic, not only what is pending for the replayer",
    )
    one = parser.add_argument_group("one record")
    one.add_argument("--partition", metavar="P", help="with --offset: print this record whole")
    one.add_argument("--offset", metavar="O", help="with --partition: the record's offset")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--max-attempts",
        default="3",
        metavar="N",
        help="for the 'replay would' line, as `replay --max-attempts` (default 3)",
    )
    out.add_argument("--json", action="store_true", help="print JSON for programs")


def show_options_from_args(args: argparse.Namespace, now: datetime | None = None) -> ShowOptions:
    """Validate the flags (``ConfigError``, one line, on the first bad one)."""
    filters = filters_from_args(args, now)
    max_attempts = whole_number(args.max_attempts, "--max-attempts", 1)
    assert max_attempts is not None
    partition = whole_number(args.partition, "--partition", 0)
    offset = whole_number(args.offset, "--offset", 0)
    if (partition is None) != (offset is None):
        raise ConfigError("--partition and --offset go together: they name one record")
    if partition is not None and offset is not None:
        listing = [
            flag
            for flag, given in (
                ("the filters", filters.active),
                ("--limit", args.limit is not None),
                ("--skip", args.skip is not None),
                ("--all", args.all),
            )
            if given
        ]
        if listing:
            raise ConfigError(
                f"--partition/--offset print one record; {', '.join(listing)} "
                "are for the list: give one or the other"
            )
        return ShowOptions(max_attempts=max_attempts, at=(partition, offset))
    return ShowOptions(
        filters=filters,
        skip=whole_number(args.skip, "--skip", 0) or 0,
        limit=whole_number(args.limit, "--limit", 1) or DEFAULT_LIMIT,
        include_all=args.all,
        max_attempts=max_attempts,
    )


@dataclass
class DlqPage:
    """One page of matching records (``rows``: :func:`summary_json` dicts) and how many
    matched in all."""

    topic: str
    scope: str
    filters: str
    skip: int
    limit: int
    matching: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def next_skip(self) -> int | None:
        """``--skip`` of the next page; ``None`` on the last one."""
        following = self.skip + self.limit
        return following if following < self.matching else None

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "scope": self.scope,
            "filters": self.filters,
            "matching": self.matching,
            "skip": self.skip,
            "limit": self.limit,
            "next_skip": self.next_skip,
            "records": self.rows,
        }

    def render_text(self) -> str:
        scope = "pending for the replayer" if self.scope == "pending" else "retained"
        noun = "record matches" if self.matching == 1 else "records match"
        filters = "no filters" if self.filters.startswith("none") else f"filters: {self.filters}"
        head = f"{self.topic}, {scope}: {self.matching} {noun} ({filters})"
        if not self.rows:
            return head if self.matching == 0 else f"{head}; none after --skip {self.skip}"
        last = self.skip + len(self.rows)
        lines = [f"{head}; showing {self.skip + 1} to {last}", render_rows(self.rows)]
        if self.next_skip is not None:
            lines.append(f"next page: the same flags with --skip {self.next_skip}")
        lines.append("one record whole: streamproc dlq show --partition P --offset O")
        return "\n".join(lines)


async def list_dlq(config: ReplayConfig, options: ShowOptions) -> DlqPage:
    """Read the DLQ's pending part (or all of it) to its end offsets seen at start, count
    the records that match, and keep the page ``options.skip`` to ``skip + limit``."""
    page = DlqPage(
        topic=config.topic_dlq,
        scope="all" if options.include_all else "pending",
        filters=options.filters.describe(),
        skip=options.skip,
        limit=options.limit,
    )
    # A group id only to read the replayer's committed offsets: assigned, never joined.
    group = None if options.include_all else replayer_group(config)
    kafka = config.kafka
    consumer = make_consumer(kafka, group_id=group, fetch_max_wait_ms=100)
    await start_client(kafka, consumer)
    try:
        ranges = await assign_from_committed(
            consumer, config.topic_dlq, from_start=options.include_all
        )
        for tp in sorted(ranges, key=lambda tp: tp.partition):
            _, end = ranges[tp]
            async for record in _records(consumer, tp, end):
                view = view_dlq_record(record.headers, record.timestamp)
                if not options.filters.matches(view, record.key):
                    continue
                page.matching += 1
                if options.skip < page.matching <= options.skip + options.limit:
                    page.rows.append(summary_json(record, view))
    finally:
        await consumer.stop()
    return page


async def _records(
    consumer: AIOKafkaConsumer, tp: TopicPartition, end: int
) -> AsyncIterator[ConsumerRecord[Any, Any]]:
    """The records of one assigned partition from its position up to ``end`` (exclusive)."""
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=200)
        for record in batch.get(tp, []):
            if record.offset >= end:
                return
            yield record


async def read_dlq_record(
    config: ReplayConfig, partition: int, offset: int
) -> ConsumerRecord[Any, Any]:
    """The DLQ record at ``partition``:``offset``; ``ConfigError`` naming the range held
    when there is none."""
    topic = config.topic_dlq
    kafka = config.kafka
    consumer = make_consumer(kafka, group_id=None, fetch_max_wait_ms=100)
    await start_client(kafka, consumer)
    try:
        partitions = await partitions_of(consumer, topic)
        if partition not in partitions:
            held = f"partitions 0 to {max(partitions)}" if partitions else "no partitions"
            raise ConfigError(f"--partition {partition}: {topic} has {held}")
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not begin <= offset < end:
            held = f"offsets {begin} to {end - 1}" if end > begin else f"nothing (next {end})"
            raise ConfigError(f"--offset {offset}: {topic} partition {partition} holds {held}")
        consumer.seek(tp, offset)
        try:
            async with asyncio.timeout(config.kafka.connect_timeout_s):
                async for record in _records(consumer, tp, end):
                    if record.offset == offset:
                        return record
                    if record.offset > offset:
                        break
        except TimeoutError:
            raise KafkaSetupError(
                f"Kafka sent nothing from {topic} {partition}:{offset} within "
                f"{config.kafka.connect_timeout_s:g} s (STREAMPROC_KAFKA_CONNECT_TIMEOUT_S)"
            ) from None
        # read_committed skips transaction markers and aborted writes: they hold offsets.
        raise ConfigError(
            f"no record at {topic} {partition}:{offset}: that offset holds a transaction "
            "marker or an aborted write; list the records with `streamproc dlq show`"
        )
    finally:
        await consumer.stop()


def _write(out: TextIO, value: Any) -> None:
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


async def dlq_show(
    config: ReplayConfig, options: ShowOptions, *, as_json: bool, file: TextIO | None = None
) -> int:
    """The ``dlq show`` command: exit code 0."""
    out = file or sys.stdout
    if options.at is not None:
        record = await read_dlq_record(config, *options.at)
        if as_json:
            _write(out, detail_json(record, config.topic_dlq, options.max_attempts))
        else:
            out.write(render_detail(record, config.topic_dlq, options.max_attempts) + "\n")
        return 0
    page = await list_dlq(config, options)
    if as_json:
        _write(out, page.to_json())
    else:
        out.write(page.render_text() + "\n")
    return 0
