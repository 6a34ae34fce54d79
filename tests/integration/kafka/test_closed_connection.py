"""Under uvloop, a request written to a connection the broker has just closed fails as a
lost connection (aiokafka retries it) instead of a RuntimeError that killed a client's
metadata task and left every later produce request of that producer waiting for ever:
what stopped a partition when the broker was killed under load (test_broker_restart.py,
which shows the whole failure; this test shows the one write that caused it).

A real connection to the real broker is closed, and the request written in the rounds
after uvloop has closed the transport and before aiokafka's reader has let go of it.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

from streamproc.kafka import closed_connection

uvloop = pytest.importorskip("uvloop")


def test_a_request_on_a_connection_the_broker_closed_fails_as_a_lost_connection(
    kafka_bootstrap: str,
) -> None:
    closed_connection.install()
    host, port = kafka_bootstrap.rsplit(":", 1)

    async def scenario() -> None:
        conn = await create_conn(host, int(port))
        try:
            transport = conn._writer.transport
            transport.abort()
            for _ in range(10):
                if "closed=True" in repr(transport):
                    break
                await asyncio.sleep(0)
            assert conn._writer is not None, "aiokafka let go of the connection already"
            with pytest.raises(KafkaConnectionError, match="broken"):
                conn.send(MetadataRequest([]))
            assert conn._writer is None  # closed, so the next request reconnects
        finally:
            conn.close()

    uvloop.run(scenario())
