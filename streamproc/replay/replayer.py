"""``streamproc replay``: move DLQ records back to ``leads.raw`` or on to ``leads.parked``.

Every record the replayer reads leaves its place in the DLQ exactly once, in the Kafka
transaction that moves the group's offset past it: to ``leads.raw`` (retriable, attempts
left), to ``leads.parked``, or back to the end of the DLQ when it does not match the
run's filters. Why that rule, what an operator can rely on, safety and ``--dry-run``:
docs/replay.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
)

from streamproc.errors import ReplayFenced, ReplayRefused, StreamprocError
from streamproc.kafka.client import (
    assign_from_committed,
    send_all,
    start_client,
    stop_quietly,
    transaction,
    transactional_producer,
)
from streamproc.kafka.client import consumer as make_consumer
from streamproc.logs import get_logger
from streamproc.records.outcome import OutRecord
from streamproc.replay.config import ReplayConfig
from streamproc.replay.decision import DlqRecord, Planned, Targets, plan
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.progress import NullProgress, ProgressSink
from streamproc.replay.rate import pace
from streamproc.replay.report import ReplayReport
from streamproc.replay.safety import budget_warning, refusal_reason
from streamproc.resilience.token_bucket import TokenBucket
from streamproc.state.view import StateView

__all__ = [
    "ReplayFenced",
    "ReplayOptions",
    "Replayer",
    "replayer_group",
    "replayer_transactional_id",
]

log = get_logger(__name__)

#: A transaction holds at most this many records: big enough to amortise the commit, small
#: enough that Ctrl-C and a crash lose little work.
MAX_BATCH = 200
#: With ``--rate``, a transaction covers about this much time, far below the transaction
#: timeout, so a paced run commits (and shows progress) steadily.
_RATED_BATCH_S = 1.0
#: How often a paused ``--follow`` run looks at the state again.
_PAUSE_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """One run's options; see ``streamproc replay --help``."""

    filters: ReplayFilter = field(default_factory=ReplayFilter)
    limit: int | None = None
    max_attempts: int = 3
    rate_per_s: float | None = None
    follow: bool = False
    dry_run: bool = False
    force: bool = False

    @property
    def batch_size(self) -> int:
        if self.rate_per_s is None:
            return MAX_BATCH
        return max(1, min(MAX_BATCH, int(self.rate_per_s * _RATED_BATCH_S)))


def replayer_group(config: ReplayConfig) -> str:
    """The replayer's consumer group: ``<group>-replayer`` (docs/flow.md)."""
    return f"{config.group_id}-replayer"


def replayer_transactional_id(config: ReplayConfig) -> str:
    # One id for the whole replayer (not per partition as the processor's lanes): a second
    # replayer fences the first, so two runs can never move the same record.
    return f"{replayer_group(config)}.{config.topic_dlq}"


