"""The state topic on a real broker: restores stay flat in the age of the deployment, and a
stop signal ends a restore at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamproc.app import App
from streamproc.kafka.config import KafkaConnection
from streamproc.kafka.topics import create_topics
from streamproc.processing.config import GuardConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.lead import Lead
from streamproc.settings import Settings
from streamproc.state.store import StateStore
from tests.integration.conftest import configure, wait_for_topics

WRITERS = 30


@dataclass
class _Result:
    data: dict[str, Any]
    credits: int = 6
    attempts: int = 1


@dataclass
class Restore:
    records_read: int
    kept: int
    spent: int
    reserved: int
    seconds: float


def _settings(topics: Settings) -> Settings:
    # One lead per claim: the most records per lead. No cache: only the budget is measured.
    return configure(topics, budget_daily_credits=10**9, budget_claim_leads=1, cache_key="off")


async def _spend(settings: Settings, leads_per_writer: int) -> None:
    """WRITERS guards (processes, as over a deployment's life) each claim, call and settle
    ``leads_per_writer`` leads through one real state store, then flush as at shutdown."""
    guards = [ResilienceGuard(GuardConfig.from_settings(settings)) for _ in range(WRITERS)]

    def fan_out(key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        for guard in guards:
            guard.on_state(key, value, partition, offset)

    store = StateStore(KafkaConnection.from_settings(settings), settings.topic_state, fan_out)
    await store.start()
    for guard in guards:
        guard.attach(store)

    async def work(n: int, guard: ResilienceGuard) -> None:
        for i in range(leads_per_writer):
            admission = await guard.admit(Lead(lead_id=f"{n}-{i}", domain=f"d{n}-{i}.example"))
            guard.settle(admission, _Result({"company": "C"}), None)
        await guard.flush()

    try:
        await asyncio.gather(*(work(n, guard) for n, guard in enumerate(guards)))
    finally:
        await store.stop()


async def _restore(settings: Settings) -> Restore:
    """What a process starting now reads and keeps."""
    guard = ResilienceGuard(GuardConfig.from_settings(settings), owner="next-process")
    store = StateStore(
        KafkaConnection.from_settings(settings), settings.topic_state, guard.on_state
    )
    started = time.monotonic()
    try:
        await store.start()
        seconds = time.monotonic() - started
    finally:
        await store.stop()
    budget = guard.status().budget
    return Restore(store.records_restored, budget.kept, budget.spent, budget.reserved, seconds)


async def test_a_restart_after_thousands_of_settled_claims_keeps_a_flat_state(
    topics: Settings,
) -> None:
    """300 or 3,000 settled claims from 30 processes: the next process to start keeps the
    same number of budget entries after both (each writer's open day and newest claim and
    total), and its books hold every credit spent."""
    small_settings = _settings(topics)
    large_settings = configure(small_settings, topic_state=f"{topics.topic_state}.large")
    await create_topics(large_settings)
    await wait_for_topics(large_settings)
    await _spend(small_settings, 10)
    await _spend(large_settings, 100)
    small = await _restore(small_settings)
    large = await _restore(large_settings)
    print(f"restore after 300 claims: {small}\nrestore after 3,000 claims: {large}")
    assert (small.spent, small.reserved) == (300 * 6, 0)
    assert (large.spent, large.reserved) == (3_000 * 6, 0)
    assert large.records_read > 9 * small.records_read  # read: not compacted yet
    assert large.kept == small.kept  # kept: flat in the history
    assert large.kept <= 5 * WRITERS + 1


@pytest.mark.slow
async def test_once_compacted_a_restart_reads_a_flat_number_of_records(topics: Settings) -> None:
    """3,000 settled claims, then the broker compacts the state topic (segments shortened
    for the test): the next start reads a few records per writer, not thousands, and
    restores the same books."""
    settings = _settings(topics)
    await _spend(settings, 100)
    before = await _restore(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        fast = {
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "0",
        }
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topic_state, configs=fast)
        await admin.alter_configs([resource])
    finally:
        await admin.close()
    roller = StateStore(
        KafkaConnection.from_settings(settings), settings.topic_state, lambda *record: None
    )
    await roller.start()
    after = before
    try:
        # The cleaner skips the active segment and wakes every 15 s by default (every 1 s
        # on scripts/kafka-local's broker): roll it, and wait for a pass that drops the
        # tombstoned keys and one that drops the tombstones.
        for _ in range(90):
            await roller.append("budget/1970-01-01/roll/c", None)
            await asyncio.sleep(1)
            after = await _restore(settings)
            if after.records_read <= 4 * WRITERS:
                break
    finally:
        await roller.stop()
    print(f"restore before compaction: {before}\nrestore after compaction: {after}")
    assert before.records_read > 10_000
    assert after.records_read <= 4 * WRITERS
    assert (after.spent, after.reserved) == (before.spent, before.reserved) == (3_000 * 6, 0)
    assert after.kept <= before.kept


async def test_a_stop_during_the_restore_ends_it_at_once(topics: Settings) -> None:
    """`streamproc run` asked to stop (what SIGTERM does) while restoring a long state
    topic: it returns within a second or two, without joining the group, instead of
    finishing the restore first."""
    settings = _settings(topics)
    await _spend(settings, 100)
    settings = configure(settings, provider_url="http://127.0.0.1:9/enrich")
    app = App(settings)
    listener = app.state._listener
    reading = asyncio.Event()

    def slow(key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        reading.set()
        time.sleep(0.001)  # a long history: about 12 s to restore these 12,000 records
        listener(key, value, partition, offset)

    app.state._listener = slow
    run = asyncio.ensure_future(app.run())
    await asyncio.wait_for(reading.wait(), 30)
    asked = time.monotonic()
    app.request_stop()
    await asyncio.wait_for(run, 30)
    took = time.monotonic() - asked
    print(f"stopped {took:.2f} s after the request, {app.state.records_restored} records read")
    assert took < 3.0
    assert not app.state.restored.is_set()
    assert not app.processor.assigned.is_set()
