"""Finishing pending leads exactly once: a fenced transactional producer per state partition.

A pending lead is finished (by its callback, or by the sweeper at its deadline) with one
Kafka transaction that holds its output (enriched lead or DLQ record) **and** the tombstone
of its ``clay/pending/<lead_id>`` key. The decision "is it still pending?" and that
transaction must not race anything else that finishes the same lead, in this process or
in another instance of the group. How:

* Every pending key lives on one state-topic partition ``p`` (``StateStore.partition_for``).
  Leads of ``p`` are finished only through the transactional id
  ``<group>.clay.<state topic>.<p>``, whichever instance does it.
* Before its first transaction, and again after any failure, a finisher starts a new
  producer with that id (``init_transactions``): the broker fences every older producer
  of the id and completes or aborts its open transaction. The finisher then reads the
  state topic up to partition ``p``'s high watermark (:meth:`StateStore.catch_up`), so
  its registry holds every tombstone committed under the id before it took over. Not
  merely its last stable offset: another producer's transaction still open there (the
  lane of a killed process, until its input partition is reassigned) holds that back,
  and tombstones committed after it would be unseen, their leads published again. The
  cost: a take-over waits for the transactions open on ``p`` at that moment to end.
* From then on, only this producer can commit under the id, and it applies its own
  tombstones to the registry as it commits: its view of ``p``'s pending leads is
  complete. If another instance takes the id over, our next commit fails with a fencing
  error, and we re-fence, catch up and decide again.
* Within a process, one task per partition commits batches in order, deciding each batch
  synchronously from the registry before it sends anything.

So two instances receiving the same lead's duplicate callbacks at the same moment publish
it once: the second to commit is either fenced (and, after catching up, sees the lead
finished) or took over before the first, which is then fenced. The cost of contention is
a producer re-initialisation (tens of milliseconds) per hand-over, which is why the
sweeper prefers the submitting instance (see :mod:`streamproc.clay.sweeper`).

Outputs Kafka refuses. aiokafka commits a transaction even when a record in it was
refused (over the topic's ``max.message.bytes``, a bad timestamp, a policy), so every
delivery is checked before the commit (:func:`~streamproc.kafka.client.send_all`). When an
output is refused, the transaction is aborted (nothing of it becomes visible, the lead is
still pending), the output is replaced by a DLQ record of class ``output_too_large`` or
``output_refused`` with the original bytes (cut to fit the DLQ topic if need be: its
``max.message.bytes`` is read from the broker the first time) and origin coordinates, and
it is committed again. Two facts of the idempotent producer shape
how: a refused batch leaves a gap in the producer's sequence numbers of its partition, so
every later record there fails with ``OutOfOrderSequenceNumber`` until a new producer is
initialised; and a refusal hits every record of the refused batch, so in a transaction of
many leads it does not say which output was too large. After a refusal the finisher
therefore takes a new producer and commits the rest of the batch one lead per transaction,
where a refusal names its output exactly. A DLQ record refused in its turn is raised like
any Kafka failure: the batch is retried, and its callers are told to come back later.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ConcurrentTransactions,
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
)

from streamproc.clay.config import ClayConfig
from streamproc.clay.outputs import dead_letter_record
from streamproc.clay.pending import PendingLead, PendingRegistry, Submission
from streamproc.errors import LeadError, OutputRefused, OutputTooLarge
from streamproc.kafka.client import (
    Refusal,
    max_request_bytes,
    send_all,
    stop_quietly,
    transaction,
    transactional_producer,
)
from streamproc.kafka.config import KafkaConnection
from streamproc.kafka.topics import max_message_bytes
from streamproc.logs import get_logger
from streamproc.records.outcome import OutRecord
from streamproc.state.store import StateStore

__all__ = [
    "Finish",
    "FinishJob",
    "FinishUnavailable",
    "Finished",
    "Finisher",
    "finisher_transactional_id",
]

log = get_logger(__name__)

#: Leads finished per transaction at most (a burst of callbacks, a sweep of a long outage).
MAX_BATCH = 500
#: Attempts of one batch when Kafka fails, before its callers are told to come back later.
MAX_ATTEMPTS = 4
_BACKOFF_S = 0.5
#: How long a batch may keep losing the transactional id to other instances. Contention is
#: not a failure: two instances taking callbacks of the same partition fence each other in
#: turns, and each fence aborts the other's open transaction. A fixed number of attempts
#: can run out in such a ping-pong (seen in CI: a 503 for a duplicate callback); a time
#: bound with jittered backoff breaks the symmetry, and stays under a callback client's
#: patience (the simulator's is 10 s) so that the caller hears 503 and retries.
CONTENTION_PATIENCE_S = 6.0
_CONTENTION_BACKOFF_S = 0.05
_CONTENTION_BACKOFF_MAX_S = 1.0
#: Errors that mean "another producer took the id over", not "Kafka is unwell".
_CONTENTION = (ProducerFenced, InvalidProducerEpoch, ConcurrentTransactions)

ProducerFactory = Callable[[str], AIOKafkaProducer]
#: The largest DLQ record the DLQ topic and the producer take, in bytes.
DlqLimit = Callable[[], Awaitable[int]]


def finisher_transactional_id(group_id: str, state_topic: str, partition: int) -> str:
    return f"{group_id}.clay.{state_topic}.{partition}"


class FinishUnavailable(Exception):
    """Kafka did not take the transaction; nothing was published, the lead is still pending."""


@dataclass(frozen=True, slots=True)
class Finished:
    """``lead`` was finished by this request (``published``), or was not pending (any more).

    ``replaced``: Kafka refused the output built for it, and a DLQ record of this class was
    published in its place.
    """

    published: bool
    lead: PendingLead | None = None
    replaced: LeadError | None = None


@dataclass(slots=True, eq=False)
class Finish:
    """A request to finish the submission ``(lead_id, correlation_id)``, and only that one:
    a callback or a deadline is about one submission, never about a later one of the same
    lead. ``build`` makes the output records from the pending submission; the tombstone is
    added here.
    """

    lead_id: str
    correlation_id: str
    build: Callable[[PendingLead], list[OutRecord]]
    future: asyncio.Future[Finished] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


#: Finishes one submission (:meth:`Finisher.finish`): what a callback or a deadline needs.
FinishJob: TypeAlias = Callable[[Finish], Awaitable[Finished]]


@dataclass(frozen=True, slots=True)
class _Swap:
    """A refused output's stand-in: its DLQ record, and the error it records."""

    error: LeadError
    record: OutRecord


