"""The ``sequential`` baseline: the reference pattern streamproc grew from.

One aiokafka consumer; for each lead, in turn: await one httpx call, then await the
produce of the result, then the next lead. Offsets are auto-committed. No transactions,
no concurrency: its ceiling is one lead per (provider latency + produce round trip).
"""

from __future__ import annotations

import asyncio

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.apps.common import AppEnv, Progress, emit, enriched_value, idempotency_key, run_main


async def main() -> None:
    env = AppEnv.from_environ()
    consumer = AIOKafkaConsumer(
        env.topic_in,
        bootstrap_servers=env.bootstrap,
        group_id=env.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=env.bootstrap, acks="all")
    progress = Progress(env)
    await consumer.start()
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            while not progress.finished():
                try:
                    msg = await asyncio.wait_for(consumer.getone(), timeout=0.5)
                except TimeoutError:
                    continue
                progress.consumed_one()
                assert msg.value is not None
                lead = orjson.loads(msg.value)
                response = await http.post(
                    env.provider_url,
                    content=msg.value,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": idempotency_key(lead).decode(),
                    },
                )
                response.raise_for_status()
                body = response.json()
                value = enriched_value(lead, body["data"], int(body.get("credits", 6)), "seq")
                await producer.send_and_wait(env.topic_out, value=value, key=msg.key)
                progress.published()
    finally:
        await producer.stop()
        await consumer.stop()
    emit(published=progress.done)


if __name__ == "__main__":
    run_main(main())
