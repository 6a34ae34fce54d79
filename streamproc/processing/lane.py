"""A partition's lane: the ordered window of leads in flight and its transactional producer.

Leads of one partition are processed concurrently but published in offset order: the
lane commits the longest *done prefix* of its window in one Kafka transaction, with the
consumed offset. One transactional producer per input partition
(``transactional.id = <group>.<topic>.<partition>``) is how fencing works without KIP-447,
which aiokafka lacks: whoever is assigned the partition next starts a producer with the same
id, and the broker fences the previous owner's producer, aborting its open transaction.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from streamproc import tracing
from streamproc.errors import PartitionSuperseded
from streamproc.kafka.client import Refusal, send_all, stop_quietly, transaction
from streamproc.logs import get_logger
from streamproc.processing.backoff import Backoff
from streamproc.processing.handler import RawRecord
from streamproc.processing.publication import Publication, record_bytes
from streamproc.records.outcome import Outcome, OutRecord

__all__ = ["CommitResult", "CommitTimedOut", "PartitionLane", "RefusedTooOften", "transactional_id"]

log = get_logger(__name__)

#: Refusal rounds a commit may take beyond two per lead (one to find the lead among a
#: refused batch, one to send its DLQ record): room for a DLQ record refused for its size
#: while the learnt limit halves down to the topic's real one.
EXTRA_REFUSAL_ROUNDS = 16


def transactional_id(group_id: str, tp: TopicPartition) -> str:
    return f"{group_id}.{tp.topic}.{tp.partition}"


@dataclass(slots=True)
class _Slot:
    record: RawRecord
    task: asyncio.Task[Outcome]


@dataclass(frozen=True, slots=True)
class CommitResult:
    outcomes: list[tuple[RawRecord, Outcome]]
    next_offset: int


class _Refused(Exception):
    """Raised inside a transaction to abort it: records in it were refused."""

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__(refusals)
        self.refusals = refusals


class CommitTimedOut(Exception):
    """A commit with no outcome by the transaction timeout was cut short; whether the
    broker committed it is learnt from the group's offset by the next :meth:`restart`."""


class RefusedTooOften(Exception):
    """A commit's outputs were refused round after round beyond the bound: the lane gives
    up this commit (nothing of it is published) instead of starting producers for ever."""


