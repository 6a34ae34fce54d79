"""A DLQ record that the target topic refuses stays in the DLQ: the replayer checks every
delivery before its offsets move past the records (the aiokafka transaction would commit
without the refused record)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamproc.errors import StreamprocError
from streamproc.replay.config import ReplayConfig
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.settings import Settings
from tests.integration.conftest import configure
from tests.integration.kafka_io import read_all
from tests.integration.replay.dlq_io import plant_dlq, retriable_records


async def test_a_record_the_target_refuses_stops_the_replay_and_stays_in_the_dlq(
    topics: Settings,
) -> None:
    """leads.raw takes records of at most 3,000 bytes and one of three DLQ records (one
    partition, one batch) is larger: the replay stops with one line naming it, nothing of
    its batch reaches leads.raw, and a dry run afterwards still sees all three records."""
    raw = f"{topics.topic_raw}.small"
    settings = configure(topics, topic_raw=raw)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(raw, 3, 1, topic_configs={"max.message.bytes": "3000"})]
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.3)
    records = retriable_records(3)
    key, _, headers, planted = records[1]
    records[1] = (key, b'{"lead_id":"L001","domain":"l.example","pad":"' + b"p" * 5_000 + b'"}',
                  headers, planted)  # fmt: skip
    # One DLQ partition: the three are read in one fetch and replayed in one transaction.
    # Spread by key over partitions, a fetch could bring L002 alone, in a transaction of
    # its own that rightly commits (CI saw it once: L002 in leads.raw).
    await plant_dlq(settings, records, partition=0)

    refused = r"refused the record at \S+ partition \d+ offset \d+"
    with pytest.raises(StreamprocError, match=refused):
        await Replayer(ReplayConfig.from_settings(settings), ReplayOptions()).run()

    assert await read_all(settings, raw) == []
    again = await Replayer(ReplayConfig.from_settings(settings), ReplayOptions(dry_run=True)).run()
    assert again.read == 3
