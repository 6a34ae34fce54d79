"""Priority and pacing on the real broker and the real mock provider: the floor's DLQ, leads
deferred to their band's topic with their input offset, drained best-first once the plan
opens, and expired into the DLQ.

Scaled down for CI: a dozen leads, three bands, and the controller's step set an hour
apart so that the test, not the controller, moves the threshold (the controller itself is
covered on an injected clock in tests/unit/processing/test_pacing.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from streamproc.app import App
from streamproc.errors import KafkaSetupError
from streamproc.kafka.config import KafkaConnection, TopicsConfig
from streamproc.kafka.preflight import check_kafka
from streamproc.kafka.topics import create_topics
from streamproc.processing.spend_pacing import PacingGate
from streamproc.resilience.pacer import Threshold, density_bucket
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure, wait_for_topics
from tests.integration.kafka_io import Read, produce, read_all
from tests.integration.procs import until

#: Admits every density.
OPEN = Threshold(-10_000, 1.0)


def _lead(lead_id: str, score: float) -> tuple[bytes, bytes]:
    return lead_id.encode(), orjson.dumps(
        {"lead_id": lead_id, "domain": f"{lead_id.lower()}.example", "score": score}
    )


@contextlib.asynccontextmanager
async def _paced(settings: Settings, **changes: object) -> AsyncIterator[Settings]:
    """``settings`` with a score over the leads' ``score`` field, floor 2, pacing on with
    bands below 10, 10-30 and from 30, and the mock provider; the deferral topics are
    created and deleted afterwards."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        paced = configure(
            settings,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            credits_per_lead=1,
            priority_score="double(lead.score)",
            priority_floor=2.0,
            pacing_enabled=True,
            pacing_band_edges=(10.0, 30.0),
            topic_deferred=f"{settings.topic_raw}.deferred",
            pacing_step_s=changes.pop("pacing_step_s", 3600),
            shutdown_grace_s=5,
            **changes,
        )
        await create_topics(TopicsConfig.from_settings(paced))
        await wait_for_topics(paced)
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the deferral topics too, as wait_for_topics does for the five
            try:
                await check_kafka(
                    KafkaConnection.from_settings(paced), topics=list(paced.deferral_topics)
                )
                break
            except KafkaSetupError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        try:
            yield paced
        finally:
            admin = AIOKafkaAdminClient(bootstrap_servers=paced.bootstrap_servers)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(15):
                    await admin.start()
                    await admin.delete_topics(list(paced.deferral_topics))
            await admin.close()


def _gate(app: App) -> PacingGate:
    assert app.pacing is not None and app.pacing.gate is not None
    return app.pacing.gate


async def _counts(settings: Settings, topics: list[str]) -> list[list[Read]]:
    return [await read_all(settings, topic) for topic in topics]