class Replayer:
    """One replay run over every partition of the DLQ (see the module docstring)."""

    def __init__(
        self,
        config: ReplayConfig,
        options: ReplayOptions,
        *,
        progress: ProgressSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._kafka = config.kafka
        self._options = options
        self._progress: ProgressSink = progress or NullProgress()
        self._clock = clock
        self._stop = asyncio.Event()
        self._targets = Targets(config.topic_raw, config.topic_parked, config.topic_dlq)
        self._bucket = TokenBucket(options.rate_per_s, burst=1) if options.rate_per_s else None
        self._matched = 0
        self._state: StateView | None = None
        #: End offsets seen at start (``None`` with ``--follow``: no end).
        self._ends: dict[TopicPartition, int] | None = None
        self.report = ReplayReport(
            dry_run=options.dry_run,
            filters=options.filters.describe(),
            max_attempts=options.max_attempts,
        )

    def request_stop(self) -> None:
        """Stop after the current transaction (Ctrl-C, SIGTERM)."""
        self._stop.set()

    async def run(self) -> ReplayReport:
        started = self._clock()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if not self._options.force:
                    self._state = await stack.enter_async_context(self._config.open_state())
                    reason = self._unsafe()
                    if reason is not None:
                        if not self._options.dry_run:
                            raise ReplayRefused(
                                f"refusing to replay: {reason}. Fix the cause and run again, "
                                "or pass --force to replay anyway"
                            )
                        self.report.refusal = reason
                consumer = await self._start_consumer()
                stack.push_async_callback(stop_quietly, consumer)
                producer = None
                if not self._options.dry_run:
                    producer = await self._start_producer()
                    stack.push_async_callback(stop_quietly, producer)
                await self._loop(consumer, producer)
        except Exception:
            if self.report.stop_reason == "running":
                self.report.stop_reason = "failed"
            raise
        finally:
            self.report.elapsed_s = self._clock() - started
            self._progress.finish()
        return self.report

    # --- setup ------------------------------------------------------------------------------

    async def _start_consumer(self) -> AIOKafkaConsumer:
        s = self._config
        consumer = make_consumer(
            self._kafka,
            group_id=replayer_group(s),
            fetch_max_wait_ms=100,
            # DLQ records are a lead plus headers: leave room above the lead size cap.
            max_partition_fetch_bytes=max(s.kafka.max_lead_bytes * 2, 1_048_576) + 65_536,
        )
        await start_client(self._kafka, consumer)
        return consumer

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = transactional_producer(self._kafka, replayer_transactional_id(self._config))
        # init_transactions: fences a previous replayer and aborts its open transaction, so
        # the committed offsets read after this are final.
        await start_client(self._kafka, producer)
        return producer

    async def _assign(self, consumer: AIOKafkaConsumer) -> tuple[list[TopicPartition], int]:
        """Assign every DLQ partition at the group's committed offset; offsets pending."""
        topic = self._config.topic_dlq
        ranges = await assign_from_committed(consumer, topic)
        tps = list(ranges)
        pending = sum(max(end - start, 0) for start, end in ranges.values())
        ends = {tp: end for tp, (_, end) in ranges.items()}
        if not self._options.follow:
            self._ends = ends
        log.info(
            "replay.assigned",
            topic=topic,
            group=replayer_group(self._config),
            partitions=len(tps),
            pending_offsets=pending,
            follow=self._options.follow,
        )
        return tps, pending

    # --- the loop ---------------------------------------------------------------------------

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer | None) -> None:
        tps, pending = await self._assign(consumer)
        if producer is not None:
            self._warn_budget(pending, at_most=True)
        self._progress.start(None if self._options.follow else pending)
        try:
            await self._run_batches(consumer, producer, tps)
        finally:
            if producer is None:
                self._warn_budget(self.report.total("replay"))

    def _warn_budget(self, leads: int, *, at_most: bool = False) -> None:
        """Say so when today's budget cannot pay for the leads (a real run: an upper bound)."""
        if self._state is None:
            return
        warning = budget_warning(
            self._state.status(), self._config.credits_per_lead, leads, at_most=at_most
        )
        self.report.budget_warning = warning
        if warning is not None and not self._options.dry_run:
            self._progress.note(warning)
            log.warning("replay.budget_low", warning=warning)

    async def _run_batches(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer | None,
        tps: list[TopicPartition],
    ) -> None:
        while True:
            if self._stop.is_set():
                self.report.stop_reason = "interrupted"
                return
            if self._limit_reached():
                self.report.stop_reason = "limit"
                return
            if self._ends is not None:
                active = [tp for tp in tps if await consumer.position(tp) < self._ends[tp]]
                if not active:
                    self.report.stop_reason = "end"
                    return
            else:
                active = tps
            if not await self._still_safe(producer is not None):
                return
            batch = await consumer.getmany(
                *active, timeout_ms=200, max_records=self._options.batch_size
            )
            records = self._in_range(batch)
            if not records:
                continue
            if producer is None:
                self._count_dry(records)
            else:
                await self._transact(producer, records)
            self._progress.update(self.report)

    def _in_range(
        self, batch: dict[TopicPartition, list[Any]]
    ) -> list[tuple[TopicPartition, DlqRecord]]:
        """The batch's records in partition order, without any beyond the end offsets."""
        out: list[tuple[TopicPartition, DlqRecord]] = []
        for tp in sorted(batch, key=lambda t: t.partition):
            end = None if self._ends is None else self._ends[tp]
            out += [(tp, m) for m in batch[tp] if end is None or m.offset < end]
        return out

    def _limit_reached(self) -> bool:
        return self._options.limit is not None and self._matched >= self._options.limit

    def _plan(self, record: DlqRecord) -> Planned:
        o = self._options
        return plan(record, o.filters, o.max_attempts, self._targets)

    def _count_dry(self, records: list[tuple[TopicPartition, DlqRecord]]) -> None:
        for _, record in records:
            if self._limit_reached():
                return
            planned = self._plan(record)
            self.report.add(planned.outcome, planned.error_class)
            self.report.truncated += planned.truncated
            if planned.outcome != "skip":
                self._matched += 1

    async def _transact(
        self, producer: AIOKafkaProducer, records: list[tuple[TopicPartition, DlqRecord]]
    ) -> None:
        """Move a batch and commit the offsets past it, all in one transaction."""
        group = replayer_group(self._config)
        counts: Counter[tuple[str, str]] = Counter()
        truncated = 0
        offsets: dict[TopicPartition, int] = {}
        matched = self._matched
        sending: list[tuple[TopicPartition, DlqRecord, OutRecord]] = []
        try:
            async with transaction(producer):
                for tp, record in records:
                    if self._options.limit is not None and matched >= self._options.limit:
                        break
                    planned = self._plan(record)
                    if planned.outcome == "replay" and not await pace(
                        self._bucket, self._stop, clock=self._clock
                    ):
                        break  # stopping: commit what was sent so far
                    if planned.outcome != "replay" and self._stop.is_set():
                        break
                    out = OutRecord(
                        planned.topic,
                        planned.key,
                        planned.value,
                        list(planned.headers or []),
                        planned.partition,
                        planned.timestamp_ms,
                    )
                    sending.append((tp, record, out))
                    offsets[tp] = record.offset + 1
                    counts[(planned.outcome, planned.error_class)] += 1
                    truncated += planned.truncated
                    if planned.outcome != "skip":
                        matched += 1
                if not offsets:
                    return  # nothing sent: the transaction ends empty
                # Every delivery is checked before the DLQ offsets move past the records:
                # a refused record stays in the DLQ (the transaction aborts).
                refused = await send_all(producer, [out for _, _, out in sending])
                if refused:
                    tp, record, out = sending[refused[0].index]
                    raise StreamprocError(
                        f"replay stopped: {out.topic} refused the record at {tp.topic} "
                        f"partition {tp.partition} offset {record.offset} "
                        f"({refused[0].error!r}); nothing of its batch was moved. Leave it "
                        "out with a filter, or raise the topic's max.message.bytes"
                    )
                await producer.send_offsets_to_transaction(offsets, group)
        except KafkaError as exc:
            if not _fenced(exc, producer):
                raise StreamprocError(
                    f"replay stopped: a transaction failed ({exc.__class__.__name__}); its "
                    "records were not moved and the next run reads them again "
                    f"({self.report.read} records were moved before)"
                ) from None
            raise ReplayFenced(
                f"another replayer of group {group} started and took over; this one stopped "
                f"(its last batch was rolled back; {self.report.read} records were moved by it)"
            ) from None
        self._matched = matched
        self.report.merge(counts)
        self.report.truncated += truncated
        self.report.transactions += 1
        log.debug("replay.committed", records=sum(counts.values()), offsets=_offsets(offsets))

    # --- safety during the run --------------------------------------------------------------

    def _unsafe(self) -> str | None:
        if self._state is None:
            return None
        return refusal_reason(self._state.status(), self._config.credits_per_lead)

    async def _still_safe(self, moving: bool) -> bool:
        """False (and the run stops) when replaying became unsafe; ``--follow`` waits instead."""
        if not moving:
            return True
        reason = self._unsafe()
        if reason is None:
            return True
        if not self._options.follow:
            self.report.refusal = reason
            self.report.stop_reason = "unsafe"
            log.warning("replay.unsafe", reason=reason)
            return False
        self._progress.note(f"paused: {reason}")
        log.warning("replay.paused", reason=reason)
        while reason is not None and not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=_PAUSE_POLL_S)
            reason = self._unsafe()
        if reason is None:
            self._progress.note("resumed")
            log.info("replay.resumed")
        return True


def _offsets(offsets: dict[TopicPartition, int]) -> dict[int, int]:
    return {tp.partition: offset for tp, offset in offsets.items()}


def _fenced(exc: KafkaError, producer: AIOKafkaProducer) -> bool:
    """Whether a failure means a newer producer of our transactional id took over.

    The fence surfaces as ``ProducerFenced`` or ``InvalidProducerEpoch`` depending on which
    request met it first; either way aiokafka's transaction manager is then in a fatal state.
    """
    if isinstance(exc, ProducerFenced | InvalidProducerEpoch):
        return True
    manager = getattr(producer, "_txn_manager", None)
    return bool(manager is not None and manager.is_fatal_error())
