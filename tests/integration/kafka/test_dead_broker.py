"""Every Kafka command against a broker that is not there: one line, the connect timeout
honoured, no traceback, no aiokafka error line, no unclosed client."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from streamproc.errors import KafkaSetupError
from streamproc.kafka.client import consumer, start_client
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings

COMMANDS = [
    ["topics", "create"],
    ["dlq", "stats"],
    ["state", "show"],
    ["replay", "--no-progress"],
    ["produce-sample", "--count", "1"],
    ["run", "--http-port", "0"],
]


@pytest.fixture
async def silent_broker() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: what a broker behind a
    wrong advertised listener or a hung JVM looks like to a client."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        for writer in held:
            writer.close()


def _refused_address() -> str:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def _streamproc(bootstrap: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STREAMPROC_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMPROC_KAFKA_CONNECT_TIMEOUT_S": "2",
        "STREAMPROC_PROVIDER_URL": "http://127.0.0.1:9/enrich",
        "STREAMPROC_LOG_FORMAT": "json",
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streamproc", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
async def test_a_silent_broker_is_one_line_within_the_connect_timeout(
    silent_broker: str, argv: list[str]
) -> None:
    """A broker that accepts and never answers: exit 1 and one line that says the connect
    timeout (2 s) ran out, instead of aiokafka's 40 s request timeout and its own lines."""
    result = await _streamproc(silent_broker, argv)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert result.returncode == 1, result.stderr
    assert errors == [
        f"streamproc: cannot reach Kafka at {silent_broker} ({silent_broker}: no answer "
        "within 2 s): is the broker up, and STREAMPROC_BOOTSTRAP_SERVERS right?"
    ]
    assert "Unclosed" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
async def test_a_refused_connection_is_one_line(argv: list[str]) -> None:
    """Nothing listening: exit 1 and one line saying the connection was refused."""
    address = _refused_address()
    result = await _streamproc(address, argv)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert result.returncode == 1, result.stderr
    assert errors == [
        f"streamproc: cannot reach Kafka at {address} ({address}: connection refused): is "
        "the broker up, and STREAMPROC_BOOTSTRAP_SERVERS right?"
    ]


async def test_start_client_stops_the_client_it_could_not_start(silent_broker: str) -> None:
    """start_client gives up after kafka_connect_timeout_s with a KafkaSetupError and leaves
    no client running (the preflight aside, a client may be the first to find out)."""
    settings = Settings(bootstrap_servers=silent_broker, kafka_connect_timeout_s=1)
    kafka = KafkaConnection.from_settings(settings)
    client = consumer(kafka, group_id=None)
    with pytest.raises(KafkaSetupError, match=r"no answer within 1 s"):
        await start_client(kafka, client)
    assert client._closed