async def test_below_floor_leads_are_dead_lettered_and_deferred_ones_drain_best_first(
    topics: Settings,
) -> None:
    """13 leads: 2 under the floor go to the DLQ as below_floor, not retriable; with the
    threshold between 20 and 50, the 3 leads of score 50 are enriched, the 4 of score 20
    and the 4 of score 5 are written once each to bands 1 and 0, their input offsets
    committed (the raw partitions have no lag), counted per band in the metrics and shown
    waiting on /status; once the plan opens, every deferred lead
    is enriched exactly once, each of band 1 before any of band 0, and nothing is
    written to a deferral topic again."""
    async with _paced(topics) as settings:
        leads = [_lead(f"F{i}", 1.0) for i in range(2)]
        leads += [_lead(f"T{i}", 50.0) for i in range(3)]
        leads += [_lead(f"M{i}", 20.0) for i in range(4)]
        leads += [_lead(f"L{i}", 5.0) for i in range(4)]
        await produce(settings, leads)
        app = App(settings)
        gate = _gate(app)
        gate.set_threshold(Threshold(density_bucket(40.0), 0.0))
        run = asyncio.ensure_future(app.run())
        try:
            await until(lambda: gate.pending == (4, 4, 0), 120)
            await until(lambda: app.processor.stats.committed >= 13, 60)
            enriched, dlq = await _counts(settings, [settings.topic_enriched, settings.topic_dlq])
            assert sorted((r.key or b"").decode() for r in enriched) == ["T0", "T1", "T2"]
            assert sorted((r.key or b"").decode() for r in dlq) == ["F0", "F1"]
            assert {r.headers["streamproc.error.class"] for r in dlq} == {b"below_floor"}
            assert {r.headers["streamproc.error.retriable"] for r in dlq} == {b"false"}
            assert sum((await app.processor.lags()).values()) == 0
            assert app.processor.stats.deferred == 8
            low_topic, middle_topic, _ = settings.deferral_topics
            assert app.processor.stats.deferred_by_topic == {low_topic: 4, middle_topic: 4}
            shown = app.status()["pacing"]["gate"]
            assert shown["waiting"] == [4, 4, 0] and shown["frozen"] is False
            exposed = app.metrics.render().decode()
            assert 'streamproc_pacing_deferred_total{band="b1"} 4.0' in exposed
            assert 'streamproc_pacing_waiting_leads{band="b0"} 4.0' in exposed

            gate.set_threshold(OPEN)

            async def all_enriched() -> bool:
                return len(await read_all(settings, settings.topic_enriched)) >= 11

            await until(all_enriched, 120)
            await until(lambda: gate.pending == (0, 0, 0), 60)
        finally:
            app.request_stop()
            await asyncio.wait_for(run, 60)
        enriched = await read_all(settings, settings.topic_enriched)
        ids = Counter((r.key or b"").decode() for r in enriched)
        assert sorted(ids) == sorted([f"T{i}" for i in range(3)] + [f"M{i}" for i in range(4)]
                                     + [f"L{i}" for i in range(4)])  # fmt: skip
        assert set(ids.values()) == {1}
        at = {
            (r.key or b"").decode(): datetime.fromisoformat(
                orjson.loads(r.value or b"")["enrichment_meta"]["enriched_at"]
            )
            for r in enriched
        }
        assert max(at[f"M{i}"] for i in range(4)) < min(at[f"L{i}"] for i in range(4))
        low, middle, high = await _counts(settings, list(settings.deferral_topics))
        assert sorted((r.key or b"").decode() for r in low) == [f"L{i}" for i in range(4)]
        assert sorted((r.key or b"").decode() for r in middle) == [f"M{i}" for i in range(4)]
        assert high == []
        assert len(await read_all(settings, settings.topic_dlq)) == 2


async def test_a_deferred_lead_past_its_age_is_dead_lettered_retriable_with_its_origin(
    topics: Settings,
) -> None:
    """With the threshold shut and deferral_max_age_s 2, two deferred leads go to the DLQ
    as deferral_expired, retriable, pointing at their leads.raw coordinates; none is
    enriched."""
    async with _paced(topics, deferral_max_age_s=2.0) as settings:
        await produce(settings, [_lead("E0", 20.0), _lead("E1", 20.0)])
        app = App(settings)
        _gate(app).set_threshold(Threshold(density_bucket(1e9), 0.0))
        run = asyncio.ensure_future(app.run())
        try:

            async def expired() -> bool:
                return len(await read_all(settings, settings.topic_dlq)) >= 2

            await until(expired, 120)
            await until(lambda: app.processor.stats.committed >= 4, 60)
        finally:
            app.request_stop()
            await asyncio.wait_for(run, 60)
        dlq = await read_all(settings, settings.topic_dlq)
        assert sorted((r.key or b"").decode() for r in dlq) == ["E0", "E1"]
        assert {r.headers["streamproc.error.class"] for r in dlq} == {b"deferral_expired"}
        assert {r.headers["streamproc.error.retriable"] for r in dlq} == {b"true"}
        assert {r.headers["streamproc.original.topic"] for r in dlq} == {
            settings.topic_raw.encode()
        }
        assert not any(k.startswith("streamproc.deferred.") for r in dlq for k in r.headers)
        assert await read_all(settings, settings.topic_enriched) == []
