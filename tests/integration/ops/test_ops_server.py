"""OpsServer on a real socket: port 0, two servers side by side, a taken port, stop."""

from __future__ import annotations

import httpx
import pytest

from streamproc.ops.http import OpsServer
from streamproc.ops.metrics import Metrics


def server(port: int = 0) -> OpsServer:
    return OpsServer("127.0.0.1", port, Metrics(), lambda: {"ok": True}, lambda: (True, []))


async def test_port_zero_binds_a_free_port_and_serves_every_route() -> None:
    """Two servers on port 0 get distinct real ports and answer all four routes over HTTP."""
    async with server() as one, server() as two, httpx.AsyncClient() as http:
        assert one.port != two.port
        assert one.port > 0
        for path in ("/metrics", "/healthz", "/readyz", "/status"):
            response = await http.get(f"{one.url}{path}")
            assert response.status_code == 200, path
        scraped = (await http.get(f"{two.url}/metrics")).text
        assert "process_resident_memory_bytes" in scraped
        assert 'streamproc_info{version="' in scraped


async def test_taken_port_raises_oserror() -> None:
    """Binding a port another server holds fails at start(), not later."""
    async with server() as first:
        second = server(first.port)
        with pytest.raises(OSError, match="in use"):
            await second.start()
        await second.stop()


async def test_stop_closes_the_port() -> None:
    """After stop() the port refuses connections; a second stop() is harmless."""
    ops = server()
    await ops.start()
    url = ops.url
    await ops.stop()
    await ops.stop()
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/healthz")
