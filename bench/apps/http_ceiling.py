"""The ``http-ceiling`` baseline: one HTTP client hammering the mock provider, no Kafka.

``BENCH_COUNT`` leads are POSTed (JSON body, ``Idempotency-Key``) by ``BENCH_CONCURRENCY``
workers sharing one client whose pool has one connection per worker; workers stop taking
new leads after ``BENCH_MAX_S`` seconds (a slow client is measured on fewer calls).
``BENCH_TRANSPORT`` picks the client: ``httpx`` (httpx's own transport), ``httpx-aiohttp``
(httpx's API over aiohttp's transport, from the httpx-aiohttp package) or ``aiohttp``
(aiohttp's client directly: not httpx's API, shown as the reference for what the event
loop can do).

Prints the wall time from the first request to the last answer, the CPU seconds of that
span and the per-call latencies' percentiles.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.apps.common import emit, run_main

Post = Callable[[bytes, str], Awaitable[int]]


def _bodies(count: int, run: str) -> list[tuple[bytes, str]]:
    out = []
    for i in range(count):
        lead_id = f"{run}-h{i:07d}"
        domain = f"h{i}-{run}.example"
        lead = {"lead_id": lead_id, "email": f"ada.{i}@{domain}", "domain": domain}
        out.append((orjson.dumps(lead), lead_id))
    return out


async def _hammer(
    post: Post, bodies: list[tuple[bytes, str]], concurrency: int, max_s: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    it = iter(bodies)
    deadline = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal errors
        for body, key in it:
            if time.perf_counter() > deadline:
                return
            began = time.perf_counter()
            status = await post(body, key)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                errors += 1

    cpu0, t0, epoch0 = time.process_time(), time.perf_counter(), time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "calls": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "cpu_s": cpu,
        "t0": epoch0,
        "t1": epoch0 + wall,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
    }


async def main() -> None:
    url = os.environ["BENCH_PROVIDER_URL"]
    count = int(os.environ.get("BENCH_COUNT", "20000"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "1000"))
    transport = os.environ.get("BENCH_TRANSPORT", "httpx")
    max_s = float(os.environ.get("BENCH_MAX_S", "60"))
    bodies = _bodies(count, os.environ.get("BENCH_RUN", "run"))
    headers = {"Content-Type": "application/json"}
    result: dict[str, Any]
    if transport == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post_aiohttp(body: bytes, key: str) -> int:
                async with session.post(
                    url, data=body, headers={**headers, "Idempotency-Key": key}
                ) as response:
                    await response.read()
                    return response.status

            result = await _hammer(post_aiohttp, bodies, concurrency, max_s)
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http_transport: httpx.AsyncBaseTransport
        if transport == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            http_transport = AiohttpTransport(limits=limits)
        elif transport == "httpx":
            http_transport = httpx.AsyncHTTPTransport(limits=limits)
        else:
            raise SystemExit(f"unknown BENCH_TRANSPORT {transport!r}")
        async with httpx.AsyncClient(
            transport=http_transport, timeout=httpx.Timeout(10.0), headers=headers
        ) as client:

            async def post_httpx(body: bytes, key: str) -> int:
                response = await client.post(url, content=body, headers={"Idempotency-Key": key})
                return response.status_code

            result = await _hammer(post_httpx, bodies, concurrency, max_s)
    emit(transport=transport, **result)


if __name__ == "__main__":
    run_main(main())
