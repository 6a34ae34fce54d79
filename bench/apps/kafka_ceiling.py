"""The ``kafka-ceiling`` baseline: streamproc's Kafka side with the provider call removed.

Same shape as ``streamproc run``: one consumer (``read_committed``) over every partition,
one transactional producer per input partition, a commit loop that publishes each
partition's pending outputs with its offset in one transaction every
``commit_interval_ms``, and the same bound on leads consumed but not yet committed
(``max_in_flight``). Each lead is decoded, given a fixed enrichment and re-encoded, so
the JSON work is there too; only the HTTP call is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.apps.common import AppEnv, Progress, emit, enriched_value, run_main

_DATA = {"company": "Acme", "domain": "acme.example", "employees": 42, "industry": "software"}


class _Pipeline:
    def __init__(self, env: AppEnv) -> None:
        self.env = env
        self.progress = Progress(env)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=env.bootstrap,
            group_id=env.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self.pending: dict[TopicPartition, list[tuple[bytes | None, bytes]]] = {}
        self.next_offset: dict[TopicPartition, int] = {}
        self.in_window = 0
        self.freed = asyncio.Event()
        self.commit_s: list[float] = []

    async def start(self) -> None:
        await self.consumer.start()
        partitions: list[int] = []
        for _ in range(100):  # a consumer without a subscription fetches no metadata by itself
            partitions = sorted(self.consumer.partitions_for_topic(self.env.topic_in) or ())
            if partitions:
                break
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        tps = [TopicPartition(self.env.topic_in, p) for p in partitions]
        self.consumer.assign(tps)
        for tp in tps:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.env.bootstrap,
                transactional_id=f"{self.env.group}.{tp.topic}.{tp.partition}",
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
            )
            await producer.start()
            self.producers[tp] = producer
            self.pending[tp] = []
            committed = await self.consumer.committed(tp)
            if committed is None:
                committed = (await self.consumer.beginning_offsets([tp]))[tp]
            self.consumer.seek(tp, committed)

    async def stop(self) -> None:
        for producer in self.producers.values():
            await producer.stop()
        await self.consumer.stop()

    async def fetch_loop(self) -> None:
        while not self.progress.finished():
            room = self.env.max_in_flight - self.in_window
            if room <= 0:
                self.freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.freed.wait(), 1.0)
                continue
            batch = await self.consumer.getmany(timeout_ms=100, max_records=room)
            for tp, records in batch.items():
                out = self.pending[tp]
                for record in records:
                    assert record.value is not None
                    lead: dict[str, Any] = orjson.loads(record.value)
                    out.append((record.key, enriched_value(lead, _DATA, 0, "kafka-ceiling")))
                    self.next_offset[tp] = record.offset + 1
                self.in_window += len(records)
                self.progress.consumed_one(len(records))

    async def commit_loop(self) -> None:
        interval = self.env.commit_interval_ms / 1000
        while not self.progress.finished():
            await asyncio.sleep(interval)
            await asyncio.gather(*(self._commit(tp) for tp in self.producers))

    async def _commit(self, tp: TopicPartition) -> None:
        outputs, self.pending[tp] = self.pending[tp], []
        if not outputs:
            return
        producer = self.producers[tp]
        began = time.perf_counter()
        await producer.begin_transaction()
        for key, value in outputs:
            await producer.send(self.env.topic_out, value=value, key=key)
        await producer.send_offsets_to_transaction({tp: self.next_offset[tp]}, self.env.group)
        await producer.commit_transaction()
        self.commit_s.append(time.perf_counter() - began)
        self.in_window -= len(outputs)
        self.progress.published(len(outputs))
        self.freed.set()


async def main() -> None:
    pipeline = _Pipeline(AppEnv.from_environ())
    await pipeline.start()
    try:
        await asyncio.gather(pipeline.fetch_loop(), pipeline.commit_loop())
    finally:
        await pipeline.stop()
    commits = sorted(pipeline.commit_s)
    emit(
        published=pipeline.progress.done,
        transactions=len(commits),
        commit_ms_p50=round(commits[len(commits) // 2] * 1000, 1) if commits else None,
        commit_ms_p99=round(commits[int(len(commits) * 0.99)] * 1000, 1) if commits else None,
    )


if __name__ == "__main__":
    run_main(main())
