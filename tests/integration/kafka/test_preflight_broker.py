"""check_kafka against the shared PLAINTEXT broker and a few dead or silent addresses."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from streamproc.errors import KafkaSetupError
from streamproc.kafka.config import KafkaConnection
from streamproc.kafka.preflight import check_kafka
from streamproc.settings import Settings
from tests.integration.conftest import configure


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    srv = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(srv.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    srv.close()
    await srv.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_reachable_broker_with_its_topics_passes(topics: Settings) -> None:
    """The test broker and the run's topics pass the preflight, with a dead server first."""
    settings = configure(
        topics, bootstrap_servers=f"127.0.0.1:{closed_port()},{topics.bootstrap_servers}"
    )
    await check_kafka(
        KafkaConnection.from_settings(settings),
        timeout_s=5,
        topics=[settings.topic_raw, settings.topic_state],
    )


async def test_missing_topic_is_reported(topics: Settings) -> None:
    """A topic that does not exist on the real broker is named with the command to fix it."""
    with pytest.raises(KafkaSetupError, match=r"^topic no.such.topic does not exist"):
        await check_kafka(
            KafkaConnection.from_settings(topics), timeout_s=5, topics=["no.such.topic"]
        )


async def test_refused_port_fails_at_once() -> None:
    """Nothing listening: connection refused, in well under a second."""
    port = closed_port()
    began = time.monotonic()
    with pytest.raises(KafkaSetupError, match=rf"127.0.0.1:{port}: connection refused"):
        await check_kafka(
            KafkaConnection.from_settings(Settings(bootstrap_servers=f"127.0.0.1:{port}")),
            timeout_s=5,
        )
    assert time.monotonic() - began < 1.0


async def test_silent_server_fails_after_the_timeout(silent_port: int) -> None:
    """A server that accepts but never answers is reported after timeout_s, not never."""
    began = time.monotonic()
    with pytest.raises(KafkaSetupError, match=r"no answer within 0\.5 s"):
        await check_kafka(
            KafkaConnection.from_settings(Settings(bootstrap_servers=f"127.0.0.1:{silent_port}")),
            timeout_s=0.5,
        )
    assert 0.4 < time.monotonic() - began < 2.0
