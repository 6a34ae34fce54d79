"""One secured broker (SASL_SSL + mTLS listeners) for the whole test session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.security.broker import (
    TOPIC,
    SecureBroker,
    start_secure_broker,
    stop_secure_broker,
)


@pytest.fixture(scope="session")
async def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecureBroker]:
    """A second local broker with SASL_SSL and SSL listeners; stopped by pid at the end."""
    home: Path = tmp_path_factory.mktemp("secure-kafka")
    broker = start_secure_broker(home)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.plaintext)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        yield broker
    finally:
        stop_secure_broker(home, int(broker.plaintext.rsplit(":", 1)[1]))
