"""The console on a processor's own ops port: the wiring ``streamproc run`` uses (the
CLI's ``_mount_console``) on a real App, a real provider simulator and the broker."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from streamproc.app import App
from streamproc.cli import _mount_console
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce


def _lead(lead_id: str, domain: str) -> bytes:
    return orjson.dumps({"lead_id": lead_id, "domain": domain})


async def _until(http: httpx.AsyncClient, url: str, done: Any, timeout_s: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await http.get(url)).json()
        if done(body) or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.2)


async def test_a_processor_serves_the_console(topics: Settings) -> None:
    """/console/ on the processor's port: live health and counters, the group's lag, the
    DLQ its run wrote, and the page itself under a CSP that allows only this server."""
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"g{i}".encode(), _lead(f"g{i}", f"co{i}.example")) for i in range(6)
    ]
    records += [(f"r{i}".encode(), _lead(f"r{i}", f"c{i}.reject.test")) for i in range(2)]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=2, seed=3)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich", http_host="127.0.0.1")
        await produce(settings, records)
        app = App(settings)
        _mount_console(app)
        run = asyncio.ensure_future(app.run())
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                while app.ops._port is None:
                    await asyncio.sleep(0.05)
                base = f"{app.ops.url}/console"
                overview = await _until(
                    http,
                    f"{base}/api/overview",
                    lambda o: (
                        (o["throughput"]["this_process"] or {}).get("committed") == 8
                        and o["lag"].get("total") == 0
                    ),
                )
                assert overview["mode"] == "live"
                assert overview["health"]["known"] is True
                assert overview["health"]["ready"] is True
                assert overview["throughput"]["this_process"]["dlq"] == 2
                assert overview["lag"]["total"] == 0
                assert sum(p["end"] for p in overview["lag"]["partitions"]) >= 8
                assert overview["clay"]["known"] is False
                assert overview["replay_enabled"] is False

                dlq = (await http.get(f"{base}/api/dlq")).json()
                assert sorted(r["key"] for r in dlq["records"]) == ["r0", "r1"]
                assert {r["error_class"] for r in dlq["records"]} == {"provider_rejected"}

                page = await http.get(f"{base}/")
                assert page.status_code == 200
                assert '<script src="console.js"' in page.text
                assert "default-src 'none'" in page.headers["Content-Security-Policy"]
                assert (await http.get(f"{base}/console.js")).status_code == 200
                assert (await http.get(f"{base}/api.py")).status_code == 404  # only the page

                # No token configured: the console is read-only, a dry run is not.
                body = {"filters": {"error_class": "provider_rejected"}, "dry_run": False}
                refused = await http.post(f"{base}/api/replay", json=body)
                assert refused.status_code == 403
                assert "read-only" in refused.json()["error"]
                dry = await http.post(f"{base}/api/replay", json={**body, "dry_run": True})
                assert dry.status_code == 200, dry.text
                assert (dry.json()["parked"], dry.json()["replayed"]) == (2, 0)
        finally:
            app.request_stop()
            await asyncio.wait_for(run, timeout=60)
