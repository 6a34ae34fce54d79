"""The state store against the real broker: what ``catch_up`` waits for, and its client
after ``stop``."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streamproc.errors import KafkaSetupError
from streamproc.kafka.client import stop_quietly, transaction, transactional_producer
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings
from streamproc.state.store import StateStore

#: Bounds how long the test lets ``catch_up`` wait for a transaction it keeps open.
_OPEN_WAIT_S = 2.0


async def test_catch_up_waits_for_what_was_committed_behind_an_open_transaction(
    topics: Settings,
) -> None:
    """A record committed behind another producer's open transaction (past the last stable
    offset) is applied before catch_up returns: while that transaction is open catch_up
    does not return, and once it is aborted the record is applied and the aborted one not."""
    kafka = KafkaConnection.from_settings(topics)
    applied: list[str] = []
    store = StateStore(kafka, topics.topic_state, lambda key, *_: applied.append(key))
    await store.start()
    run = uuid.uuid4().hex[:8]
    # A lane of a killed process: its transaction stays open until someone fences it.
    lane = transactional_producer(kafka, f"test-lane-{run}")
    # The finisher that held the id before: its tombstone is committed behind the lane's.
    predecessor = transactional_producer(kafka, f"test-finisher-{run}")
    await lane.start()
    await predecessor.start()
    try:
        await lane.begin_transaction()
        await (await lane.send(topics.topic_state, key=b"open", value=b"{}", partition=1))
        async with transaction(predecessor):
            await predecessor.send(topics.topic_state, key=b"behind", value=None, partition=1)
        with pytest.raises(TimeoutError):
            await store.catch_up([1], timeout_s=_OPEN_WAIT_S)
        assert "behind" not in applied
        await lane.abort_transaction()
        await store.catch_up([1])
        assert applied == ["behind"]
    finally:
        await stop_quietly(lane)
        await stop_quietly(predecessor)
        await store.stop()


async def test_a_catch_up_racing_stop_leaves_no_client_running(topics: Settings) -> None:
    """A store stopped while a catch_up starts its end-offsets client, asks it, or waits
    for the tail: the catch_up ends at once, its client is stopped by stop(), and one asked
    for after stop() is refused instead of starting a client nobody stops."""
    kafka = KafkaConnection.from_settings(topics)
    # A record on the partition, so a catch_up has something to wait for.
    producer = transactional_producer(kafka, f"test-racing-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        async with transaction(producer):
            await producer.send(topics.topic_state, key=b"k", value=b"{}", partition=0)
    finally:
        await stop_quietly(producer)
    for delay_s in (0.0, 0.005, 0.02, 0.05, 0.1, 0.2):
        store = StateStore(kafka, topics.topic_state, lambda *_: None)
        await store.start()
        store._applied[0] = 0  # as if the tail had not read the record yet
        racing = asyncio.ensure_future(store.catch_up([0], timeout_s=60))
        await asyncio.sleep(delay_s)
        await store.stop()
        done, _ = await asyncio.wait([racing], timeout=10)
        assert done, f"catch_up kept waiting after stop() (stopped after {delay_s} s)"
        assert store._written_ends is None
    with pytest.raises(KafkaSetupError, match="stopped"):
        await store.catch_up([0])
    assert store._written_ends is None
