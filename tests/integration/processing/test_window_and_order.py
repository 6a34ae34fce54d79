"""The in-flight window and output order (issue 5), on the real broker with the mock
provider answering at random latencies: the process never holds more leads than
configured, per process or per partition, and each partition's outputs come out in input
order while calls overlap."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import read_all

PARTITIONS = 3
PER_PARTITION = 200
KEYS_PER_PARTITION = 8


async def _produce_numbered(settings: Settings) -> None:
    """200 leads per partition; each carries its partition and sequence number, and a few
    keys repeat so that one key has many leads in flight at once."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        sends = []
        for seq in range(PER_PARTITION):
            for partition in range(PARTITIONS):
                key = f"p{partition}-k{seq % KEYS_PER_PARTITION}"
                value = orjson.dumps(
                    {
                        "lead_id": f"p{partition}-{seq}",
                        "domain": f"p{partition}-{seq}.example",
                        "src_partition": partition,
                        "seq": seq,
                    }
                )
                sends.append(
                    await producer.send(
                        settings.topic_raw, value=value, key=key.encode(), partition=partition
                    )
                )
        for sent in sends:
            await sent
    finally:
        await producer.stop()


async def test_window_bounds_and_per_partition_order_under_random_latency(
    topics: Settings,
) -> None:
    """max_in_flight 50, 20 per partition, latency 5-95 ms: the provider never sees more
    than 50 calls at once (and more than one partition's worth: calls did overlap), no
    window holds more than 20 leads, and per input partition and per key the outputs are
    in input order."""
    config = MockProviderConfig(port=0, latency_ms=50, latency_jitter_ms=45, seed=11)
    async with serve_mock_provider(config) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            max_in_flight=50,
            max_in_flight_per_partition=20,
            commit_interval_ms=100,
            budget_daily_credits=10**9,
            breaker_failure_threshold=1000,
        )
        await _produce_numbered(settings)
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=2.0), timeout=120)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{url}/stats")).json()

    enriched = await read_all(settings, settings.topic_enriched)
    stats_seen = app.processor.stats
    print(
        f"window: provider max in flight {stats['max_in_flight']}, process max "
        f"{stats_seen.max_in_flight_seen}, largest partition window {stats_seen.max_window_seen}"
    )
    assert len(enriched) == PARTITIONS * PER_PARTITION
    assert 20 < stats["max_in_flight"] <= 50
    assert stats_seen.max_in_flight_seen <= 50
    assert 1 < stats_seen.max_window_seen <= 20

    # Order: within each output partition, the outputs of one input partition (and so of
    # one key) appear in increasing input sequence.
    last: dict[tuple[int, int], int] = {}
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for record in sorted(enriched, key=lambda r: (r.partition, r.offset)):
        lead = orjson.loads(record.value or b"")
        src, seq = int(lead["src_partition"]), int(lead["seq"])
        assert seq > last.get((record.partition, src), -1), (record.partition, src, seq)
        last[(record.partition, src)] = seq
        by_key[record.key or b""].append(seq)
    assert all(seqs == sorted(seqs) for seqs in by_key.values())
    assert len(by_key) == PARTITIONS * KEYS_PER_PARTITION