#: Per request, the outputs (by index) replaced so far; kept across attempts of a batch.
_Swaps = dict[Finish, dict[int, _Swap]]


@dataclass(frozen=True, slots=True)
class _Part:
    """One submission's share of a transaction: its outputs and its tombstone."""

    job: Finish
    lead: PendingLead
    outputs: list[OutRecord]
    tombstone: OutRecord


class _ProducerSpent(Exception):
    """The broker refused records: the producer has a sequence gap and must be replaced."""


class _PartitionFinisher:
    """Owns transactional id ``tid`` in this process and commits the finishes of one partition."""

    def __init__(
        self,
        store: StateStore,
        registry: PendingRegistry,
        partition: int,
        tid: str,
        factory: ProducerFactory,
        *,
        dlq_topic: str,
        dlq_limit: DlqLimit,
        utcnow: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._registry = registry
        self.partition = partition
        self.tid = tid
        self._factory = factory
        self._dlq_topic = dlq_topic
        self._dlq_limit = dlq_limit
        self._utcnow = utcnow
        self._producer: AIOKafkaProducer | None = None
        self._queue: list[Finish] = []
        self._batch: list[Finish] = []
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"clay-finish-{partition}"
        )
        self.fencings = 0
        self.transactions = 0
        self.outputs_replaced = 0

    def put(self, job: Finish) -> None:
        self._queue.append(job)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._batch = batch
                try:
                    await self._commit(batch)
                except Exception as exc:  # a bug of ours must not stop every later finish
                    log.exception("clay.finish_internal_error", partition=self.partition)
                    _fail(batch, FinishUnavailable(repr(exc)))
                finally:
                    self._batch = []

    async def _commit(self, batch: list[Finish]) -> None:
        failures = 0  # Kafka failures: bounded by count
        fenced = 0  # lost the id to another instance: bounded by time
        started = time.monotonic()
        swaps: _Swaps = {}
        # One lead per transaction once a refusal was seen in this batch (see the module).
        isolate = False
        while True:
            try:
                if self._producer is None:
                    self._producer = await self._fence()
                await self._transact(self._producer, batch, swaps, isolate=isolate)
            except _ProducerSpent:
                # Not a failure: every round replaces an output or isolates the batch,
                # and each happens once per output.
                await self._drop_producer()
                isolate = True
                continue
            except (KafkaError, TimeoutError, OSError) as exc:
                contention = isinstance(exc, _CONTENTION)
                # Fenced: another instance took the id over (contention, or a restart);
                # expected in a group, so not a warning.
                (log.info if contention else log.warning)(
                    "clay.finish_failed",
                    partition=self.partition,
                    fenced=fenced,
                    failures=failures,
                    error=repr(exc),
                )
                await self._drop_producer()
                # The symptom of a refusal whose own answer was not seen.
                isolate = isolate or isinstance(exc, OutOfOrderSequenceNumber)
                if contention:
                    fenced += 1
                    given_up = time.monotonic() - started >= CONTENTION_PATIENCE_S
                    # Full jitter: two instances that fenced each other retry apart.
                    delay = random.uniform(
                        0, min(_CONTENTION_BACKOFF_MAX_S, _CONTENTION_BACKOFF_S * 2**fenced)
                    )
                else:
                    failures += 1
                    given_up = failures >= MAX_ATTEMPTS
                    delay = _BACKOFF_S * failures
                if given_up:
                    _fail(batch, FinishUnavailable(repr(exc)))
                    return
                await asyncio.sleep(delay)
                continue
            return

    async def _fence(self) -> AIOKafkaProducer:
        producer = self._factory(self.tid)
        try:
            await producer.start()  # init_transactions: fences every older producer of tid
            await self._store.catch_up([self.partition])
        except BaseException:
            await stop_quietly(producer)
            raise
        self.fencings += 1
        log.info("clay.finisher_fenced", partition=self.partition, transactional_id=self.tid)
        return producer

    async def _transact(
        self, producer: AIOKafkaProducer, batch: list[Finish], swaps: _Swaps, *, isolate: bool
    ) -> None:
        """Finish the batch's requests not finished yet: one transaction for all of them,
        or (``isolate``) one per request. Each request's future is set once its
        transaction committed; those that are not pending, at the end."""
        # Decide the whole batch before the first await. The decisions hold while we hold
        # the transactional id: nothing else commits tombstones of this partition, and an
        # instance that takes the id over makes our next commit fail (decided again then).
        parts: list[_Part] = []
        not_pending: list[Finish] = []
        taken: set[Submission] = set()
        for job in batch:
            if job.future.done():  # failed to build, or committed, on an earlier attempt
                continue
            lead = self._registry.get(job.lead_id, job.correlation_id)
            if lead is None or lead.submission in taken:
                not_pending.append(job)
                continue
            try:
                built = job.build(lead)
            except Exception as exc:
                log.exception("clay.finish_build_failed", lead_id=lead.lead_id)
                job.future.set_exception(FinishUnavailable(repr(exc)))
                continue
            taken.add(lead.submission)
            replaced = swaps.get(job, {})
            outputs = [replaced[i].record if i in replaced else out for i, out in enumerate(built)]
            key = self._registry.state_key(lead.lead_id, lead.correlation_id)
            parts.append(_Part(job, lead, outputs, self._store.record(key, None)))
        groups = [[part] for part in parts] if isolate else [parts] if parts else []
        for group in groups:
            await self._publish(producer, group, swaps)
            self.transactions += 1
            for part in group:
                self._registry.completed(part.lead)
                replaced = swaps.get(part.job, {})
                error = next((swap.error for swap in replaced.values()), None)
                part.job.future.set_result(Finished(True, part.lead, error))
        for job in not_pending:
            if not job.future.done():
                job.future.set_result(Finished(False))

    async def _publish(self, producer: AIOKafkaProducer, group: list[_Part], swaps: _Swaps) -> None:
        """Commit the group's outputs and tombstones in one transaction. When Kafka refuses
        any, abort it and raise :class:`_ProducerSpent`; if the group is one request, the
        refusal names its output, whose DLQ record goes into ``swaps`` first."""
        records: list[OutRecord] = []
        places: list[tuple[_Part, int | None]] = []
        for part in group:
            records += part.outputs
            places += [(part, index) for index in range(len(part.outputs))]
            records.append(part.tombstone)
            places.append((part, None))
        refusals: list[Refusal] = []
        try:
            async with transaction(producer):
                refusals = await send_all(producer, records)
                if refusals:
                    raise _ProducerSpent()  # aborts: none of it becomes visible
        except _ProducerSpent:
            # In a larger group a refused batch may hold other leads' outputs too: the
            # group is tried again one request per transaction.
            if len(group) == 1 and refusals:
                limit = await self._dlq_limit()
                for refusal in refusals:
                    part, index = places[refusal.index]
                    self._replace(part, index, refusal, swaps, limit)
            raise

    def _replace(
        self, part: _Part, index: int | None, refusal: Refusal, swaps: _Swaps, limit: int
    ) -> None:
        """Put the DLQ record of a refused output in its place; raise the refusal when what
        was refused has no smaller stand-in (a tombstone, or a DLQ record that replaced an
        output already)."""
        replaced = swaps.setdefault(part.job, {})
        if index is None or index in replaced:
            log.warning(
                "clay.replacement_refused",
                partition=self.partition,
                lead_id=part.lead.lead_id,
                error=repr(refusal.error),
            )
            raise refusal.error
        refused = part.outputs[index]
        size = len(refused.value or b"") + len(refused.key or b"")
        message = (
            f"{refused.topic} did not take the lead's output ({size} bytes): "
            f"{type(refusal.error).__name__}; the original is at its origin coordinates"
        )
        error: LeadError = OutputTooLarge(message) if refusal.too_large else OutputRefused(message)
        record = dead_letter_record(
            self._dlq_topic,
            part.lead,
            error.error_class,
            message,
            retriable=error.retriable,
            now=self._utcnow(),
            max_bytes=limit,
        )
        replaced[index] = _Swap(error, record)
        self.outputs_replaced += 1
        log.warning(
            "clay.output_refused",
            lead_id=part.lead.lead_id,
            topic=refused.topic,
            bytes=size,
            error_class=error.error_class.value,
            error=repr(refusal.error),
        )

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_quietly(producer)

    async def stop(self, grace_s: float) -> None:
        """Let the batch being committed finish (up to ``grace_s``), then stop; every request
        not decided by then is told :class:`FinishUnavailable` (its lead stays pending)."""
        queued, self._queue = self._queue, []
        _fail(queued, FinishUnavailable("shutting down"))
        if self._batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(_all_done(self._batch)), grace_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        _fail(self._batch + self._queue, FinishUnavailable("shutting down"))
        await self._drop_producer()


