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
  state topic up to partition ``p``'s last stable offset (:meth:`StateStore.catch_up`), so
  its registry holds every tombstone committed under the id before it took over.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ConcurrentTransactions,
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
)

from streamproc.clay.pending import PendingLead, PendingRegistry, Submission
from streamproc.kafka.client import (
    send_all,
    stop_quietly,
    transaction,
    transactional_producer,
)
from streamproc.logs import get_logger
from streamproc.processing.outcome import OutRecord
from streamproc.settings import Settings
from streamproc.state.store import StateStore

__all__ = ["Finish", "FinishUnavailable", "Finished", "Finisher", "finisher_transactional_id"]

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


def finisher_transactional_id(group_id: str, state_topic: str, partition: int) -> str:
    return f"{group_id}.clay.{state_topic}.{partition}"


class FinishUnavailable(Exception):
    """Kafka did not take the transaction; nothing was published, the lead is still pending."""


@dataclass(frozen=True, slots=True)
class Finished:
    """``lead`` was finished by this request (``published``), or was not pending (any more)."""

    published: bool
    lead: PendingLead | None = None


@dataclass(slots=True)
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


class _PartitionFinisher:
    """Owns transactional id ``tid`` in this process and commits the finishes of one partition."""

    def __init__(
        self,
        store: StateStore,
        registry: PendingRegistry,
        partition: int,
        tid: str,
        factory: ProducerFactory,
    ) -> None:
        self._store = store
        self._registry = registry
        self.partition = partition
        self.tid = tid
        self._factory = factory
        self._producer: AIOKafkaProducer | None = None
        self._queue: list[Finish] = []
        self._batch: list[Finish] = []
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"clay-finish-{partition}"
        )
        self.fencings = 0
        self.transactions = 0

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
        while True:
            try:
                if self._producer is None:
                    self._producer = await self._fence()
                decided = await self._transact(self._producer, batch)
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
            for job, lead in decided:
                if lead is not None:
                    self._registry.completed(lead)
                if not job.future.done():
                    job.future.set_result(Finished(lead is not None, lead))
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
        self, producer: AIOKafkaProducer, batch: list[Finish]
    ) -> list[tuple[Finish, PendingLead | None]]:
        # Decide the whole batch before the first await: nothing can change the registry
        # in between, and nothing else commits tombstones of this partition meanwhile.
        decided: list[tuple[Finish, PendingLead | None]] = []
        records: list[OutRecord] = []
        taken: set[Submission] = set()
        for job in batch:
            if job.future.done():  # failed to build on an earlier attempt
                continue
            lead = self._registry.get(job.lead_id, job.correlation_id)
            if lead is None or lead.submission in taken:
                decided.append((job, None))
                continue
            try:
                built = job.build(lead)
            except Exception as exc:
                log.exception("clay.finish_build_failed", lead_id=lead.lead_id)
                job.future.set_exception(FinishUnavailable(repr(exc)))
                continue
            taken.add(lead.submission)
            decided.append((job, lead))
            records += built
            key = self._registry.state_key(lead.lead_id, lead.correlation_id)
            records.append(self._store.record(key, None))
        if not records:
            return decided
        async with transaction(producer):
            await send_all(producer, records)
        self.transactions += 1
        return decided

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
        settings: Settings,
        store: StateStore,
        registry: PendingRegistry,
        *,
        factory: ProducerFactory | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._factory = factory or (lambda tid: transactional_producer(settings, tid))
        self._partitions: dict[int, _PartitionFinisher] = {}
        self._closed = False

    def _for(self, partition: int) -> _PartitionFinisher:
        finisher = self._partitions.get(partition)
        if finisher is None:
            s = self._settings
            tid = finisher_transactional_id(s.group_id, s.topic_state, partition)
            finisher = _PartitionFinisher(
                self._store, self._registry, partition, tid, self._factory
            )
            self._partitions[partition] = finisher
        return finisher

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
        }

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking requests, let transactions under way finish (up to ``grace_s``)."""
        self._closed = True
        finishers = list(self._partitions.values())
        await asyncio.gather(*(finisher.stop(grace_s) for finisher in finishers))
        self._partitions.clear()
