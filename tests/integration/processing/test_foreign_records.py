"""Records that other clients write, and outputs the broker refuses: each input record
still leaves its place exactly once (leads.enriched or leads.dlq), the processor stays up
and every partition drains.

The odd records are written with kcat (librdkafka), a client nobody here wrote: it can
write what aiokafka cannot (a header key that is not UTF-8, a record with neither key nor
value) and compresses a batch as Java and librdkafka producers do.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import Read, produce, read_all


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed: apt-get install kcat (.ci/run installs it)")
    return path


def _lead(lead_id: str, *, padding: int = 0) -> bytes:
    lead = {"lead_id": lead_id, "email": f"{lead_id}@co.example", "domain": f"{lead_id}.example"}
    if padding:
        lead["notes"] = "n" * padding
    return orjson.dumps(lead)


def _kcat_produce(
    kcat: str, settings: Settings, partition: int, lines: list[bytes], *extra: bytes
) -> None:
    """One kcat producer run: ``lines`` are ``key:value`` with ``-Z`` (empty is NULL)."""
    argv = [
        kcat.encode(), b"-P", b"-b", settings.bootstrap_servers.encode(),
        b"-t", settings.topic_raw.encode(), b"-p", str(partition).encode(),
        b"-K", b"\t", b"-Z", *extra,
    ]  # fmt: skip
    subprocess.run(argv, input=b"\n".join(lines) + b"\n", check=True, timeout=60)


async def _run_until_idle(settings: Settings) -> App:
    app = App(settings)
    await asyncio.wait_for(app.run(stop_when_idle_s=3.0), timeout=120)
    return app


async def _committed_equals_end(settings: Settings) -> bool:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_raw, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(tps)
        committed = {tp: await consumer.committed(tp) or 0 for tp in tps}
        return committed == ends
    finally:
        await consumer.stop()


def _origins(dlq: list[Read]) -> list[tuple[int, int]]:
    return [
        (
            int(r.headers["streamproc.original.partition"]),
            int(r.headers["streamproc.original.offset"]),
        )
        for r in dlq
    ]


async def test_null_records_tombstones_and_a_non_utf8_header_key(
    topics: Settings, kcat: str
) -> None:
    """Between ordinary leads: a record with neither key nor value, a tombstone, and a
    record whose header key is not UTF-8 (aiokafka cannot decode it). Each is
    dead-lettered once by its coordinates; every lead is enriched once; all drains."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich")
        for partition in range(3):
            leads = [b"L%d-%d\t%s" % (partition, i, _lead(f"L{partition}-{i}")) for i in range(5)]
            _kcat_produce(kcat, settings, partition, leads[:2])
            _kcat_produce(kcat, settings, partition, [b"\t"])  # neither key nor value
            _kcat_produce(kcat, settings, partition, [b"gone-%d\t" % partition])  # tombstone
            _kcat_produce(
                kcat,
                settings,
                partition,
                [b"odd-%d\t%s" % (partition, _lead(f"odd-{partition}"))],
                b"-H",
                b"bad\xffkey=value",
            )
            _kcat_produce(kcat, settings, partition, leads[2:])
        app = await _run_until_idle(settings)

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert sorted((r.key or b"").decode() for r in enriched) == sorted(
        f"L{p}-{i}" for p in range(3) for i in range(5)
    )
    origins = _origins(dlq)
    assert sorted(origins) == [(p, o) for p in range(3) for o in (2, 3, 4)], "each once"
    classes = Counter(
        (int(r.headers["streamproc.original.offset"]), r.headers["streamproc.error.class"])
        for r in dlq
    )
    assert classes == Counter(
        {(2, b"invalid_payload"): 3, (3, b"invalid_payload"): 3, (4, b"unreadable_record"): 3}
    )
    tombstones = [r for r in dlq if r.headers["streamproc.original.offset"] == b"3"]
    assert {(r.key, r.value) for r in tombstones} == {(b"gone-%d" % p, None) for p in range(3)}, (
        "a tombstone keeps its key and its null value"
    )
    assert app.processor.stats.unreadable == 3
    assert app.processor.stats.committed == 3 * 8
    assert await _committed_equals_end(settings)


