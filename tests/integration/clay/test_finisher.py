"""The Clay finisher against the real broker: taking a partition's transactional id over
after a crash."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from streamproc.clay.config import ClayConfig
from streamproc.clay.finisher import Finish, Finisher
from streamproc.clay.pending import PENDING_PREFIX, PendingLead, PendingRegistry, pending_key
from streamproc.kafka.client import stop_quietly, transactional_producer
from streamproc.kafka.config import KafkaConnection
from streamproc.processing.lane import transactional_id
from streamproc.records.dlq import Origin
from streamproc.records.outcome import OutRecord
from streamproc.settings import Settings
from streamproc.state.store import StateStore
from tests.integration.kafka_io import read_all

#: How long the new finisher is given to (wrongly) publish while the lane's transaction is
#: open; the outcome is checked after the transaction ends, whatever happened meanwhile.
_WHILE_OPEN_S = 2.0


def _pending(lead_id: str, correlation_id: str) -> PendingLead:
    return PendingLead(
        lead_id=lead_id,
        correlation_id=correlation_id,
        deadline=1e12,
        submitted_at=0.0,
        owner="killed",
        attempt=1,
        origin=Origin("raw", 0, 0, 0),
        key=lead_id.encode(),
        value=b'{"lead_id": "%s"}' % lead_id.encode(),
        headers=(),
        webhook="w",
    )


class _Instance:
    """What one process of the group holds for finishing: its state store, registry and
    finisher."""

    def __init__(self, settings: Settings) -> None:
        kafka = KafkaConnection.from_settings(settings)
        self.registry = PendingRegistry()
        self.store = StateStore(kafka, settings.topic_state, self._on_state)
        self.finisher = Finisher(
            ClayConfig.from_settings(settings),
            kafka,
            self.store,
            self.registry,
            group_id=settings.group_id,
        )
        self.stopped = False

    def _on_state(self, key: str, value: dict[str, object] | None, *_: int) -> None:
        if key.startswith(PENDING_PREFIX):
            self.registry.apply(key[len(PENDING_PREFIX) :], value)

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.finisher.stop()
            await self.store.stop()


async def test_a_lead_finished_behind_an_open_lane_transaction_is_not_published_again(
    topics: Settings,
) -> None:
    """The kill -9 double publication, in process and scaled down to one lead: a finisher
    finishes a lead while a killed process's lane transaction is still open on the same
    state partition (its tombstone lies past the last stable offset, so the next process
    restores the lead as pending); the next process's finisher, taking the id over, answers
    a duplicate callback with "not pending" and the lead is on leads.enriched once."""
    settings = topics
    kafka = KafkaConnection.from_settings(settings)
    first = _Instance(settings)
    await first.store.start()
    raw = TopicPartition(settings.topic_raw, 0)
    lane = transactional_producer(kafka, transactional_id(settings.group_id, raw))
    second: _Instance | None = None
    try:
        # L4 and L2 share L1's state partition (the key's hash), as the test needs.
        partition = first.store.partition_for(pending_key("L1", "c1"))
        for lead_id in ("L1", "L4"):
            key = pending_key(lead_id, "c1")
            assert first.store.partition_for(key) == partition
            await first.store.append(key, _pending(lead_id, "c1").to_dict())
        await first.store.catch_up([partition])

        def build(lead: PendingLead) -> list[OutRecord]:
            return [OutRecord(settings.topic_enriched, lead.key, lead.value)]

        # The first process's finisher holds the partition's id before the lane's transaction.
        assert (await first.finisher.finish(Finish("L4", "c1", build))).published
        await lane.start()
        await lane.begin_transaction()
        other = first.store.record(pending_key("L2", "c2"), _pending("L2", "c2").to_dict())
        assert other.partition == partition
        await (await lane.send(other.topic, key=other.key, value=other.value, partition=partition))
        assert (await first.finisher.finish(Finish("L1", "c1", build))).published
        await first.stop()  # the process is killed; its lane's transaction stays open

        second = _Instance(settings)
        await second.store.start()
        assert second.registry.get("L1", "c1") is not None  # restored to the stable offset
        again = asyncio.ensure_future(second.finisher.finish(Finish("L1", "c1", build)))
        await asyncio.wait({again}, timeout=_WHILE_OPEN_S)
        await lane.abort_transaction()  # the lane's partition is reassigned: fenced
        assert not (await again).published
    finally:
        await stop_quietly(lane)
        await first.stop()
        if second is not None:
            await second.stop()
    enriched = await read_all(settings, settings.topic_enriched)
    assert sorted(r.key or b"" for r in enriched) == [b"L1", b"L4"]
