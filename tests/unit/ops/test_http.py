"""OpsServer routes through aiohttp's test client (loopback only, no external network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streamproc.ops.http import OpsServer
from streamproc.ops.metrics import Metrics
from streamproc.ops.readiness import Readiness
from streamproc.processing.processor import ProcessorStats

Client = Callable[..., Any]


def make_server(
    status: Callable[[], Mapping[str, Any]] | None = None,
    ready: Callable[[], Readiness] | None = None,
    metrics: Metrics | None = None,
) -> OpsServer:
    return OpsServer(
        "127.0.0.1",
        0,
        metrics or Metrics(process_metrics=False),
        status or (lambda: {"breaker": {"state": "closed"}}),
        ready or (lambda: (True, [])),
    )


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[OpsServer], Any]]:
    clients: list[TestClient[Any, Any]] = []

    async def make(server: OpsServer) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(server.app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_metrics_serves_prometheus_text(client_for: Client) -> None:
    """/metrics answers the registry in text format with Prometheus' content type."""
    metrics = Metrics(process_metrics=False)
    metrics.observe_processor(ProcessorStats(consumed=7))
    client = await client_for(make_server(metrics=metrics))
    response = await client.get("/metrics")
    body = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "streamproc_leads_in_total 7.0" in body


async def test_healthz_is_ok_while_the_loop_serves(client_for: Client) -> None:
    """/healthz is 200 even when the process is not ready (liveness is not readiness)."""
    client = await client_for(make_server(ready=lambda: (False, ["state not restored"])))
    response = await client.get("/healthz")
    assert response.status == 200
    assert orjson.loads(await response.read()) == {"status": "ok"}


async def test_readyz_is_503_with_reasons_until_ready(client_for: Client) -> None:
    """/readyz is 503 with the reasons while not ready, 200 once ready_fn says so."""
    state: dict[str, Readiness] = {
        "now": (False, ["state not restored", "consumer not in the group"])
    }
    client = await client_for(make_server(ready=lambda: state["now"]))
    before = await client.get("/readyz")
    assert before.status == 503
    assert orjson.loads(await before.read()) == {
        "ready": False,
        "reasons": ["state not restored", "consumer not in the group"],
    }
    state["now"] = (True, [])
    after = await client.get("/readyz")
    assert after.status == 200
    assert orjson.loads(await after.read()) == {"ready": True}


async def test_status_is_the_status_fn_as_json(client_for: Client) -> None:
    """/status returns status_fn() as JSON, called afresh per request."""
    calls: list[int] = []

    def status() -> dict[str, Any]:
        calls.append(1)
        return {"budget": {"remaining": 500 - len(calls)}}

    client = await client_for(make_server(status=status))
    first = orjson.loads(await (await client.get("/status")).read())
    second = orjson.loads(await (await client.get("/status")).read())
    assert first == {"budget": {"remaining": 499}}
    assert second == {"budget": {"remaining": 498}}


async def test_failing_callbacks_answer_500_without_details(client_for: Client) -> None:
    """A raising status_fn or ready_fn is a 500 naming only the exception class."""

    def broken() -> Any:
        raise KeyError("secret-internal-detail")

    client = await client_for(make_server(status=broken, ready=broken))
    status = await client.get("/status")
    ready = await client.get("/readyz")
    assert status.status == 500
    assert ready.status == 500
    assert orjson.loads(await status.read()) == {"error": "status unavailable: KeyError"}
    assert "secret-internal-detail" not in await ready.text()


def test_port_is_unknown_before_start() -> None:
    """Asking for the bound port before start() is a clear error, not None or 0."""
    with pytest.raises(RuntimeError, match="after start"):
        _ = make_server().port