def _fail(jobs: list[Finish], exc: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(exc)


async def _all_done(jobs: list[Finish]) -> None:
    await asyncio.wait([job.future for job in jobs])


class Finisher:
    """Finishes pending leads through one :class:`_PartitionFinisher` per state partition."""

    def __init__(
        self,
        config: ClayConfig,
        kafka: KafkaConnection,
        store: StateStore,
        registry: PendingRegistry,
        *,
        group_id: str,
        factory: ProducerFactory | None = None,
        dlq_max_bytes: int | None = None,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``group_id``: the consumer group's, which names the finishers' transactional ids
        (with the store's topic). ``dlq_max_bytes``: the largest DLQ record; None: read from
        the broker when a refused output first needs its DLQ record."""
        self._config = config
        self._kafka = kafka
        self._group_id = group_id
        self._store = store
        self._registry = registry
        self._factory = factory or (lambda tid: transactional_producer(self._kafka, tid))
        self._dlq_max_bytes = dlq_max_bytes
        self._utcnow = utcnow
        self._partitions: dict[int, _PartitionFinisher] = {}
        self._closed = False

    def _for(self, partition: int) -> _PartitionFinisher:
        finisher = self._partitions.get(partition)
        if finisher is None:
            tid = finisher_transactional_id(self._group_id, self._store.topic, partition)
            finisher = _PartitionFinisher(
                self._store,
                self._registry,
                partition,
                tid,
                self._factory,
                dlq_topic=self._config.topic_dlq,
                dlq_limit=self._dlq_limit,
                utcnow=self._utcnow,
            )
            self._partitions[partition] = finisher
        return finisher

    async def _dlq_limit(self) -> int:
        """The smaller of the DLQ topic's ``max.message.bytes`` and the producer's
        ``max_request_size``; asked once, and only when an output was refused (rare)."""
        if self._dlq_max_bytes is None:
            topic = self._config.topic_dlq
            limits = await max_message_bytes(self._kafka, [topic])
            self._dlq_max_bytes = min(limits[topic], max_request_bytes(self._kafka))
        return self._dlq_max_bytes

    async def finish(self, job: Finish) -> Finished:
        """Finish a lead; raises :class:`FinishUnavailable` when Kafka does not take it."""
        if self._closed:
            raise FinishUnavailable("shutting down")
        key = self._registry.state_key(job.lead_id, job.correlation_id)
        self._for(self._store.partition_for(key)).put(job)
        return await asyncio.shield(job.future)

    def stats(self) -> dict[str, Any]:
        return {
            "fencings": sum(f.fencings for f in self._partitions.values()),
            "transactions": sum(f.transactions for f in self._partitions.values()),
            "outputs_replaced": sum(f.outputs_replaced for f in self._partitions.values()),
        }

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking requests, let transactions under way finish (up to ``grace_s``)."""
        self._closed = True
        finishers = list(self._partitions.values())
        await asyncio.gather(*(finisher.stop(grace_s) for finisher in finishers))
        self._partitions.clear()
