"""``streamproc.state``: restore it completely, then tail it, and append to it.

Every process reads *every* partition of the state topic (``read_committed``), first to
the end offsets it saw at start (the restore, before the first lead is processed), then
continuously, so that budget claims, breaker trips and cache entries written by any
instance of the group reach all of them.

Records are JSON objects keyed by a path (``budget/<day>/<claim>/<event>``,
``breaker/<name>``, ``cache/<domain>``). Compaction keeps the latest value per key, so keys
that must all survive (budget events) are unique, and keys where only the latest matters
(breaker, cache entries) are stable.

Budget events go to partition 0, written by a plain idempotent producer (``acks=all``,
outside any transaction): a claim is a journal entry that must be durable *before* the
provider is called, whatever happens to the lead's transaction afterwards. Every other key
goes to partitions 1..N-1 so that the short-lived lead transactions never hold back the
last-stable offset of the budget partition. Records appended here reach the log in the
order of the :meth:`StateStore.append` calls: the budget's settles and tombstones rely on
it (a writer's newest running total must be its last record).

Budget keys stay few (see :mod:`streamproc.resilience.claims`): a claim's records are
tombstoned once it is over, and a day's once it is the day before yesterday, so after
compaction a restore reads the open claims and two days' totals, whatever the age of the
deployment. The restore can be interrupted (``start(stop=...)``) by a stop signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import zlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streamproc.errors import KafkaSetupError
from streamproc.kafka.client import connection_kwargs, partitions_of, start_client, stop_quietly
from streamproc.kafka.client import consumer as make_consumer
from streamproc.kafka.config import KafkaConnection
from streamproc.logs import get_logger
from streamproc.records.outcome import OutRecord

__all__ = ["BUDGET_PARTITION", "StateListener", "StateStore"]

log = get_logger(__name__)

BUDGET_PARTITION = 0
#: Records applied per step of the restore: a stop signal is seen between steps, and a
#: thousand records take milliseconds to apply.
_RESTORE_BATCH = 1_000

#: Called for every state record in log order: (key, value or None for a tombstone,
#: partition, offset).
StateListener = Callable[[str, dict[str, Any] | None, int, int], None]


class StateStore:
    """The state topic for one process: restores it (every partition, to the end offsets
    seen at start), then tails it, handing each record to ``listener``; appends records in
    call order. Restore first, then serve: :meth:`start` returns once restored.
    """

    def __init__(self, kafka: KafkaConnection, topic: str, listener: StateListener) -> None:
        """``topic``: the state topic (``topic_state``)."""
        self._kafka = kafka
        self._topic = topic
        self._listener = listener
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions = 1
        self._applied: dict[int, int] = {}  # partition -> next offset to apply
        self._progress = asyncio.Condition()
        self._tail: asyncio.Task[None] | None = None
        self.restored = asyncio.Event()
        self.records_restored = 0
        # Appends not yet handed to the producer, in call order, and the one task that hands
        # them over (one task, so the producer sees them in that order).
        self._outbox: deque[tuple[str, bytes | None, int, asyncio.Future[tuple[int, int]]]] = (
            deque()
        )
        self._sender: asyncio.Task[None] | None = None
        self._written_ends: AIOKafkaConsumer | None = None
        self._written_lock = asyncio.Lock()
        self._stopped = False

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def partitions(self) -> int:
        return self._partitions

    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Connect, restore the whole topic to its current end, then tail it.

        A ``stop`` set before the restore is complete (a SIGTERM at start-up) ends it at
        once: returns False, with ``restored`` not set and nothing tailed. The caller still
        calls :meth:`stop`.
        """
        self._producer = AIOKafkaProducer(
            **connection_kwargs(self._kafka), acks="all", enable_idempotence=True, linger_ms=1
        )
        self._consumer = make_consumer(self._kafka, group_id=None, fetch_max_wait_ms=20)
        try:
            await start_client(self._kafka, self._producer)
            await start_client(self._kafka, self._consumer)
        except KafkaSetupError:
            await self.stop()
            raise
        partitions = await partitions_of(self._consumer, self._topic)
        if not partitions:
            await self.stop()
            raise KafkaSetupError(
                f"state topic {self._topic} does not exist: run `streamproc topics create`"
            )
        self._partitions = len(partitions)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        self._applied = {tp.partition: 0 for tp in tps}
        started = asyncio.get_running_loop().time()
        if not await _unless_stopped(self._read_until(ends, stop), stop):
            log.info("state.restore_interrupted", records=self.records_restored)
            return False
        self.restored.set()
        log.info(
            "state.restored",
            records=self.records_restored,
            partitions=len(tps),
            seconds=round(asyncio.get_running_loop().time() - started, 3),
        )
        self._tail = asyncio.get_running_loop().create_task(self._tail_loop(), name="state-tail")
        return True

    async def stop(self) -> None:
        self._stopped = True
        async with self._progress:  # a wait for a record ends: none will be applied now
            self._progress.notify_all()
        for task in (self._tail, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        while self._outbox:
            self._outbox.popleft()[3].cancel()
        # A catch_up asking its end-offsets client now finishes that first: stopped here,
        # never under a request nor started after.
        async with self._written_lock:
            written, self._written_ends = self._written_ends, None
        for client in (self._consumer, self._producer, written):
            if client is not None:
                await stop_quietly(client)

    async def _read_until(
        self, ends: dict[TopicPartition, int], stop: asyncio.Event | None = None
    ) -> bool:
        """Apply every record before ``ends``; False when ``stop`` was set first."""
        assert self._consumer is not None
        while True:
            if stop is not None and stop.is_set():
                return False
            behind = [tp for tp, end in ends.items() if await self._consumer.position(tp) < end]
            if not behind:
                return True
            batch = await self._consumer.getmany(
                *behind, timeout_ms=200, max_records=_RESTORE_BATCH
            )
            count = await self._apply(batch)
            self.records_restored += count
            # Fetched records can come back without a pause: yield, so that a stop signal
            # is seen between steps of a long restore.
            await asyncio.sleep(0)

    async def _tail_loop(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=100)
            except KafkaError as exc:
                log.warning("state.tail_error", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            await self._apply(batch)
            # Control records (transaction markers) move the position without a record:
            # count them as applied so waiters for an offset are released.
            for tp in self._consumer.assignment():
                position = await self._consumer.position(tp)
                if position > self._applied.get(tp.partition, 0):
                    self._applied[tp.partition] = position
            async with self._progress:
                self._progress.notify_all()

    async def _apply(self, batch: dict[TopicPartition, list[Any]]) -> int:
        count = 0
        for tp, messages in batch.items():
            for m in messages:
                key = (m.key or b"").decode("utf-8", errors="replace")
                value: dict[str, Any] | None = None
                if m.value is not None:
                    try:
                        decoded = orjson.loads(m.value)
                        value = decoded if isinstance(decoded, dict) else None
                    except orjson.JSONDecodeError:
                        log.warning("state.bad_record", key=key, offset=m.offset)
                        continue
                self._listener(key, value, tp.partition, m.offset)
                self._applied[tp.partition] = m.offset + 1
                count += 1
        return count

    async def wait_applied(self, partition: int, offset: int, timeout_s: float = 30.0) -> None:
        """Wait until the record at ``offset`` of ``partition`` was applied by the listener;
        raises at once when the store stops meanwhile (nothing will be applied then)."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(
                lambda: self._stopped or self._applied.get(partition, 0) > offset
            )
        if self._applied.get(partition, 0) <= offset:
            raise KafkaSetupError(f"state store of {self._topic} stopped")

    async def catch_up(self, partitions: list[int], timeout_s: float = 30.0) -> None:
        """Wait until every record committed on ``partitions`` *so far* has been applied.

        After a transactional producer fenced its predecessor, this is how its owner sees
        everything the predecessor committed before acting on it. "So far" is the high
        watermark now, not the last stable offset: a transaction of another producer still
        open (a lane of a killed process, until its partition is reassigned) holds the
        last stable offset back, and what the predecessor committed after it lies beyond
        (a Clay lead finished there was published a second time after a SIGKILL). A
        read-committed consumer passes an offset only once every transaction before it is
        decided, so this also waits for those.
        """
        assert self._consumer is not None, "StateStore.start() first"
        tps = [TopicPartition(self._topic, p) for p in partitions]
        ends = await self._written_ends_of(tps)
        for tp, end in ends.items():
            if end > 0:
                await self.wait_applied(tp.partition, end - 1, timeout_s)

    async def _written_ends_of(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each partition's log ends, decided or not (``read_uncommitted``), from a
        client that reads no records, started the first time :meth:`catch_up` needs it. Its
        failure to start is a Kafka error like any other of the caller's (retried). Under
        the lock :meth:`stop` takes, so the client is never stopped under a request (which
        then waited out aiokafka's 40 s request timeout) nor started after the stop."""
        async with self._written_lock:
            if self._stopped:
                raise KafkaSetupError(f"state store of {self._topic} stopped")
            if self._written_ends is None:
                client = AIOKafkaConsumer(
                    **connection_kwargs(self._kafka),
                    group_id=None,
                    enable_auto_commit=False,
                    isolation_level="read_uncommitted",
                )
                try:
                    await client.start()
                except BaseException:
                    await stop_quietly(client)
                    raise
                self._written_ends = client
            ends: dict[TopicPartition, int] = await self._written_ends.end_offsets(tps)
            return ends

    def partition_for(self, key: str) -> int:
        """Budget keys on partition 0; the rest spread over the other partitions."""
        if key.startswith("budget/") or self._partitions == 1:
            return BUDGET_PARTITION
        return 1 + zlib.crc32(key.encode()) % (self._partitions - 1)

    def append(self, key: str, value: dict[str, Any] | None) -> asyncio.Future[tuple[int, int]]:
        """Write one record now, outside any transaction; resolves to (partition, offset).

        Records reach the log in the order of the calls, whenever (or whether) the returned
        future is awaited: the order is fixed here, synchronously.
        """
        assert self._producer is not None, "StateStore.start() first"
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, int]] = loop.create_future()
        payload = None if value is None else orjson.dumps(value)
        self._outbox.append((key, payload, self.partition_for(key), done))
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_loop(), name="state-sender")
        return done

    async def _send_loop(self) -> None:
        assert self._producer is not None
        while self._outbox:
            key, payload, partition, done = self._outbox.popleft()
            # Sent even when its caller stopped waiting: a later record may depend on it.
            try:
                delivery = await self._producer.send(
                    self._topic, value=payload, key=key.encode(), partition=partition
                )
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
                continue
            delivery.add_done_callback(functools.partial(_deliver, done=done, partition=partition))

    def record(self, key: str, value: dict[str, Any] | None) -> OutRecord:
        """A state record to write inside a lead's transaction."""
        payload = None if value is None else orjson.dumps(value)
        return OutRecord(self._topic, key.encode(), payload, [], self.partition_for(key))


def _deliver(
    delivery: asyncio.Future[Any], *, done: asyncio.Future[tuple[int, int]], partition: int
) -> None:
    if done.done():
        return
    if delivery.cancelled():
        done.cancel()
    elif (exc := delivery.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result((partition, int(delivery.result().offset)))


async def _unless_stopped(work: Coroutine[Any, Any, bool], stop: asyncio.Event | None) -> bool:
    """``work``'s answer, or False (and ``work`` cancelled) if ``stop`` is set first: it
    may be waiting for the broker, not only between steps."""
    task: asyncio.Task[bool] = asyncio.ensure_future(work)
    if stop is None:
        return await task
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return not task.cancelled() and task.result()
