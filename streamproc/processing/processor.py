"""``streamproc run``: the consumer group over ``leads.raw``.

Shape (aiokafka style: a thin public class over tasks it owns, started in ``start()``,
cancelled and awaited in ``stop()``):

* the **fetch loop** reads raw bytes with ``getmany`` (never the async iterator, which
  skips a ``RecordTooLargeError`` with a log line) and hands each record to its partition's
  lane, keeping at most ``max_in_flight`` leads uncommitted in the process and pausing a
  partition whose lane is full: the topic is the queue, memory stays bounded;
* the **commit loop** commits, every ``commit_interval_ms``, each lane's done prefix with
  its offset in one transaction of that lane's producer;
* the **rebalance listener** creates a lane (and its producer, which fences the partition's
  previous owner) on assignment and commits or drops a lane on revocation.

On a commit failure the lane aborts and keeps its window: the partition's fetching is
paused and the commit is tried again after a backoff (doubled per failure in a row, capped),
with a new producer that fences the old one; the group's committed offset then says what
the failed commit really published. A persistent failure (an ACL taken away, a refusing
DLQ) so costs no provider call: finished leads are published by the first commit that
works. Only a fence, a revocation or another owner's commit throws the window away.

A watch task notices a partition with records behind, nothing in flight and no progress
(:mod:`streamproc.processing.stalled_partitions`): it is logged, on ``/status`` and
``/readyz``, and its fetching is restarted at its lane's position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    GroupAuthorizationFailedError,
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    TopicAuthorizationFailedError,
)

from streamproc.errors import ErrorClass, KafkaSetupError, PartitionSuperseded, UnreadableRecord
from streamproc.kafka.client import consumer as make_consumer
from streamproc.kafka.client import (
    max_request_bytes,
    start_client,
    stop_quietly,
    transaction,
    transactional_producer,
)
from streamproc.kafka.tolerant import Undecodable, read_tolerantly
from streamproc.kafka.topics import max_message_bytes
from streamproc.logs import get_logger
from streamproc.processing.backoff import Backoff
from streamproc.processing.config import ProcessorConfig
from streamproc.processing.handler import LeadHandler, Unreadable
from streamproc.processing.lane import CommitResult, PartitionLane, transactional_id
from streamproc.processing.publication import Publication
from streamproc.processing.stalled_partitions import PartitionView, StallWatch
from streamproc.records.dlq import RECORD_OVERHEAD_BYTES
from streamproc.records.lead import Source
from streamproc.records.outcome import Outcome, OutcomeKind
from streamproc.records.status import LaneStatus
from streamproc.settings import start_offset_ms

__all__ = ["Processor", "ProcessorStats"]

log = get_logger(__name__)

#: An enriched outcome's ``by_source`` key (an enum's ``.value`` costs two calls per lead).
_SOURCE_LABEL: dict[Source | None, str] = {None: Source.PROVIDER.value} | {
    source: source.value for source in Source
}

#: Errors of a fetch that concern one record the client cannot decode (a header key that
#: is not UTF-8, a batch failing its CRC): the record is dead-lettered by its position.
_UNREADABLE: tuple[type[BaseException], ...] = (UnicodeDecodeError, CorruptRecordException)
#: Errors of a fetch that no retry mends: the process stops with one line.
_FATAL_FETCH: tuple[type[BaseException], ...] = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
)
#: A producer another one took over, or an offset another owner committed: the partition
#: has a new owner, or will have one.
_FENCED: tuple[type[BaseException], ...] = (
    ProducerFenced,
    InvalidProducerEpoch,
    PartitionSuperseded,
)
#: After a lane was fenced while the consumer still holds its partition: how long the
#: group has to hand the partition to its new owner before this process takes it back
#: (above a session timeout, so a real new owner always wins the race).
FENCED_STAND_DOWN_S = 30.0
#: After a fetch that failed: how soon to fetch again.
RETRY_LANE_S = 1.0
#: How often the stall watch looks at idle partitions, at most (one end_offsets request).
STALL_CHECK_MAX_S = 5.0
#: At shutdown, the least time the lanes' final commits get, even with the grace spent (a
#: second signal included): a commit is one round trip when the broker is well.
FINAL_COMMIT_S = 5.0
#: How long a commit cut short at shutdown may take to abort before the lane is dropped.
ABANDON_WAIT_S = 1.0


@dataclass
class ProcessorStats:
    """Counts since start, by what was committed (never counts a lead before its commit)."""

    consumed: int = 0
    committed: int = 0
    enriched: int = 0
    dlq: int = 0
    #: Handed to an asynchronous provider (Clay); their output is published later by it.
    submitted: int = 0
    #: Not admitted by pacing yet: written to their band's deferral topic.
    deferred: int = 0
    #: ``deferred`` by deferral topic (score band).
    deferred_by_topic: dict[str, int] = field(default_factory=dict)
    #: Keyed by the members' values: these counts are written as they are (``/status``).
    by_error_class: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    credits: int = 0
    transactions: int = 0
    aborted_transactions: int = 0
    in_flight: int = 0
    max_in_flight_seen: int = 0
    #: The most leads one partition's window held (bounded by max_in_flight_per_partition).
    max_window_seen: int = 0
    #: Records the Kafka client could not decode, dead-lettered by position.
    unreadable: int = 0
    #: Lanes given up because another producer fenced theirs.
    fenced: int = 0
    #: Partitions the group took away from this process (rebalances, a member leaving).
    revoked: int = 0
    #: Commits that failed (each retried after a backoff, its finished leads kept).
    commit_failures: int = 0
    #: Lane openings that failed or timed out (each retried after a backoff).
    open_failures: int = 0
    #: Partitions found stalled by the watch (lag, nothing in flight, no progress).
    stalls: int = 0


class Processor:
    """The consumer group over ``leads.raw``: a fetch loop, a commit loop, one lane per
    assigned partition.

    Each lead is handed to its partition's lane and processed by the handler; the commit
    loop publishes each lane's finished prefix with its offset in one transaction. Never
    stops on a record (docs/guarantees.md); stops on :meth:`request_stop` (graceful,
    within the grace) or :meth:`abort`.
    """

    def __init__(
        self,
        config: ProcessorConfig,
        handler: LeadHandler[object, object],
        *,
        log_context: Callable[[], dict[str, Any]] | None = None,
        release_holds: Callable[[Collection[asyncio.Task[Any]] | None], int] | None = None,
        on_assignment: Callable[[int, int], None] | None = None,
    ) -> None:
        self._config = config
        self._kafka = config.kafka
        #: Told after every rebalance: partitions assigned here, partitions of the topic.
        self._on_assignment = on_assignment
        self._handler = handler
        self._log_context = log_context or dict
        #: Cancels the leads held by the breaker, the budget or the registry: all (None)
        #: or those of the given lead tasks (see ResilienceGuard, LeadHandler).
        self._release_holds = release_holds or (lambda _: 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._lanes: dict[TopicPartition, PartitionLane] = {}
        #: Assigned partitions without a lane (its opening failed, or it was fenced), and
        #: when to open one again; their fetching is paused meanwhile.
        self._reopen_at: dict[TopicPartition, float] = {}
        self._opening: set[TopicPartition] = set()
        #: Failed openings in a row per partition (cleared when one opens).
        self._open_backoff: dict[TopicPartition, Backoff] = {}
        #: Openings running in the background (rebalance callback, retries), so that no
        #: partition's opening waits for another's, nor the group for any.
        self._open_tasks: set[asyncio.Task[None]] = set()
        self._reopening: asyncio.Task[None] | None = None
        self._stall = StallWatch(config.stall_after_s)
        #: Deferred leads wait in memory for their turn: their partitions get a small window.
        self._deferral_topics = frozenset(config.deferral_topics)
        self._publication: Publication | None = None
        self._max_batch_bytes: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Each lane's commit under way (see commit_all).
        self._commits: dict[TopicPartition, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._aborting = asyncio.Event()
        self._window_freed = asyncio.Event()
        self._in_flight = 0
        self.stats = ProcessorStats()
        self.assigned = asyncio.Event()
        #: Set once the group has given this consumer an assignment, empty or not (a member
        #: beyond the partition count is a standby, still in the group); cleared when it
        #: leaves. A rebalance does not clear it: the member stays in the group through it.
        self.joined = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        kafka = self._kafka
        self._consumer = make_consumer(
            kafka,
            group_id=self._config.group_id,
            max_partition_fetch_bytes=max(kafka.max_lead_bytes + 1024, 1_048_576),
            fetch_max_bytes=max(kafka.max_lead_bytes * 4, 52_428_800),
            max_poll_interval_ms=kafka.max_poll_interval_ms,
        )
        await start_client(self._kafka, self._consumer)
        topics = await self._consumer.topics()
        # Pacing drains the deferral topics in the same group, lane for lane like leads.raw.
        inputs = [self._config.topic_raw, *self._config.deferral_topics]
        missing = [topic for topic in inputs if topic not in topics]
        if missing:
            await self._consumer.stop()
            raise KafkaSetupError(
                f"topic {missing[0]} does not exist: run `streamproc topics create`"
            )
        await self._read_output_limits()
        self._consumer.subscribe(inputs, listener=_Listener(self))
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._fetch_loop(), name="streamproc-fetch"),
            loop.create_task(self._commit_loop(), name="streamproc-commit"),
            loop.create_task(self._watch_loop(), name="streamproc-stall-watch"),
        ]

    async def run_until_stopped(self) -> None:
        """Run until :meth:`request_stop`; a failing background task ends the run."""
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait([*self._tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def request_stop(self) -> None:
        self._stopping.set()
        self._window_freed.set()

    def abort(self) -> None:
        """Stop without waiting for leads in flight, even during a graceful stop.

        Whatever is not committed is read again by the next owner; the transactions keep
        that from publishing anything twice.
        """
        self._aborting.set()
        self.request_stop()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop fetching, let leads in flight finish (up to the grace), commit, leave the group."""
        self.request_stop()
        grace = self._config.shutdown_grace_s if grace_s is None else grace_s
        if self._aborting.is_set():
            grace = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        fetch = self._tasks[0] if self._tasks else None
        if fetch is not None:
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetch
        lanes = list(self._lanes.values())
        released = self._release_holds(None)
        if released:
            log.info("shutdown.released_holds", leads=released)
        if lanes and grace > 0:
            idle: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*(lane.wait_idle(grace) for lane in lanes))
            )
            aborted: asyncio.Future[Any] = asyncio.ensure_future(self._aborting.wait())
            await asyncio.wait([idle, aborted], return_when=asyncio.FIRST_COMPLETED)
            for waiter in (idle, aborted):
                waiter.cancel()
            await asyncio.gather(idle, aborted, return_exceptions=True)
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._cancel_openings()
        # Whatever a lane is doing, the process leaves: its commit under way and its final
        # one get what is left of the grace, and at least FINAL_COMMIT_S.
        # Each lane at once: a stuck one must not eat the others' time.
        commits_until = max(deadline, loop.time() + FINAL_COMMIT_S)
        await asyncio.gather(
            *(self._close_lane(tp, commit=True, until=commits_until) for tp in list(self._lanes))
        )
        self._commits.clear()
        if self._consumer is not None:
            # Leaves the group. stop_quietly: aiokafka's fetcher re-raises the cancellation
            # of its own fetch task when it was in a retry backoff (a connection closed, as
            # at a SASL re-authentication), which would end App.run with CancelledError.
            await stop_quietly(self._consumer)
        self._consumer = None
        self.joined.clear()
        for tp in list(self._lanes):  # opened by a rebalance while we were stopping
            await self._close_lane(tp, commit=False)
        log.info("processor.stopped", **_summary(self.stats))

    async def lags(self) -> dict[int, int]:
        """Records behind, per assigned partition: last stable offset minus committed offset.

        ``end_offsets`` rather than the fetcher's high-water mark, which goes stale exactly
        when a partition is paused (the breaker holding).
        """
        if self._consumer is None or not self._lanes:
            return {}
        # The input's partitions only: deferred leads wait on purpose (and would share
        # their partition numbers).
        deferral = self._deferral_topics
        lanes = {tp: lane for tp, lane in self._lanes.items() if tp.topic not in deferral}
        if not lanes:
            return {}
        ends = await self._consumer.end_offsets(list(lanes))
        return {
            tp.partition: max(ends[tp] - lane.committed_offset, 0)
            for tp, lane in lanes.items()
            if tp in ends
        }

    # --- fetching -------------------------------------------------------------------------

    async def _read_output_limits(self) -> None:
        s = self._config
        topics = [s.topic_enriched, s.topic_dlq, s.topic_state, s.topic_parked]
        request_bytes = max_request_bytes(self._kafka)
        limits = {
            topic: min(limit, request_bytes)
            for topic, limit in (await max_message_bytes(self._kafka, topics)).items()
        }
        self._publication = Publication(
            s.topic_dlq, self._handler.dead_letter, limits, default_limit=request_bytes
        )
        # The broker checks whole batches: keep every batch under the smallest limit.
        self._max_batch_bytes = min(limits.values()) - RECORD_OVERHEAD_BYTES
        log.info("outputs.limits", **{topic.replace(".", "_"): b for topic, b in limits.items()})

    async def _fetch_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        per_partition = self._config.max_in_flight_per_partition
        while not self._stopping.is_set():
            self._schedule_reopen()
            self._apply_backpressure()
            room = self._config.max_in_flight - self._in_flight
            if room <= 0:
                self._window_freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._window_freed.wait(), timeout=1.0)
                self._apply_backpressure()
                room = self._config.max_in_flight - self._in_flight
            # Poll even with every partition paused (the window full, leads held by the
            # breaker or the budget): a consumer that stops polling for
            # max_poll_interval_ms is dropped from the group, however long the hold.
            seen = {tp: (lane, lane.generation) for tp, lane in self._lanes.items()}
            try:
                batch = await consumer.getmany(
                    timeout_ms=100 if room > 0 else 0, max_records=max(room, 1)
                )
            except _UNREADABLE as exc:
                await self._read_past_unreadable(exc)
                continue
            except _FATAL_FETCH as exc:
                raise KafkaSetupError(
                    f"Kafka refused to let group {self._config.group_id} read "
                    f"{self._config.topic_raw}: {exc.__class__.__name__}; grant the ACLs"
                ) from None
            except KafkaError as exc:
                log.warning("fetch.failed", error=repr(exc))
                await asyncio.sleep(RETRY_LANE_S)
                continue
            # A lane reset or a rebalance during getmany makes what it returns for that
            # partition stale (fetched before the seek): such records are dropped and the
            # partition is seeked to where its lane really is, so nothing is skipped.
            for tp, records in batch.items():
                lane = self._lanes.get(tp)
                if lane is None:
                    continue  # revoked or lane-less; its next lane reads from the committed offset
                if seen.get(tp) != (lane, lane.generation):
                    consumer.seek(tp, lane.position)
                    continue
                # One fetch may bring more of a partition than its window has room for,
                # or than the process has (a poll while full): the rest is read again
                # once there is room (never held in memory).
                fits = max(min(self._window_limit(tp, per_partition) - len(lane), room), 0)
                if len(records) > fits:
                    records = records[:fits]
                    consumer.seek(tp, lane.position if not records else records[-1].offset + 1)
                room -= len(records)
                for record in records:
                    self._submit(lane, record)
                self.stats.max_window_seen = max(self.stats.max_window_seen, len(lane))
            self.stats.in_flight = self._in_flight
            self.stats.max_in_flight_seen = max(self.stats.max_in_flight_seen, self._in_flight)

    def _submit(
        self,
        lane: PartitionLane,
        record: Any,
        process: Callable[[Any], Coroutine[Any, Any, Outcome]] | None = None,
    ) -> None:
        self._in_flight += 1
        self.stats.consumed += 1
        lane.submit(record, process or self._handler.handle)

    async def _read_past_unreadable(self, error: BaseException) -> None:
        """A fetch failed on a record the client cannot decode; aiokafka does not say where,
        and it decodes a batch as a whole, so the valid records around the bad one fail too.

        Whatever that fetch had already taken from other partitions is lost with the
        exception. Each lane's partition is read again from where its lane really is, raw
        and one record at a time (:func:`~streamproc.kafka.tolerant.read_tolerantly`), up
        to its room: a record that cannot be decoded is dead-lettered by its offset
        (``unreadable_record``), every other one is processed as usual, and the consumer
        is seeked past what was taken.
        """
        assert self._consumer is not None
        consumer = self._consumer
        log.warning("fetch.unreadable_record", error=repr(error))
        lanes = [(tp, lane) for tp, lane in self._lanes.items() if not lane.paused]
        if not lanes:
            await asyncio.sleep(0.2)  # a rebalance under way: its lanes open in a moment
            return
        per_partition = self._config.max_in_flight_per_partition
        fetch_bytes = max(self._kafka.max_lead_bytes + 1024, 1_048_576)
        moved = False
        for tp, lane in lanes:
            room = min(
                self._window_limit(tp, per_partition) - len(lane),
                self._config.max_in_flight - self._in_flight,
            )
            consumer.seek(tp, lane.position)
            if room <= 0:
                continue
            try:
                read = await read_tolerantly(consumer, tp, lane.position, fetch_bytes)
            except (KafkaError, CorruptRecordException) as exc:
                log.warning("fetch.tolerant_read_failed", partition=tp.partition, error=repr(exc))
                await asyncio.sleep(RETRY_LANE_S)
                continue
            if self._lanes.get(tp) is not lane:
                continue  # reset or revoked while reading
            next_offset = read.next_offset
            for item in read.records:
                if room <= 0:
                    next_offset = item.offset
                    break
                if isinstance(item, Undecodable):
                    self._dead_letter_unreadable(lane, tp, item.offset, item.reason)
                else:
                    self._submit(lane, item)
                room -= 1
            moved = moved or next_offset > lane.position
            lane.position = max(lane.position, next_offset)
            consumer.seek(tp, lane.position)
        if not moved:
            # Nothing read past where the lanes were (no room, or a read that brought
            # nothing): the next fetch would fail the same way at once.
            log.warning("fetch.unreadable_no_progress", retry_in_s=RETRY_LANE_S)
            await asyncio.sleep(RETRY_LANE_S)

    def _dead_letter_unreadable(
        self, lane: PartitionLane, tp: TopicPartition, offset: int, detail: str
    ) -> None:
        self.stats.unreadable += 1
        error = UnreadableRecord(
            f"the Kafka client cannot decode this record ({detail}); read it at its "
            "origin coordinates with a client that can"
        )
        record = Unreadable(tp.topic, tp.partition, offset)
        log.warning("lead.unreadable", partition=tp.partition, offset=offset, error=detail)

        async def dead_letter(_: Any) -> Outcome:
            return self._handler.dead_letter(record, error, None)

        self._submit(lane, record, dead_letter)

    def _window_limit(self, tp: TopicPartition, per_partition: int) -> int:
        return self._config.deferral_window if tp.topic in self._deferral_topics else per_partition

    def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        per_partition = self._config.max_in_flight_per_partition
        full = self._in_flight >= self._config.max_in_flight
        pause, resume = [], []
        assignment = self._consumer.assignment()
        for tp, lane in self._lanes.items():
            if tp not in assignment:
                continue  # revoked a moment ago: pausing it would raise IllegalStateError
            # A lane whose commits fail takes no new lead: each would be paid for and then
            # wait with the others for a commit that may not come for a long time.
            failing = lane.backoff.failures > 0
            limit = self._window_limit(tp, per_partition)
            if (full or failing or len(lane) >= limit) and not lane.paused:
                pause.append(tp)
                lane.paused = True
            # Resumed once half the window is free: resuming at the first free slot would
            # fetch a full batch to keep one record and seek back, over and over.
            elif lane.paused and not full and not failing and len(lane) <= limit // 2:
                resume.append(tp)
                lane.paused = False
        if pause:
            self._consumer.pause(*pause)
        if resume:
            self._consumer.resume(*resume)

    # --- committing -----------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        # A fixed tick: the next round starts one interval after the previous one *started*
        # (at once if the commits took longer), so a lead finished right after a round
        # waits one interval, not an interval plus a commit round trip.
        interval = self._config.commit_interval_ms / 1000
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due + interval, loop.time())
            await self.commit_all(wait_s=interval)

    async def commit_all(self, wait_s: float | None = None) -> None:
        """Start a commit of every lane that has none under way, each on its own task, and
        wait for them up to ``wait_s`` (None: until each is done).

        A lane whose commit is slow or stuck (a broker refusing its outputs round after
        round, a coordinator that does not answer) never keeps another partition from
        committing: the commit loop waits one interval, and that lane is skipped until its
        commit ends.
        """
        loop = asyncio.get_running_loop()
        started = []
        for tp, lane in list(self._lanes.items()):
            running = self._commits.get(tp)
            if running is not None and not running.done():
                continue
            task = loop.create_task(self._commit_lane(tp, lane), name=f"commit-{tp.partition}")
            self._commits[tp] = task
            started.append(task)
        if started:
            await asyncio.wait(started, timeout=wait_s)

    async def _commit_lane(self, tp: TopicPartition, lane: PartitionLane) -> None:
        backoff = lane.backoff
        loop = asyncio.get_running_loop()
        if backoff.failures and not backoff.due(loop.time()):
            return
        try:
            if backoff.failures:
                # The failed transaction is settled by fencing its producer; what it
                # published (if its commit went through after all) leaves the window.
                recovered = await lane.restart()
                if recovered is not None:
                    self._account(recovered)
            result = await lane.commit()
        except asyncio.CancelledError:
            raise
        except _FENCED as exc:
            # Another process owns this partition now (the group moved it, or will): give
            # it up instead of fencing the new owner back with a new producer.
            self.stats.aborted_transactions += 1
            self.stats.fenced += 1
            log.warning("lane.fenced", partition=tp.partition, error=repr(exc))
            await self._stand_down(tp, lane, retry_in_s=FENCED_STAND_DOWN_S)
            return
        except Exception as exc:
            # Whatever failed (a Kafka error, an ACL taken away, a producer in a state
            # aiokafka reports as AssertionError or IllegalOperation, a DLQ that refuses
            # records), the transaction was aborted and the lane keeps its window: the
            # finished leads are published by the next commit that works, never bought
            # again. The retries back off, and the partition takes no new lead meanwhile.
            self.stats.aborted_transactions += 1
            self.stats.commit_failures += 1
            delay = backoff.failed(loop.time())
            log.warning(
                "lane.commit_failed",
                partition=tp.partition,
                attempt=backoff.failures,
                retry_in_s=round(delay, 3),
                kept=len(lane),
                error=repr(exc),
            )
            self._apply_backpressure()
            return
        if backoff.failures:
            log.info("lane.commit_recovered", partition=tp.partition, attempts=backoff.failures)
            backoff.succeeded()
            self._apply_backpressure()
        if result is not None:
            # Progress ends a stall at once: readiness must not wait for the next look.
            self._stall.progressed(tp.partition)
            self._account(result)

    def _account(self, result: CommitResult) -> None:
        st = self.stats
        st.transactions += 1
        # Bound once per commit: structlog builds a logger on every call of the module's one.
        committed = log.bind(**self._log_context())
        for record, outcome in result.outcomes:
            st.committed += 1
            # One line per lead: DEBUG when enriched (thousands a second), INFO when
            # dead-lettered (an operator may want each one).
            (committed.info if outcome.kind is OutcomeKind.DLQ else committed.debug)(
                "lead.committed",
                lead_id=outcome.lead_id,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                attempt=outcome.attempt,
                outcome=outcome.kind.value,
                error_class=outcome.error_class,
                source=outcome.source,
            )
            if outcome.kind is OutcomeKind.ENRICHED:
                st.enriched += 1
                src = _SOURCE_LABEL[outcome.source]
                st.by_source[src] = st.by_source.get(src, 0) + 1
            elif outcome.kind is OutcomeKind.SUBMITTED:
                st.submitted += 1
            elif outcome.kind is OutcomeKind.DEFERRED:
                st.deferred += 1
                for out in outcome.records:
                    st.deferred_by_topic[out.topic] = st.deferred_by_topic.get(out.topic, 0) + 1
            else:
                st.dlq += 1
                ec = (outcome.error_class or ErrorClass.INTERNAL).value
                st.by_error_class[ec] = st.by_error_class.get(ec, 0) + 1
            st.credits += outcome.credits
        self._in_flight -= len(result.outcomes)
        st.in_flight = self._in_flight
        self._window_freed.set()
        if self._consumer is not None:
            self._apply_backpressure()

    async def _stand_down(self, tp: TopicPartition, lane: PartitionLane, retry_in_s: float) -> None:
        """Drop a lane whose commit failed: its leads in flight are cancelled, its producer
        closed, its partition paused. While the partition stays assigned here, a new lane
        opens after ``retry_in_s`` and reads again from the group's committed offset (a
        commit that failed may still have committed: the new producer fences the old one
        first, so the committed offset then says which)."""
        if self._lanes.get(tp) is not lane:
            return
        del self._lanes[tp]
        dropped = await lane.cancel_pending()
        self._in_flight -= dropped
        self._window_freed.set()
        await stop_quietly(lane.producer)
        # A rebalance during the awaits above may have opened a new lane for the partition
        # (or be opening one): pausing it now would leave it paused with nobody to resume it.
        if tp not in self._lanes and tp not in self._opening:
            self._reopen_at[tp] = asyncio.get_running_loop().time() + retry_in_s
            if self._consumer is not None and tp in self._consumer.assignment():
                self._consumer.pause(tp)
        log.info(
            "lane.stood_down",
            partition=tp.partition,
            offset=lane.committed_offset,
            dropped=dropped,
            reopen_in_s=retry_in_s,
        )
        if not self._lanes:
            self.assigned.clear()

    async def _reopen_due_lanes(self) -> None:
        if not self._reopen_at or self._consumer is None:
            return
        now = asyncio.get_running_loop().time()
        assignment = self._consumer.assignment()
        due = []
        for tp, at in list(self._reopen_at.items()):
            if tp not in assignment or tp in self._lanes:
                del self._reopen_at[tp]  # revoked meanwhile, or opened by a rebalance
            elif at <= now:
                due.append(tp)
        if due:
            await self._open_lanes(due)

    # --- watching -------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        interval = min(self._config.stall_after_s / 3, STALL_CHECK_MAX_S)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_stalls()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # end offsets unavailable (a broker away): next round
                log.debug("stall_watch.unavailable", error=repr(exc))

    async def check_stalls(self) -> list[int]:
        """Look at the idle partitions once; returns those found stalled just now, after
        logging each and restarting its fetching at its lane's position."""
        if self._consumer is None:
            return []
        consumer = self._consumer
        # A deferral partition waits on purpose (its leads' turn), and the watch knows
        # partitions by number: it watches the input's.
        deferral = self._deferral_topics
        lanes = {tp: lane for tp, lane in self._lanes.items() if tp.topic not in deferral}
        idle = [tp for tp, lane in lanes.items() if len(lane) == 0]
        ends = await consumer.end_offsets(idle) if idle else {}
        # Behind means records to fetch: the last stable offset can stand past the lane's
        # committed offset by a transaction's commit marker (a replay, an exactly-once
        # producer upstream) or trailing aborted records, which a fetch skips without a
        # lead. So the consumer's own fetch position counts when it is further on.
        behind = {tp: max(end - lanes[tp].committed_offset, 0) for tp, end in ends.items()}
        for tp, end in ends.items():
            if behind[tp] and tp in consumer.assignment():
                with contextlib.suppress(Exception):  # no valid position (a seek pending)
                    position = await asyncio.wait_for(consumer.position(tp), timeout=1.0)
                    behind[tp] = max(end - max(position, lanes[tp].committed_offset), 0)
        now = asyncio.get_running_loop().time()
        # A process whose window is full (leads held elsewhere) pauses idle partitions for
        # a reason: they count as busy, not stalled.
        full = self._in_flight >= self._config.max_in_flight
        views = [
            PartitionView(
                tp.partition,
                behind.get(tp, 0),
                len(lane) or int(full),
                lane.committed_offset,
            )
            for tp, lane in lanes.items()
        ]
        became = self._stall.observe(views, now)
        for partition in became:
            tp = next(tp for tp in lanes if tp.partition == partition)
            self._heal(tp, lanes[tp], ends[tp])
        return became

    def _heal(self, tp: TopicPartition, lane: PartitionLane, end: int) -> None:
        """A stalled partition: say so, and fetch it again from where its lane is."""
        assert self._consumer is not None
        consumer = self._consumer
        self.stats.stalls += 1
        paused = tp in consumer.paused()
        log.warning(
            "partition.stalled",
            partition=tp.partition,
            lag=max(end - lane.committed_offset, 0),
            committed=lane.committed_offset,
            position=lane.position,
            consumer_paused=paused,
            lane_paused=lane.paused,
            stalled_s=round(self._config.stall_after_s, 1),
        )
        if lane is not self._lanes.get(tp) or tp not in consumer.assignment():
            return
        # Nothing in flight: nothing can keep the window full, and a failing lane has its
        # window; so a pause here has no reason, and the fetch position may be lost.
        if lane.backoff.failures == 0:
            lane.paused = False
            consumer.seek(tp, lane.position)
            consumer.resume(tp)

    def stalled(self) -> dict[int, float]:
        """Partitions the watch found stalled, and for how long they have made no progress."""
        return self._stall.stalled(asyncio.get_running_loop().time())

    def lane_status(self) -> list[LaneStatus]:
        """One line per assigned partition of this process (``/status``, metrics)."""
        if self._consumer is None:
            return []
        now = asyncio.get_running_loop().time()
        stalled = self._stall.stalled(now)
        rows = []
        for tp in sorted(self._consumer.assignment() | set(self._lanes)):
            if tp.topic in self._deferral_topics:
                continue  # rows are by partition number: the input's (deferred leads wait)
            lane = self._lanes.get(tp)
            if lane is None:
                backoff = self._open_backoff.get(tp)
                rows.append(
                    LaneStatus(
                        partition=tp.partition,
                        open=False,
                        committed_offset=None,
                        in_flight=0,
                        paused=True,
                        failures=0 if backoff is None else backoff.failures,
                        retry_in_s=round(max(self._reopen_at.get(tp, now) - now, 0.0), 3),
                        stalled_s=None,
                    )
                )
                continue
            rows.append(
                LaneStatus(
                    partition=tp.partition,
                    open=True,
                    committed_offset=lane.committed_offset,
                    in_flight=len(lane),
                    paused=lane.paused,
                    failures=lane.backoff.failures,
                    retry_in_s=round(lane.backoff.retry_in_s(now), 3),
                    stalled_s=None
                    if tp.partition not in stalled
                    else round(stalled[tp.partition], 1),
                )
            )
        return rows

    # --- rebalancing ----------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a lane opening in the background; cancelled by a revocation or a stop."""
        task = asyncio.get_running_loop().create_task(work, name="streamproc-open-lanes")
        self._open_tasks.add(task)
        task.add_done_callback(self._open_done)
        return task

    def _schedule_reopen(self) -> None:
        """Open the lanes whose retry is due, without the fetch loop waiting for them."""
        if not self._reopen_at or (self._reopening is not None and not self._reopening.done()):
            return
        now = asyncio.get_running_loop().time()
        if any(at <= now for at in self._reopen_at.values()):
            self._reopening = self._spawn(self._reopen_due_lanes())

    def _open_done(self, task: asyncio.Task[None]) -> None:
        self._open_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("lane.open_crashed", error=repr(task.exception()))

    async def _cancel_openings(self) -> None:
        tasks = list(self._open_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_producer(self, tp: TopicPartition) -> Any:
        producer = transactional_producer(
            self._kafka,
            transactional_id(self._config.group_id, tp),
            max_batch_bytes=self._max_batch_bytes,
        )
        try:
            # init_transactions fences the previous owner of this id and waits for the
            # coordinator to settle its open transaction: bounded, as a coordinator that
            # is down would otherwise hold the opening (and the partition) for ever.
            await asyncio.wait_for(producer.start(), timeout=self._config.lane_open_timeout_s)
        except BaseException:
            await stop_quietly(producer)
            raise
        return producer

    async def _read_committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of ``tp`` (None: never committed), bounded."""
        assert self._consumer is not None
        committed = await asyncio.wait_for(
            self._consumer.committed(tp), timeout=self._config.lane_open_timeout_s
        )
        return None if committed is None else int(committed)

    async def _open_lanes(self, tps: Iterable[TopicPartition]) -> None:
        """Open a lane per partition; never raises (aiokafka swallows what a rebalance
        callback raises, and that partition would never be read): a partition whose lane
        fails to open stays paused and is tried again shortly."""
        assert self._consumer is not None
        if self._stopping.is_set():
            return  # a rebalance during shutdown: the next owner takes these partitions
        # Never two openings of one partition at once (the rebalance callback and a retry
        # from the fetch loop): two producers of one transactional id fence each other.
        tps = [tp for tp in tps if tp not in self._lanes and tp not in self._opening]
        self._opening.update(tps)
        try:
            opened = await asyncio.gather(
                *(self._open_lane(tp) for tp in tps), return_exceptions=True
            )
        finally:
            self._opening.difference_update(tps)
        now = asyncio.get_running_loop().time()
        s = self._config
        for tp, result in zip(tps, opened, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                backoff = self._open_backoff.setdefault(
                    tp, Backoff(s.lane_retry_initial_s, s.lane_retry_max_s)
                )
                delay = backoff.failed(now)
                self.stats.open_failures += 1
                log.warning(
                    "lane.open_failed",
                    partition=tp.partition,
                    attempt=backoff.failures,
                    retry_in_s=round(delay, 3),
                    error=repr(result) if not isinstance(result, TimeoutError) else "timeout",
                )
                self._reopen_at[tp] = backoff.retry_at
                if tp in self._consumer.assignment():
                    self._consumer.pause(tp)
            else:
                self._reopen_at.pop(tp, None)
                self._open_backoff.pop(tp, None)
        if any(not isinstance(result, BaseException) for result in opened):
            log.info(
                "partitions.assigned",
                partitions=sorted(tp.partition for tp in tps if tp in self._lanes),
            )
        if self._lanes:
            self.assigned.set()
        self._window_freed.set()
        self._report_assignment()

    def _assigned(self, tps: set[TopicPartition]) -> None:
        """The rebalance callback's part: nothing here waits for Kafka.

        The partitions are paused until their lanes open in the background (each bounded
        by ``lane_open_timeout_s``, all at once), so the group's rebalance never waits for
        a transaction coordinator, and no partition for another's. A new assignment comes
        with new fetch states in aiokafka (unpaused, positioned at the committed offset):
        a lane that opened during the rebalance is put back where it really is.
        """
        assert self._consumer is not None
        if self._stopping.is_set():
            return
        new = []
        for tp in tps:
            lane = self._lanes.get(tp)
            if lane is None:
                new.append(tp)
                continue
            self._consumer.seek(tp, lane.position)
            if lane.paused:
                self._consumer.pause(tp)
        if new:
            self._consumer.pause(*new)
        self._spawn(self._open_lanes(new))

    def _report_assignment(self) -> None:
        if self._on_assignment is None or self._consumer is None:
            return
        raw = self._config.topic_raw
        total = len(self._consumer.partitions_for_topic(raw) or ())
        mine = sum(1 for tp in self._consumer.assignment() if tp.topic == raw)
        self._on_assignment(mine, total)

    async def _open_lane(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        producer = await self._start_producer(tp)
        try:
            # Read the committed offset only after our producer fenced the previous owner:
            # its transaction is then committed or aborted, never half-way.
            committed = await self._read_committed(tp)
            if committed is None:
                committed = await asyncio.wait_for(
                    self._start_position(tp, producer), timeout=self._config.lane_open_timeout_s
                )
        except BaseException:
            await stop_quietly(producer)
            raise
        if tp not in self._consumer.assignment() or self._stopping.is_set():
            await stop_quietly(producer)
            return
        self._consumer.seek(tp, committed)
        self._consumer.resume(tp)

        async def new_producer() -> Any:
            return await self._start_producer(tp)

        async def read_committed() -> int:
            # The lane's start was committed when it opened: None only if the group lost it.
            now = await self._read_committed(tp)
            return committed if now is None else now

        s = self._config
        self._lanes[tp] = PartitionLane(
            tp,
            producer,
            s.group_id,
            committed,
            publication=self._publication,
            new_producer=new_producer,
            read_committed=read_committed,
            backoff=Backoff(s.lane_retry_initial_s, s.lane_retry_max_s),
            commit_timeout_s=s.kafka.transaction_timeout_ms / 1000,
        )

    async def _start_position(self, tp: TopicPartition, producer: Any) -> int:
        """Where a partition the group never committed starts (``start_offset``), committed
        at once: decided once, so a crash before the first lead does not decide again
        (with ``latest``, the leads written meanwhile would be skipped)."""
        assert self._consumer is not None
        at_ms = start_offset_ms(self._config.start_offset)
        if self._config.start_offset == "earliest":
            offset = (await self._consumer.beginning_offsets([tp]))[tp]
        elif at_ms is None:  # latest: the last stable offset (the consumer reads committed)
            offset = (await self._consumer.end_offsets([tp]))[tp]
        else:
            found = (await self._consumer.offsets_for_times({tp: at_ms}))[tp]
            offset = (
                found.offset if found is not None else (await self._consumer.end_offsets([tp]))[tp]
            )
        async with transaction(producer):
            await producer.send_offsets_to_transaction({tp: offset}, self._config.group_id)
        log.info(
            "partition.start_position",
            partition=tp.partition,
            offset=offset,
            start_offset=self._config.start_offset,
        )
        return int(offset)

    async def _close_lanes(self, tps: Iterable[TopicPartition]) -> None:
        tps = list(tps)
        # Before any await: a reopening the fetch loop schedules meanwhile must not find
        # these partitions due (aiokafka still reports the old assignment until the new one).
        for tp in tps:
            self._reopen_at.pop(tp, None)
            self._open_backoff.pop(tp, None)
        # Openings still under way would finish into the next assignment's partition state:
        # stopped here, and the next assignment opens what it assigns.
        await self._cancel_openings()
        tps = [tp for tp in tps if tp in self._lanes]
        # Held leads (breaker, budget, registry) go at once: they are not calling the
        # provider, and waiting for them would keep this member from rejoining the group
        # in time: evicted, it would take the partitions back and evict the other in turn.
        released = self._release_holds([t for tp in tps for t in self._lanes[tp].pending()])
        if released:
            log.info("revoke.released_holds", leads=released)
        # Let the leads in a provider call finish and commit them: a cancelled call may
        # already have been paid for, and its claim would stay counted against the budget.
        grace = self._config.revoke_grace_s
        if tps and grace > 0:
            await asyncio.gather(*(self._lanes[tp].wait_idle(grace) for tp in tps))
        # Side by side: one slow final commit must not add to the next one's wait while the
        # group waits for this member to rejoin.
        await asyncio.gather(*(self._close_lane(tp, commit=True) for tp in tps))
        if tps:
            self.stats.revoked += len(tps)
            log.info("partitions.revoked", partitions=sorted(tp.partition for tp in tps))
        if not self._lanes:
            self.assigned.clear()
        self._report_assignment()

    async def _close_lane(
        self, tp: TopicPartition, *, commit: bool, until: float | None = None
    ) -> None:
        """Drop a lane, first committing its done prefix (up to ``until``, loop time)."""
        lane = self._lanes.pop(tp, None)
        if lane is None:
            return
        if commit:

            async def settle_and_commit() -> CommitResult | None:
                if lane.backoff.failures:  # its last commit failed: settle that one first
                    recovered = await lane.restart()
                    if recovered is not None:
                        self._account(recovered)
                return await lane.commit()

            final = asyncio.ensure_future(settle_and_commit())
            timeout = None if until is None else max(until - asyncio.get_running_loop().time(), 0)
            try:
                await asyncio.wait([final], timeout=timeout)
            except asyncio.CancelledError:
                final.cancel()  # the commit finishes what the broker may already have
                raise
            if not final.done():
                # The commit under way (the commit loop's, or this final one) is cut short.
                log.warning("lane.commit_abandoned", partition=tp.partition)
                lane.abandon_commit()
                await asyncio.wait([final], timeout=ABANDON_WAIT_S)
            # Whatever did not commit is read again by the next owner: nothing is lost.
            if not final.done():
                lane.abandon_commit()  # the final commit's own, begun after the one cut short
                final.cancel()
            elif final.cancelled():
                pass  # abandoned above
            elif (error := final.exception()) is not None:
                log.warning("lane.final_commit_failed", partition=tp.partition, error=repr(error))
            elif (result := final.result()) is not None:
                self._account(result)
        dropped = await lane.cancel_pending()
        self._in_flight -= dropped
        await stop_quietly(lane.producer)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: Processor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._processor._close_lanes(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Called after every join, with an empty set too when the group has no partition
        # left for this member.
        self._processor.joined.set()
        self._processor._assigned(assigned)


def _summary(stats: ProcessorStats) -> dict[str, Any]:
    return {
        "committed": stats.committed,
        "enriched": stats.enriched,
        "dlq": stats.dlq,
        "credits": stats.credits,
        "transactions": stats.transactions,
    }