async def test_gzip_compressed_leads_over_the_limits_are_dead_lettered_whole_or_cut(
    topics: Settings, kcat: str
) -> None:
    """gzip-compressed leads of 1.5 MB and 3 MB (the broker takes them: its limit applies
    to the compressed batch) are over max_lead_bytes and over what the DLQ takes: each is
    dead-lettered once with as much of it as fits and its original size, and the
    partition moves on to the lead behind it."""
    sizes = {"big15": 1_500_000, "big3": 3_000_000}
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich")
        for lead_id, size in sizes.items():
            _kcat_produce(
                kcat,
                settings,
                0,
                [b"%s\t%s" % (lead_id.encode(), _lead(lead_id, padding=size))],
                b"-z",
                b"gzip",
                b"-X",
                b"message.max.bytes=10000000",
            )
        await produce(settings, [(b"after", _lead("after"))])
        await _run_until_idle(settings)

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert [r.key for r in enriched] == [b"after"]
    assert sorted((r.key or b"").decode() for r in dlq) == sorted(sizes)
    for r in dlq:
        original = _lead((r.key or b"").decode(), padding=sizes[(r.key or b"").decode()])
        assert r.headers["streamproc.error.class"] == b"invalid_payload"
        assert r.headers["streamproc.value.truncated"] == b"true"
        assert int(r.headers["streamproc.original.size"]) == len(original)
        assert r.value and original.startswith(r.value) and len(r.value) > 900_000
    assert await _committed_equals_end(settings)


async def _create_topic(settings: Settings, name: str, config: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, settings.topic_partitions, 1, topic_configs=config)]
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.3)


async def test_an_output_over_the_topics_max_message_bytes_goes_to_the_dlq(
    topics: Settings,
) -> None:
    """leads.enriched takes records of at most 4,000 bytes: a lead whose enriched record
    is larger is dead-lettered as output_too_large with its whole original, and the leads
    around it are enriched (their batches stay under the limit too)."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        enriched_topic = f"{topics.topic_enriched}.small"
        settings = configure(topics, provider_url=f"{url}/enrich", topic_enriched=enriched_topic)
        await _create_topic(settings, enriched_topic, {"max.message.bytes": "4000"})
        records = [(f"s{i}".encode(), _lead(f"s{i}")) for i in range(60)]
        large = _lead("large", padding=3_700)
        records.insert(30, (b"large", large))
        await produce(settings, records)
        await _run_until_idle(settings)

    enriched = await read_all(settings, enriched_topic)
    dlq = await read_all(settings, settings.topic_dlq)
    assert sorted((r.key or b"").decode() for r in enriched) == sorted(f"s{i}" for i in range(60))
    assert [(r.key, r.headers["streamproc.error.class"], r.value) for r in dlq] == [
        (b"large", b"output_too_large", large)
    ]
    assert "streamproc.value.truncated" not in dlq[0].headers
    assert await _committed_equals_end(settings)


async def test_a_limit_lowered_while_running_is_caught_at_delivery(topics: Settings) -> None:
    """The topic's limit drops after start-up, so the processor believes an output fits and
    the broker refuses it: the delivery result is checked before the offset commits, and
    the lead is dead-lettered (output_too_large) instead of being lost."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich")
        app = App(settings)
        run = asyncio.ensure_future(app.run(stop_when_idle_s=3.0))
        await asyncio.wait_for(app.processor.assigned.wait(), timeout=60)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, settings.topic_enriched,
                                configs={"max.message.bytes": "3000"})]
            )  # fmt: skip
        finally:
            await admin.close()
        await asyncio.sleep(1.0)
        records = [(f"m{i}".encode(), _lead(f"m{i}")) for i in range(20)]
        records.insert(10, (b"wide", _lead("wide", padding=5_000)))
        await produce(settings, records)
        await asyncio.wait_for(run, timeout=120)

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert sorted((r.key or b"").decode() for r in enriched) == sorted(f"m{i}" for i in range(20))
    assert [(r.key, r.headers["streamproc.error.class"]) for r in dlq] == [
        (b"wide", b"output_too_large")
    ]
    assert await _committed_equals_end(settings)
