"""A paid answer survives a SIGKILL: a lead run again after the kill is published with the
person its earlier call found and paid for, never with the domain cache's company fields,
and is not bought again unless its call was in flight at the kill."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from streamproc.settings import Settings
from streamproc.simulators.provider import serve_app
from streamproc.state.config import StateConfig
from streamproc.state.group_state import GroupState
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess, wait_for_no_members

LEADS = 1500


def _person(lead_id: str) -> dict[str, Any]:
    """What the provider knows of one lead: its own person, and its company."""
    n = lead_id[1:]
    return {
        "full_name": f"Person {n}",
        "title": f"Title {n}",
        "email": f"p{n}@co{n}.example",
        "linkedin_url": f"https://linkedin.example/in/p{n}",
        "company": f"Company {n}",
        "domain": f"co{n}.example",
        "country": "United States",
    }


@dataclass
class _Call:
    key: str | None
    started: float
    ended: float | None = None


@dataclass
class _Api:
    """A person-match API: one credit per lead answered; every call remembered per lead."""

    calls: dict[str, list[_Call]] = field(default_factory=lambda: defaultdict(list))

    async def enrich(self, request: web.Request) -> web.Response:
        lead = orjson.loads(await request.read())
        call = _Call(request.headers.get("Idempotency-Key"), time.monotonic())
        self.calls[lead["lead_id"]].append(call)
        # One lead in 20 is slow: the answered leads behind it wait for their commit (the
        # window commits in offset order), so a kill finds both kinds.
        await asyncio.sleep(1.5 if int(lead["lead_id"][1:]) % 20 == 0 else 0.05)
        call.ended = time.monotonic()
        body = {"data": _person(lead["lead_id"]), "credits": 1}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def answered(self) -> int:
        return sum(1 for calls in self.calls.values() for c in calls if c.ended is not None)

    def in_flight(self) -> int:
        return sum(1 for calls in self.calls.values() for c in calls if c.ended is None)


@asynccontextmanager
async def _serve(api: _Api) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/enrich", api.enrich)
    async with serve_app(app, "127.0.0.1", 0) as url:
        yield url


async def _wait(predicate: Any, timeout_s: float, proc: ProcessorProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert proc.alive(), proc.log_tail()
        assert time.monotonic() < deadline, proc.log_tail()
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_sigkill_loses_no_paid_answer_and_buys_none_twice(
    topics: Settings, tmp_path: Path
) -> None:
    """1,500 leads with their own e-mails and domains; the processor is SIGKILLed while
    hundreds of answered leads wait for their commit, then restarted: every lead is enriched
    once with its own person (source provider), the provider billed a lead twice only for a
    call in flight at the kill (with the same Idempotency-Key), and no receipt outlives its
    lead's commit."""
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"L{i}".encode(), orjson.dumps({"lead_id": f"L{i}", "email": f"p{i}@co{i}.example"}))
        for i in range(LEADS)
    ]
    api = _Api()
    async with _serve(api) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            # Long commits: at the kill, many leads are answered and not yet committed.
            commit_interval_ms=2000,
            max_in_flight=200,
            max_in_flight_per_partition=200,
        )
        await produce(settings, records)
        proc = ProcessorProcess(settings, tmp_path, "receipts")
        try:
            proc.start()
            # Killed with answered leads waiting for their commit and calls in flight.
            await _wait(lambda: api.answered() >= 400 and api.in_flight() >= 10, 180, proc)
            killed_at = time.monotonic()
            proc.kill()
            await wait_for_no_members(settings)
            restarted_at = time.monotonic()
            proc.start("--stop-when-idle-s", "3")
            code = await asyncio.to_thread(proc.wait, 300)
            assert code == 0, proc.log_tail()
        finally:
            proc.stop()

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert dlq == []
    landed = Counter((r.key or b"").decode() for r in enriched)
    assert set(landed) == {f"L{i}" for i in range(LEADS)}
    assert max(landed.values()) == 1
    sources: Counter[str] = Counter()
    for read in enriched:
        lead = orjson.loads(read.value or b"")
        sources[lead["enrichment_meta"]["source"]] += 1
        assert lead["enrichment"] == _person(lead["lead_id"]), lead
        assert lead["enrichment_meta"]["credits"] == 1, lead
    assert sources == Counter(provider=LEADS)

    # Billed twice: only calls in flight at the kill (sent by the killed process, some
    # reaching this server's loop just after it; answered no earlier than just before it, so
    # the answer may not have reached a durable receipt), each time with the lead's one
    # Idempotency-Key.
    twice = {lead: calls for lead, calls in api.calls.items() if len(calls) > 1}
    in_flight = {
        lead
        for lead, calls in api.calls.items()
        if calls[0].started < restarted_at and (calls[0].ended or killed_at) >= killed_at - 1.0
    }
    print(
        f"receipts crash: calls={sum(len(c) for c in api.calls.values())} leads={LEADS} "
        f"twice={len(twice)} in_flight_at_kill={len(in_flight)}"
    )
    assert twice, "no call was in flight at the kill"
    assert set(twice) <= in_flight, sorted(set(twice) - in_flight)[:10]
    for lead, calls in twice.items():
        keys = {call.key for call in calls}
        assert len(keys) == 1 and None not in keys, (lead, calls)

    # Every receipt is gone with its lead's commit: the state topic, folded as a restore
    # would fold it, holds none.
    state = await read_all(settings, settings.topic_state)
    reader = GroupState.reader(StateConfig.from_settings(settings))
    carried = 0
    for read in state:
        value = None if read.value is None else orjson.loads(read.value)
        carried += isinstance(value, dict) and "receipt" in value
        reader.on_state((read.key or b"").decode(), value, read.partition, read.offset)
    assert carried >= LEADS, "receipts were not journaled"
    assert len(reader.receipts) == 0
