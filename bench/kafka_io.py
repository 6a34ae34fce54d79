"""The benchmark's own Kafka work: the broker, fresh topics, producing leads, reading results.

Timestamps: the benchmark creates its lead topics with ``message.timestamp.type =
LogAppendTime``, so every timestamp it reads is the broker's clock at the moment the
record was appended to the log. For an input lead that is "when it was produced"; for an
output record it is when the processor's producer flushed it inside its transaction,
which precedes that transaction's commit marker by the commit's last round trip
(``AddOffsetsToTxn`` + ``TxnOffsetCommit`` + ``EndTxn``; see ``commit_ms`` of the
``kafka-ceiling`` row for its size on the run's machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

__all__ = [
    "LOG_APPEND_TIME",
    "Broker",
    "Lead",
    "Read",
    "Tail",
    "create_topics",
    "delete_topics",
    "lead_records",
    "produce_bulk",
    "produce_paced",
    "read_topic",
    "wait_for_count",
]

ROOT = Path(__file__).resolve().parents[1]

LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
#: The state topic's settings, as ``streamproc topics create`` makes it.
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(6 * 3600 * 1000),
    "min.compaction.lag.ms": str(3600 * 1000),
}


@dataclass(frozen=True, slots=True)
class Lead:
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Read:
    """One record as the benchmark reads it back (no value: it only counts and times)."""

    partition: int
    offset: int
    key: bytes | None
    #: Milliseconds since the epoch (LogAppendTime on the benchmark's topics).
    timestamp_ms: int


class Broker:
    """The local broker: used as found, or started with ``scripts/kafka-local`` (and then
    stopped by :meth:`release`, so the benchmark stops only what it started)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.started_here = False

    def answers(self) -> bool:
        host, port = self.bootstrap.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return True
        except OSError:
            return False

    def ensure(self) -> None:
        if self.answers():
            return
        port = self.bootstrap.rsplit(":", 1)[1]
        env = {**os.environ, "KAFKA_PORT": port}
        subprocess.run([str(ROOT / "scripts" / "kafka-local"), "start"], check=True, env=env)
        self.started_here = True

    def release(self) -> None:
        if not self.started_here:
            return
        port = self.bootstrap.rsplit(":", 1)[1]
        env = {**os.environ, "KAFKA_PORT": port}
        subprocess.run([str(ROOT / "scripts" / "kafka-local"), "stop"], check=False, env=env)
        self.started_here = False

    def pid(self) -> int | None:
        """The broker's JVM (for its CPU share): started by ``scripts/kafka-local``, or else
        the process listening on the bootstrap port."""
        port = self.bootstrap.rsplit(":", 1)[1]
        home = Path(os.environ.get("KAFKA_HOME", ROOT / ".cache" / f"kafka-run-{port}"))
        try:
            return int((home / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            pass
        # A broker found running (shared, started by someone else): the process listening
        # on the port, read only for its CPU share.
        try:
            import psutil

            for conn in psutil.net_connections(kind="tcp"):
                if (
                    conn.status == psutil.CONN_LISTEN
                    and conn.laddr
                    and conn.laddr.port == int(port)
                ):
                    return conn.pid
        except (ImportError, OSError, psutil.Error):
            return None
        return None


async def create_topics(
    bootstrap: str, specs: dict[str, tuple[int, dict[str, str]]], *, timeout_s: float = 30
) -> None:
    """Create each ``name: (partitions, configs)`` and wait until its metadata is served."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, n, 1, topic_configs=dict(cfg)) for name, (n, cfg) in specs.items()]
        )
    finally:
        await admin.close()
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await probe.start()
    try:
        deadline = time.monotonic() + timeout_s
        for name, (n, _) in specs.items():
            while len(probe.partitions_for_topic(name) or ()) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name} not visible after {timeout_s}s")
                await probe._client.force_metadata_update()
                await asyncio.sleep(0.1)
    finally:
        await probe.stop()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(names)
    finally:
        await admin.close()


def lead_records(count: int, run: str, *, start: int = 0) -> Iterator[Lead]:
    """``count`` leads, each with its own domain (the enrichment cache never hits)."""
    for i in range(start, start + count):
        lead_id = f"{run}-{i:07d}"
        domain = f"d{i}-{run}.example"
        lead = {
            "lead_id": lead_id,
            "email": f"ada.{i}@{domain}",
            "domain": domain,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": f"Company {i}",
            "title": "CTO",
            "source": "bench",
        }
        yield Lead(lead_id.encode(), orjson.dumps(lead))


def _producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
    )


async def produce_bulk(bootstrap: str, topic: str, leads: Iterator[Lead]) -> int:
    """Produce every lead as fast as the client goes; returns how many."""
    producer = _producer(bootstrap, linger_ms=20)
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[object]] = []
        for lead in leads:
            pending.append(await producer.send(topic, value=lead.value, key=lead.key))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def produce_paced(
    bootstrap: str, topic: str, leads: Iterator[Lead], rate_per_s: float
) -> tuple[int, float]:
    """Produce at a steady ``rate_per_s`` (10 ms ticks); returns (count, seconds taken)."""
    producer = _producer(bootstrap, linger_ms=2)
    await producer.start()
    sent = 0
    began = time.monotonic()
    try:
        pending: list[asyncio.Future[object]] = []
        exhausted = False
        while not exhausted:
            due = int((time.monotonic() - began) * rate_per_s) + 1
            while sent < due:
                lead = next(leads, None)
                if lead is None:
                    exhausted = True
                    break
                pending.append(await producer.send(topic, value=lead.value, key=lead.key))
                sent += 1
            if len(pending) >= 2000:
                done = [f for f in pending if f.done()]
                for fut in done:
                    fut.result()
                pending = [f for f in pending if not f.done()]
            await asyncio.sleep(0.01)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent, time.monotonic() - began


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


async def read_topic(bootstrap: str, topic: str) -> list[Read]:
    """Every committed record of ``topic`` (``read_committed``) up to its end at call time."""
    records = await read_records(bootstrap, topic)
    return [Read(r.partition, r.offset, r.key, r.timestamp) for r in records]


async def read_records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of ``topic`` (``read_committed``) up to its end at call time,
    as aiokafka gives them (partition by partition)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not behind:
                return out
            batch = await consumer.getmany(*behind, timeout_ms=500, max_records=20_000)
            for records in batch.values():
                out += records
    finally:
        await consumer.stop()


class Tail:
    """A ``read_committed`` consumer noting when each output record became visible.

    This is the downstream's view: a record is seen once its transaction committed. The
    wall-clock time of the fetch that returned it (``fetch_max_wait_ms`` 10 ms) is kept per
    key, in epoch milliseconds.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self.seen_ms: dict[bytes | None, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._ready.wait()

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        try:
            tps = await _partitions(consumer, self._topic)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self._ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                now_ms = time.time() * 1000
                for records in batch.values():
                    for r in records:
                        self.seen_ms.setdefault(r.key, now_ms)
        finally:
            self._ready.set()
            await consumer.stop()

    @property
    def count(self) -> int:
        return len(self.seen_ms)

    async def wait_count(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count < count:
            if time.monotonic() > deadline or (self._task is not None and self._task.done()):
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_for_count(bootstrap: str, topic: str, count: int, *, timeout_s: float) -> bool:
    """Tail ``topic`` (``read_committed``) until ``count`` records were seen; False on timeout."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            if time.monotonic() > deadline:
                return False
            batch = await consumer.getmany(timeout_ms=200)
            seen += sum(len(records) for records in batch.values())
        return True
    finally:
        await consumer.stop()
