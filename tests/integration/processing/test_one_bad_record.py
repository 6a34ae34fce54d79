"""One odd record costs that record, never its partition, its batch or the process: a lead
whose header or key alone is over every output's limit, and a record whose header key is
not UTF-8 in the middle of a producer batch (records other clients write, and the broker
takes)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import orjson

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import Read, produce_one_batch, read_all
from tests.integration.procs import ProcessorProcess


def _lead(lead_id: str) -> bytes:
    return orjson.dumps({"lead_id": lead_id, "domain": f"{lead_id.lower()}.example"})


def _ordinary(
    partition: int, first: int, count: int
) -> list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]]:
    return [
        (f"P{partition}-{i}".encode(), _lead(f"P{partition}-{i}"), [])
        for i in range(first, first + count)
    ]


def _mixed_batch() -> list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]]:
    """12 leads; the second one's header key is not UTF-8."""
    return [
        (f"M-{i}".encode(), _lead(f"M-{i}"), [(b"bad\xffkey", b"v")] if i == 1 else [])
        for i in range(12)
    ]


def _keys(records: list[Read]) -> Counter[str]:
    return Counter((r.key or b"")[:40].decode(errors="replace") for r in records)


async def test_a_3_mb_header_and_a_2_mb_key_are_dead_lettered_and_sigterm_is_obeyed(
    topics: Settings, tmp_path: Path
) -> None:
    """Three partitions, 81 ordinary leads; written with gzip (so the broker takes them) one
    lead with a 3 MB header, one with a 2 MB key, and a batch of 12 whose second record's
    header key is not UTF-8: each odd record is dead-lettered once (the large ones cut to
    fit, saying what was cut); every other lead, on every partition, is enriched once;
    then the ``streamproc run`` process obeys SIGTERM within its grace."""
    huge_header = (b"big-header", b"h" * 3_000_000)
    huge_key = b"K" * 2_000_000
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(
            topics, provider_url=f"{url}/enrich", shutdown_grace_s=5, budget_daily_credits=10**9
        )
        for partition in range(3):
            await produce_one_batch(settings, partition, _ordinary(partition, 0, 13))
        await produce_one_batch(settings, 0, [(b"HDR", _lead("HDR"), [huge_header])])
        await produce_one_batch(settings, 1, [(huge_key, _lead("KEY"), [])])
        await produce_one_batch(settings, 2, _mixed_batch())
        for partition in range(3):
            await produce_one_batch(settings, partition, _ordinary(partition, 13, 14))
        proc = ProcessorProcess(settings, tmp_path, "odd")
        try:
            proc.start()
            deadline = time.monotonic() + 180
            enriched: list[Read] = []
            dlq: list[Read] = []
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                assert proc.alive(), proc.log_tail()
                enriched = await read_all(settings, settings.topic_enriched)
                dlq = await read_all(settings, settings.topic_dlq)
                if len(enriched) >= 81 + 11 and len(dlq) >= 3:
                    break
            expected = Counter(f"P{p}-{i}" for p in range(3) for i in range(27))
            expected.update(f"M-{i}" for i in range(12) if i != 1)
            assert _keys(enriched) == expected, proc.log_tail()
            by_partition = {int(r.headers["streamproc.original.partition"]): r for r in dlq}
            assert len(dlq) == 3 and set(by_partition) == {0, 1, 2}
            assert {r.headers["streamproc.original.offset"] for r in dlq} == {b"13", b"14"}
            assert by_partition[2].headers["streamproc.error.class"] == b"unreadable_record"
            header_lead, key_lead = by_partition[0], by_partition[1]
            assert header_lead.headers["streamproc.error.class"] == b"output_too_large"
            assert header_lead.headers["streamproc.headers.truncated"] == b"true"
            assert "big-header" not in header_lead.headers
            assert (header_lead.key, header_lead.value) == (b"HDR", _lead("HDR"))
            assert key_lead.headers["streamproc.key.truncated"] == b"true"
            assert int(key_lead.headers["streamproc.original.key.size"]) == len(huge_key)
            assert key_lead.key is not None and huge_key.startswith(key_lead.key)
            started = time.monotonic()
            code = await asyncio.to_thread(proc.terminate, 120)
            stopped_in = time.monotonic() - started
            assert code == 0, proc.log_tail()
            # The grace (5 s) plus the final commits' allowance and the rest of the stop.
            assert stopped_in < 5 + 15, f"SIGTERM took {stopped_in:.1f} s"
        finally:
            proc.stop()


async def test_one_bad_header_key_in_a_batch_costs_one_record(topics: Settings) -> None:
    """One producer batch of 12 leads whose second record has a header key that is not
    UTF-8, between ordinary leads on every partition: exactly that record is dead-lettered
    (unreadable_record, by its coordinates), the other 11 of its batch and every other lead
    are enriched once, and every partition drains."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich", budget_daily_credits=10**9)
        for partition in range(3):
            await produce_one_batch(settings, partition, _ordinary(partition, 0, 5))
        await produce_one_batch(settings, 1, _mixed_batch())
        for partition in range(3):
            await produce_one_batch(settings, partition, _ordinary(partition, 5, 5))
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=3.0), timeout=120)

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    expected = Counter(f"P{p}-{i}" for p in range(3) for i in range(10))
    expected.update(f"M-{i}" for i in range(12) if i != 1)
    assert _keys(enriched) == expected
    assert [
        (
            r.headers["streamproc.error.class"],
            r.headers["streamproc.original.partition"],
            r.headers["streamproc.original.offset"],
        )
        for r in dlq
    ] == [(b"unreadable_record", b"1", b"6")]
    assert app.processor.stats.unreadable == 1
    assert app.processor.stats.committed == 3 * 10 + 12
