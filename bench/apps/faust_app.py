"""The Faust peer: a faust-streaming agent doing consume → call → produce.

Written the way Faust's documentation writes an agent: one agent over the topic
(``concurrency=1``, the default, which is what keeps per-partition order), an
``async for`` over the stream, one awaited httpx call per event, ``topic.send`` of the
result. ``processing_guarantee`` is ``exactly_once`` (transactional producers, like
streamproc) unless ``BENCH_FAUST_GUARANTEE`` says ``at_least_once``.

When ``BENCH_EXPECTED`` leads are out, it sends itself SIGTERM: the worker's graceful stop
commits the last transaction.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import faust
import httpx
import orjson

from bench.apps.common import AppEnv, emit, enriched_value


def build(env: AppEnv) -> faust.App:
    guarantee = os.environ.get("BENCH_FAUST_GUARANTEE", "exactly_once")
    app = faust.App(
        env.group,
        broker=f"kafka://{env.bootstrap}",
        processing_guarantee=guarantee,
        broker_commit_interval=env.commit_interval_ms / 1000,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        store="memory://",
        topic_partitions=1,
    )
    source = app.topic(env.topic_in, key_serializer="raw", value_serializer="raw")
    sink = app.topic(env.topic_out, key_serializer="raw", value_serializer="raw")
    state = {"done": 0}

    @app.agent(source)
    async def enrich(stream: Any) -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            async for event in stream.events():
                value: bytes = event.value
                lead = orjson.loads(value)
                response = await http.post(
                    env.provider_url,
                    content=value,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": str(lead["lead_id"]),
                    },
                )
                response.raise_for_status()
                body = response.json()
                out = enriched_value(lead, body["data"], int(body.get("credits", 6)), "faust")
                await sink.send(key=event.key, value=out)
                state["done"] += 1
                if state["done"] == env.expected:
                    emit(published=state["done"], guarantee=guarantee)
                    os.kill(os.getpid(), signal.SIGTERM)

    return app


def main() -> None:
    env = AppEnv.from_environ()
    app = build(env)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
