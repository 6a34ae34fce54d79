"""A schema registry that stops mid-run: the leads that need it wait (their partition
commits nothing past them), nothing is dead-lettered for it, and they are enriched once
when it is back. The test runs a registry of its own and stops its process (SIGSTOP: it
keeps its in-memory schemas, as a registry with real storage does across an outage; its
port stays open and requests time out) and lets it go on (SIGCONT).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.registry.conftest import LocalRegistry

V1 = {
    "type": "record",
    "name": "Lead",
    "fields": [
        {"name": "lead_id", "type": "string"},
        {"name": "email", "type": "string"},
    ],
}
#: A second version (a new optional field): its id is new to the processor.
V2 = {
    **V1,
    "fields": [*V1["fields"], {"name": "note", "type": ["null", "string"], "default": None}],
}


async def _until(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.3)

    await asyncio.wait_for(poll(), timeout_s)


async def test_a_stopped_registry_holds_the_partition_and_nothing_goes_to_the_dlq(
    topics: Settings, tmp_path: Path
) -> None:
    """Leads of a schema version the processor has not seen, arriving while the registry
    is stopped, wait in a hold: none is enriched and none dead-lettered while it is down;
    once it is back, each is enriched exactly once."""
    registry = LocalRegistry(tmp_path / "registry")
    registry.start()
    try:
        client = SchemaRegistryClient({"url": registry.url})
        context = SerializationContext(topics.topic_raw, MessageField.VALUE)
        first = AvroSerializer(client, json.dumps(V1))
        second = AvroSerializer(client, json.dumps(V2))
        before = [
            first({"lead_id": f"a{i}", "email": f"a{i}@x.example"}, context) for i in range(4)
        ]
        # Serialized while the registry is up (the serializer registers V2); produced once
        # it is stopped.
        after = [
            second({"lead_id": f"b{i}", "email": f"b{i}@y.example", "note": "n"}, context)
            for i in range(6)
        ]
        async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
            settings = configure(
                topics,
                provider_url=f"{url}/enrich",
                input_format="registry",
                schema_registry_url=registry.url,
                schema_registry_timeout_s=1.0,
            )

            async def enriched(count: int) -> bool:
                return len(await read_all(settings, settings.topic_enriched)) >= count

            await produce(settings, [(f"a{i}".encode(), v) for i, v in enumerate(before)])
            app = App(settings)
            running = asyncio.ensure_future(app.run())
            stopped = False
            try:
                await _until(lambda: enriched(4), 60)
                registry.signal(signal.SIGSTOP)
                stopped = True
                await produce(settings, [(f"b{i}".encode(), v) for i, v in enumerate(after)])
                await asyncio.sleep(3.0)  # several probes time out meanwhile
                assert len(await read_all(settings, settings.topic_enriched)) == 4
                assert await read_all(settings, settings.topic_dlq) == []
                assert app.status()["registry"] == {"down": True, "held_leads": 6}
                assert app.processor.stats.committed == 4

                registry.signal(signal.SIGCONT)
                stopped = False
                await _until(lambda: enriched(10), 60)
            finally:
                if stopped:
                    registry.signal(signal.SIGCONT)
                app.request_stop()
                await asyncio.wait_for(running, 60)
    finally:
        registry.stop()

    keys = sorted(r.key or b"" for r in await read_all(settings, settings.topic_enriched))
    assert keys == sorted(
        [f"a{i}".encode() for i in range(4)] + [f"b{i}".encode() for i in range(6)]
    )
    assert await read_all(settings, settings.topic_dlq) == []
