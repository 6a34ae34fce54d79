"""The console's overview lists each waterfall provider's numbers, folded from the state
topic's hit records (over a real HTTP server)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from aiohttp import web

from streamproc.console.api import Console
from streamproc.console.config import ConsoleConfig
from streamproc.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
STATE = {
    "breaker": {"state": "closed", "failures_in_window": 0, "reopens_at": None},
    "budget": {"day": "2026-12-07", "timezone": "UTC", "limit": 500, "spent": 4,
               "reserved": 0, "remaining": 496, "exhausted": False,
               "resets_at": "2026-12-08T00:00:00Z"},
    "cache": {"entries": 0},
}  # fmt: skip


async def _overview(console: Console) -> dict[str, object]:
    app = web.Application()
    console.install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/console/api/overview")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body
    finally:
        await runner.cleanup()


async def test_the_overview_carries_each_providers_calls_hits_credits_and_rates() -> None:
    """Two instances' totals of one provider are summed; another provider's stand apart;
    a tombstoned key and an older day's record are not today's."""
    console = Console(
        ConsoleConfig.from_settings(Settings()),
        state=lambda: STATE,
        restored=lambda: False,
        clock=lambda: NOW,
    )
    records = [
        ("waterfall/hits/smb/finder/2026-12-07/i1", {"calls": 3, "hits": 2, "credits": 2}),
        ("waterfall/hits/ent/finder/2026-12-07/i2", {"calls": 1, "hits": 0, "credits": 0}),
        ("waterfall/hits/ent/people/2026-12-07/i2", {"calls": 2, "hits": 1, "credits": 2}),
        ("waterfall/hits/ent/people/2026-12-07/i3", {"calls": 9, "hits": 9, "credits": 9}),
        ("waterfall/hits/ent/people/2026-12-07/i3", None),
        ("waterfall/hits/ent/people/2026-12-01/i2", {"calls": 5, "hits": 5, "credits": 5}),
    ]
    for offset, (key, value) in enumerate(records):
        console.on_state(key, value, 0, offset)
    waterfall = (await _overview(console))["waterfall"]
    assert isinstance(waterfall, dict)
    assert waterfall["day"] == "2026-12-07"
    rows = {row["provider"]: row for row in waterfall["providers"]}
    assert rows["finder"]["today"] == {
        "calls": 4,
        "hits": 2,
        "credits": 2,
        "fill_rate": 0.5,
        "credits_per_found": 1.0,
    }
    assert rows["people"]["today"]["credits_per_found"] == 2.0
    assert rows["people"]["window"]["calls"] == 7


async def test_the_overview_lists_no_providers_without_a_waterfall() -> None:
    """No hit record in the state topic: an empty provider list, the page hides the card."""
    console = Console(
        ConsoleConfig.from_settings(Settings()),
        state=lambda: STATE,
        restored=lambda: False,
        clock=lambda: NOW,
    )
    waterfall = (await _overview(console))["waterfall"]
    assert isinstance(waterfall, dict)
    assert waterfall["providers"] == []


def test_the_console_folds_breaker_records_and_skips_every_leads_records() -> None:
    """A breaker record is a transition in the console's log; a lead's cache entry and its
    receipt's tombstone change nothing there."""
    console = Console(
        ConsoleConfig.from_settings(Settings()),
        state=lambda: STATE,
        restored=lambda: False,
        clock=lambda: NOW,
    )
    console.on_state("cache/d:acme.com", {"data": {}, "at": NOW}, 0, 0)
    console.on_state("receipt/L1/abc", None, 0, 1)
    console.on_state("breaker/provider", {"state": "open", "at": NOW, "owner": "i1"}, 0, 2)
    got = [(t.to_state, t.owner) for t in console.breaker_log.since(0)]
    assert got == [("open", "i1")]