class PartitionLane:
    """Owns one assigned partition: its in-flight window, its producer, its commits.

    ``publication`` keeps each output within its topic's limits and says how a lead whose
    output the broker refused leaves instead; ``new_producer`` starts a producer with this
    lane's transactional id (a refused batch leaves the old one unusable);
    ``read_committed`` reads the group's committed offset of the partition, which says,
    once a new producer has fenced the old one, what the old one really committed;
    ``commit_timeout_s``: a commit with no outcome by then raises :class:`CommitTimedOut`.
    """

    def __init__(
        self,
        tp: TopicPartition,
        producer: AIOKafkaProducer,
        group_id: str,
        committed_offset: int,
        *,
        publication: Publication | None = None,
        new_producer: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
        read_committed: Callable[[], Awaitable[int]] | None = None,
        backoff: Backoff | None = None,
        commit_timeout_s: float | None = None,
    ) -> None:
        self.tp = tp
        self.producer = producer
        self.committed_offset = committed_offset
        self._group_id = group_id
        self._publication = publication
        self._new_producer = new_producer
        self._read_committed = read_committed
        self._commit_timeout_s = commit_timeout_s
        #: Failed commits in a row and when to try again: the window is kept meanwhile.
        self.backoff = backoff or Backoff(initial_s=1.0, max_s=60.0)
        self._window: deque[_Slot] = deque()
        self.commit_lock = asyncio.Lock()
        self._committing: asyncio.Future[CommitResult | None] | None = None
        self.paused = False
        #: Bumped on every reset, so the fetch loop can tell records fetched before it.
        self.generation = 0
        #: The offset the consumer should read next for this lane.
        self.position = committed_offset

    def __len__(self) -> int:
        return len(self._window)

    def submit(
        self, record: RawRecord, process: Callable[[RawRecord], Coroutine[Any, Any, Outcome]]
    ) -> None:
        """Start processing ``record``; the fetch loop keeps the window within its limit."""
        name = f"lead-{self.tp.partition}-{record.offset}"
        task = asyncio.get_running_loop().create_task(process(record), name=name)
        self._window.append(_Slot(record, task))
        self.position = record.offset + 1

    def done_prefix(self) -> list[_Slot]:
        prefix = []
        for slot in self._window:
            # A cancelled lead (released from a hold at shutdown) has no outcome: the prefix
            # ends before it and it is read again from the committed offset.
            if not slot.task.done() or slot.task.cancelled():
                break
            prefix.append(slot)
        return prefix

    async def commit(self) -> CommitResult | None:
        """Publish the done prefix and its offset in one transaction.

        Raises the producer's error on failure; the caller then resets the lane. Not
        cancellable half-way: once ``commit_transaction`` is sent the broker may commit
        whatever happens to us, so a cancelled caller waits for the outcome and the window
        is updated to match (a window left behind would publish the prefix again).
        """
        async with self.commit_lock:
            work = self._commit_prefix()
            if tracing.enabled:  # a commit span linked to its leads' (docs/tracing.md)
                prefix = lambda: [slot.record for slot in self.done_prefix()]  # noqa: E731
                work = tracing.traced_commit(self.tp.topic, self.tp.partition, prefix, work)
            committing = self._committing = asyncio.ensure_future(work)
            loop = asyncio.get_running_loop()
            timeout_s = self._commit_timeout_s
            deadline = None if timeout_s is None else loop.time() + timeout_s
            cancelled = timed_out = False
            while not committing.done():
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0 and not timed_out:
                    # No answer by the transaction timeout: the broker has aborted it or
                    # will, and aiokafka may never say so (a client whose metadata task
                    # died waits for ever). Cut it short; the caller's restart fences the
                    # producer and reads the group's offset, which says what was committed.
                    timed_out = committing.cancel()
                try:
                    # wait(), unlike wait_for(), never cancels the commit when we are.
                    await asyncio.wait([committing], timeout=None if timed_out else remaining)
                except asyncio.CancelledError:
                    cancelled = True
            if cancelled:
                if not committing.cancelled() and committing.exception() is None:
                    committing.result()
                raise asyncio.CancelledError
            if timed_out and committing.cancelled():
                raise CommitTimedOut(
                    f"commit of partition {self.tp.partition} had no answer in "
                    f"{self._commit_timeout_s:g} s"
                )
            return committing.result()

    def abandon_commit(self) -> None:
        """Cut short the commit under way (a shutdown past its grace): its transaction is
        aborted, or was committed whole by the broker; the next owner of the partition reads
        from whichever offset that left. The caller of :meth:`commit` gets CancelledError."""
        if self._committing is not None and not self._committing.done():
            self._committing.cancel()

    async def _commit_prefix(self) -> CommitResult | None:
        prefix = self.done_prefix()
        if not prefix:
            return None
        outcomes = [self._fit(slot.record, slot.task.result()) for slot in prefix]
        next_offset = prefix[-1].record.offset + 1
        one_at_a_time = False
        rounds = 0
        max_rounds = 2 * len(prefix) + EXTRA_REFUSAL_ROUNDS
        while True:
            records: list[OutRecord] = []
            owners: list[int] = []
            for owner, outcome in enumerate(outcomes):
                records += outcome.records
                owners += [owner] * len(outcome.records)
            try:
                async with transaction(self.producer):
                    refused = await send_all(self.producer, records, one_at_a_time=one_at_a_time)
                    if refused:
                        raise _Refused(refused)
                    await self.producer.send_offsets_to_transaction(
                        {self.tp: next_offset}, self._group_id
                    )
            except _Refused as exc:
                rounds += 1
                log.warning(
                    "lane.output_refused",
                    partition=self.tp.partition,
                    round=rounds,
                    max_rounds=max_rounds,
                    refused=len(exc.refusals),
                    error=repr(exc.refusals[0].error),
                )
                # A refused batch leaves the producer unusable whatever we do next.
                await self._replace_producer()
                if rounds >= max_rounds:
                    raise RefusedTooOften(
                        f"outputs of partition {self.tp.partition} refused in {rounds} rounds "
                        f"in a row (last: {exc.refusals[0].error!r})"
                    ) from None
                alone = one_at_a_time or len(exc.refusals) == 1
                culprits = self._culprits(exc.refusals, records, alone=alone)
                # Several records of one batch refused together: send again one record per
                # batch to learn which one it was. Each round settles at least one lead.
                one_at_a_time = not culprits
                for refusal in culprits:
                    owner = owners[refusal.index]
                    outcomes[owner] = self._refused(
                        prefix[owner].record,
                        outcomes[owner],
                        records[refusal.index],
                        refusal,
                        alone=alone,
                    )
                continue
            break
        for _ in prefix:
            self._window.popleft()
        self.committed_offset = next_offset
        return CommitResult(
            list(zip((slot.record for slot in prefix), outcomes, strict=True)), next_offset
        )

    def _fit(self, record: RawRecord, outcome: Outcome) -> Outcome:
        return outcome if self._publication is None else self._publication.fit(record, outcome)

    def _culprits(
        self, refusals: list[Refusal], records: list[OutRecord], *, alone: bool
    ) -> list[Refusal]:
        """The refusals that name the record at fault (see ``send_all``)."""
        if alone or len(refusals) == 1:
            return refusals[:1]
        if self._publication is None:
            return []
        publication = self._publication
        return [
            refusal
            for refusal in refusals
            if refusal.too_large
            and record_bytes(records[refusal.index])
            > publication.limit(records[refusal.index].topic)
        ]

    def _refused(
        self, record: RawRecord, outcome: Outcome, out: OutRecord, refusal: Refusal, *, alone: bool
    ) -> Outcome:
        if self._publication is None:
            raise refusal.error
        return self._publication.refused(
            record, outcome, out, repr(refusal.error), too_large=refusal.too_large, alone=alone
        )

    async def restart(self) -> CommitResult | None:
        """After a failed commit, before the next: a new producer, then the group's offset.

        The new producer fences the old one, so the failed transaction is settled on the
        broker (aborted, or committed if its commit had been sent). The committed offset
        then says which: a prefix of the window it covers was published and is dropped
        (returned, to be counted); anything else means another owner committed this
        partition and raises :class:`PartitionSuperseded`. The finished leads of the
        window are kept either way: their outcomes are published by the next commit,
        never bought again.
        """
        async with self.commit_lock:
            await self._replace_producer(check=False)
            if self._read_committed is None:
                return None
            committed = await self._read_committed()
            if committed == self.committed_offset:
                return None
            prefix = self.done_prefix()
            ends = [slot.record.offset + 1 for slot in prefix]
            if committed < self.committed_offset or committed not in ends:
                raise PartitionSuperseded(
                    f"{self.tp.topic}[{self.tp.partition}]: the group's committed offset is "
                    f"{committed}, this lane committed up to {self.committed_offset}"
                )
            done = prefix[: ends.index(committed) + 1]
            for _ in done:
                self._window.popleft()
            self.committed_offset = committed
            outcomes = [(slot.record, self._fit(slot.record, slot.task.result())) for slot in done]
            return CommitResult(outcomes, committed)

    async def _replace_producer(self, *, check: bool = True) -> None:
        """A new producer for this lane's transactional id, fencing the current one.

        ``check``: the lane's own transaction was aborted, so the group's offset must still
        be the lane's; if it moved, another process owns the partition (this lane is a
        zombie that has just fenced it) and nothing of this window may be published.
        """
        if self._new_producer is None:
            return
        await stop_quietly(self.producer)
        self.producer = await self._new_producer()
        if check and self._read_committed is not None:
            committed = await self._read_committed()
            if committed != self.committed_offset:
                raise PartitionSuperseded(
                    f"{self.tp.topic}[{self.tp.partition}]: the group's committed offset "
                    f"moved to {committed} past this lane's {self.committed_offset}"
                )

    async def cancel_pending(self) -> int:
        """Cancel every lead not yet committed; they will be read again from the offset."""
        tasks = [slot.task for slot in self._window]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._window.clear()
        self.position = self.committed_offset
        self.generation += 1
        return len(tasks)

    def pending(self) -> list[asyncio.Task[Outcome]]:
        """The lead tasks of the window not done yet."""
        return [slot.task for slot in self._window if not slot.task.done()]

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every lead in the window is done; False on timeout."""
        tasks = [slot.task for slot in self._window if not slot.task.done()]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        return not pending
