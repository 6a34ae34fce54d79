"""The console on a processor's own ops port: the wiring ``streamproc run`` uses (the
CLI's ``_mount_console``) on a real App, a real provider simulator and the broker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson

from streamproc.app import App
from streamproc.cli import _mount_console
from streamproc.ops.http import HttpServer
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce

READ = "rd-" + uuid.uuid4().hex


def _lead(lead_id: str, domain: str) -> bytes:
    return orjson.dumps({"lead_id": lead_id, "domain": domain})


async def _until(
    http: httpx.AsyncClient,
    url: str,
    done: Any,
    timeout_s: float = 30,
    headers: dict[str, str] | None = None,
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await http.get(url, headers=headers)).json()
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
        settings = configure(
            topics, provider_url=f"{url}/enrich", http_host="127.0.0.1", console_read_token=READ
        )
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

                reader = {"Authorization": f"Bearer {READ}"}
                dlq = (await http.get(f"{base}/api/dlq", headers=reader)).json()
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


async def _serving(server: HttpServer) -> str:
    while server._port is None:
        await asyncio.sleep(0.05)
    return server.url


async def test_dlq_records_need_the_token_and_a_known_host(topics: Settings) -> None:
    """Over HTTP on a running processor: the DLQ list and a record are refused without the
    read token (401), with a wrong one (401), and under a host name the console does not
    know (421, a DNS-rebinding page's), and shown with it; the overview stays open, and the
    operator token reads too."""
    operator = "op-" + uuid.uuid4().hex
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"r0", _lead("r0", "c0.reject.test")),
        (b"g0", _lead("g0", "co0.example")),
    ]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=2, seed=3)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            http_host="127.0.0.1",
            console_read_token=READ,
            console_token=operator,
            console_allowed_hosts="console.internal.example",
        )
        await produce(settings, records)
        app = App(settings)
        server = _mount_console(app)
        assert server is app.ops
        run = asyncio.ensure_future(app.run())
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                base = f"{await _serving(server)}/console/api"
                reader = {"Authorization": f"Bearer {READ}"}
                listed = await _until(
                    http, f"{base}/dlq", lambda d: d.get("matching") == 1, headers=reader
                )
                assert [r["key"] for r in listed["records"]] == ["r0"]
                where = {k: listed["records"][0][k] for k in ("partition", "offset")}

                for path, params in (("dlq", {}), ("dlq/record", where)):
                    bare = await http.get(f"{base}/{path}", params=params)
                    assert bare.status_code == 401, bare.text
                    assert "r0" not in bare.text and "reject.test" not in bare.text
                    wrong = await http.get(
                        f"{base}/{path}", params=params, headers={"Authorization": "Bearer x"}
                    )
                    assert wrong.status_code == 401
                    rebound = await http.get(
                        f"{base}/{path}",
                        params=params,
                        headers={**reader, "Host": f"attacker.example:{server.port}"},
                    )
                    assert rebound.status_code == 421, rebound.text
                    assert "reject.test" not in rebound.text

                record = await http.get(f"{base}/dlq/record", params=where, headers=reader)
                assert record.status_code == 200
                assert record.json()["payload"]["value"]["domain"] == "c0.reject.test"
                as_operator = await http.get(
                    f"{base}/dlq", headers={"Authorization": f"Bearer {operator}"}
                )
                assert as_operator.json()["matching"] == 1
                named = await http.get(
                    f"{base}/dlq", headers={**reader, "Host": "console.internal.example"}
                )
                assert named.status_code == 200

                overview = await http.get(f"{base}/overview")
                assert overview.status_code == 200
                assert overview.json()["records_enabled"] is True
                assert (
                    await http.get(f"{base}/overview", headers={"Host": "attacker.example"})
                ).status_code == 421
                # The ops endpoints are not the console's: Prometheus keeps its scrape.
                status = await http.get(
                    f"{await _serving(app.ops)}/status", headers={"Host": "attacker.example"}
                )
                assert status.status_code == 200
        finally:
            app.request_stop()
            await asyncio.wait_for(run, timeout=60)


async def test_the_console_on_its_own_port_leaves_the_ops_port_without_it(
    topics: Settings,
) -> None:
    """With console_port the console answers on its own listener only: the ops port (the
    one Clay's callbacks come to) has no /console; with no token configured, no record is
    shown to anyone (403) while the overview is."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=2, seed=3)) as url:
        settings = configure(
            topics, provider_url=f"{url}/enrich", http_host="127.0.0.1", console_port=0
        )
        app = App(settings)
        server = _mount_console(app)
        assert server is not app.ops
        run = asyncio.ensure_future(app.run())
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                console = f"{await _serving(server)}/console"
                ops = await _serving(app.ops)
                assert server.port != app.ops.port
                assert (await http.get(f"{ops}/console/api/overview")).status_code == 404
                assert (await http.get(f"{ops}/console/api/dlq")).status_code == 404
                assert (await http.get(f"{ops}/healthz")).status_code == 200
                overview = await http.get(f"{console}/api/overview")
                assert overview.status_code == 200
                assert overview.json()["records_enabled"] is False
                hidden = await http.get(
                    f"{console}/api/dlq", headers={"Authorization": "Bearer anything"}
                )
                assert hidden.status_code == 403
                assert "STREAMPROC_CONSOLE_READ_TOKEN" in hidden.json()["error"]
                assert (await http.get(f"{console}/metrics")).status_code == 404
        finally:
            app.request_stop()
            await asyncio.wait_for(run, timeout=60)
