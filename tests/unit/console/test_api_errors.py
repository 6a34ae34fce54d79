"""A Kafka error under a console route is a 503 with one JSON line and one log line, over
a real HTTP server (aiohttp) and client (httpx)."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from aiokafka.errors import KafkaConnectionError

from streamproc.console import api
from streamproc.console.api import Console
from streamproc.console.config import ConsoleConfig
from streamproc.logs import configure_logging
from streamproc.settings import Settings

TOKEN = "tok-should-not-log"


async def test_a_kafka_error_in_a_dlq_read_is_a_503_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broker_gone(*_: object) -> object:
        raise KafkaConnectionError("Connection at broker-1:9092 closed")

    monkeypatch.setattr(api, "list_dlq", broker_gone)
    configure_logging("INFO", "json")
    app = web.Application()
    settings = Settings(console_read_token=TOKEN)
    Console(ConsoleConfig.from_settings(settings), state=dict, restored=lambda: False).install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"http://127.0.0.1:{port}/console/api/dlq",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
    finally:
        await runner.cleanup()
    assert response.status_code == 503
    assert response.json() == {"error": "KafkaConnectionError: Connection at broker-1:9092 closed"}
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "console.kafka_error" in line]
    assert len(lines) == 1
    assert "Traceback" not in err and TOKEN not in err
