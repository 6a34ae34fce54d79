"""A waterfall of two providers in one running pipeline, over real HTTP and the real broker:
the e-mail finder and the person-match simulators (Hunter's and Apollo's shapes), each a
declarative provider instance of examples/waterfall/email_waterfall.toml. Lead counts are
small (150-200) to keep CI time down."""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from streamproc.app import App
from streamproc.kafka.config import KafkaConnection
from streamproc.processing.config import GuardConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.settings import Settings
from streamproc.simulators.apis import ApiSimConfig, serve_api
from streamproc.state.store import StateStore
from streamproc.waterfall.ledger import PREFIX as HITS_PREFIX
from tests.integration.conftest import ROOT, configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.replay.dlq_io import write_state

EXAMPLE = ROOT / "examples" / "waterfall" / "email_waterfall.toml"


def _example() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())["streamproc"]
    return table


def _lead(i: int, domain: str) -> tuple[bytes, bytes]:
    lead = {"lead_id": f"l{i}", "email": f"pat{i}@{domain}", "domain": domain, "first_name": "Pat"}
    return f"l{i}".encode(), orjson.dumps(lead)


def _settings(topics: Settings, **changes: Any) -> Settings:
    # A big budget, no cache (every lead runs its waterfall), retries that do not wait.
    return configure(
        topics,
        budget_daily_credits=10**9,
        cache_key="off",
        provider_backoff_base_s=0.01,
        provider_backoff_max_s=0.05,
        **changes,
    )


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        stats: dict[str, Any] = (await client.get(f"{url}/stats")).json()
        return stats


async def _outputs(settings: Settings, n: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Each lead once in leads.enriched or leads.dlq: the enriched bodies, the DLQ classes."""
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    seen = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert set(seen) == {f"l{i}" for i in range(n)}, "a lead is missing or unknown"
    assert max(seen.values()) == 1, "a lead was published twice"
    bodies = {(r.key or b"").decode(): orjson.loads(r.value or b"") for r in enriched}
    classes = {(r.key or b"").decode(): r.headers["streamproc.error.class"] for r in dlq}
    return bodies, classes


def _found_by(body: dict[str, Any]) -> str:
    steps = body["enrichment_meta"]["providers"]
    found = [s["provider"] for s in steps if s["outcome"] == "found"]
    assert len(found) == 1, steps
    return str(found[0])


def _credits_by_provider(bodies: dict[str, Any]) -> Counter[str]:
    paid: Counter[str] = Counter()
    for body in bodies.values():
        steps = body["enrichment_meta"]["providers"]
        assert sum(s["credits"] for s in steps) == body["enrichment_meta"]["credits"]
        for step in steps:
            paid[step["provider"]] += step["credits"]
    return paid


def _metric(app: App, name: str, provider: str) -> float:
    text = app.metrics.render().decode()
    found = re.search(rf'^{name}{{provider="{provider}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _spent(settings: Settings) -> tuple[int, int]:
    """Spent and reserved credits as the next process restores them from the state topic."""
    guard = ResilienceGuard(GuardConfig.from_settings(settings), owner="auditor")
    store = StateStore(
        KafkaConnection.from_settings(settings), settings.topic_state, guard.on_state
    )
    try:
        await store.start()
    finally:
        await store.stop()
    budget = guard.status().budget
    return budget.spent, budget.reserved


async def _until(what: str, holds: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not holds():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def _share(i: int) -> str:
    """Who can find lead ``i``: the person API (enterprise), the finder (small), nobody."""
    if i % 10 == 9:
        return f"x{i}.nomatch.test"
    return f"c{i}.corp.test" if i % 2 else f"s{i}.smb.test"


async def test_each_provider_finds_its_share_and_the_output_is_the_union(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finder misses enterprise domains, the person API small ones: every lead one of
    them can find is published once, found by that one (whatever the learnt order), the
    rest go to the DLQ as no_match; each provider's credits in enrichment_meta and in the
    metrics equal its simulator's bill, the budget their sum, and both hit tallies are in
    the state topic."""
    finder_sim = ApiSimConfig("email-finder", latency_ms=1, misses=(".corp.test",))
    people_sim = ApiSimConfig("person-match", latency_ms=1, misses=(".smb.test",))
    async with serve_api(finder_sim) as finder_url, serve_api(people_sim) as people_url:
        monkeypatch.setenv("EMAIL_API_URL", finder_url)
        monkeypatch.setenv("EMAIL_API_KEY", "test-key")
        monkeypatch.setenv("PERSON_API_URL", people_url)
        monkeypatch.setenv("PERSON_API_KEY", "test-key")
        settings = _settings(topics, **_example())
        n = 150
        domains = {i: _share(i) for i in range(n)}
        await produce(settings, [_lead(i, d) for i, d in domains.items()])
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=1.0), timeout=120)
        finder, people = await _stats(finder_url), await _stats(people_url)
    bodies, classes = await _outputs(settings, n)
    nowhere = {f"l{i}" for i, d in domains.items() if d.endswith(".nomatch.test")}
    assert set(classes) == nowhere and set(classes.values()) == {b"no_match"}
    for body in bodies.values():
        expected = "people" if body["domain"].endswith(".corp.test") else "finder"
        assert _found_by(body) == expected, body
        assert body["enrichment"]["email"].endswith("@" + body["domain"])
    paid = _credits_by_provider(bodies)
    assert (
        paid["finder"]
        == finder["credits"]
        == sum(d.endswith(".smb.test") for d in domains.values())
    )
    assert (
        paid["people"]
        == people["credits"]
        == sum(d.endswith(".corp.test") for d in domains.values())
    )
    assert _metric(app, "streamproc_waterfall_credits_total", "finder") == finder["credits"]
    assert _metric(app, "streamproc_waterfall_credits_total", "people") == people["credits"]
    assert await _spent(settings) == (finder["credits"] + people["credits"], 0)
    keys = [(r.key or b"").decode() for r in await read_all(settings, settings.topic_state)]
    tallied = {k.split("/")[3] for k in keys if k.startswith(HITS_PREFIX)}
    assert tallied == {"finder", "people"}


async def test_an_outage_mid_run_moves_its_leads_to_the_next_provider(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person API, first in a fixed order, starts answering 503 mid-run: its leads go
    to the e-mail finder (after its retries, then at once while its breaker is open), each
    lead published once, nothing in the DLQ, each provider's credits its own bill."""
    async with (
        serve_api(ApiSimConfig("email-finder", latency_ms=1)) as finder_url,
        serve_api(ApiSimConfig("person-match", latency_ms=20)) as people_url,
    ):
        monkeypatch.setenv("EMAIL_API_URL", finder_url)
        monkeypatch.setenv("EMAIL_API_KEY", "test-key")
        monkeypatch.setenv("PERSON_API_URL", people_url)
        monkeypatch.setenv("PERSON_API_KEY", "test-key")
        table = _example()
        table["waterfall"] = {
            **table["waterfall"],
            "providers": [
                {"name": "people", "credits_per_hit": 1},
                {"name": "finder", "credits_per_hit": 1},
            ],
            "routes": [],
            "adaptive": {"mode": "off"},
        }
        settings = _settings(topics, **table, max_in_flight=16)
        first, second = 100, 100
        await produce(settings, [_lead(i, f"co{i}.example") for i in range(first)])
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            async with httpx.AsyncClient() as client:
                await _until(
                    "the person API was never asked",
                    lambda: app.processor.stats.committed >= 20,
                    90,
                )
                await client.post(f"{people_url}/outage", params={"status": "503"})
                await produce(
                    settings, [_lead(i, f"co{i}.example") for i in range(first, first + second)]
                )
                await _until(
                    "the leads after the outage were not published",
                    lambda: app.processor.stats.committed >= first + second,
                    120,
                )
        finally:
            app.request_stop()
            await asyncio.wait_for(running, timeout=60)
        finder, people = await _stats(finder_url), await _stats(people_url)
    bodies, classes = await _outputs(settings, first + second)
    assert not classes, "a lead went to the DLQ"
    by = Counter(_found_by(body) for body in bodies.values())
    assert people["by_status"].get("503", 0) > 0, "the outage was never seen"
    assert by["finder"] >= second, "the leads after the outage did not go to the finder"
    assert by["people"] >= 20
    outcomes = Counter(
        s["outcome"]
        for body in bodies.values()
        for s in body["enrichment_meta"]["providers"]
        if s["provider"] == "people"
    )
    assert outcomes["unavailable"] > 0, "the open breaker did not pass leads on at once"
    paid = _credits_by_provider(bodies)
    assert (paid["people"], paid["finder"]) == (people["credits"], finder["credits"])
    assert await _spent(settings) == (people["credits"] + finder["credits"], 0)


async def test_a_provider_over_its_credit_cap_passes_its_leads_on(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person API, first in a fixed order, capped at 5 credits a day, 2 of which
    another instance already charged today (its hit totals in the state topic): it bills
    exactly 3 more, the finder the rest, nothing in the DLQ. Scaled down to 12 leads."""
    async with (
        serve_api(ApiSimConfig("email-finder", latency_ms=1)) as finder_url,
        serve_api(ApiSimConfig("person-match", latency_ms=1)) as people_url,
    ):
        monkeypatch.setenv("EMAIL_API_URL", finder_url)
        monkeypatch.setenv("EMAIL_API_KEY", "test-key")
        monkeypatch.setenv("PERSON_API_URL", people_url)
        monkeypatch.setenv("PERSON_API_KEY", "test-key")
        table = _example()
        table["providers"]["people"]["max_credits_per_day"] = 5
        table["waterfall"] = {
            **table["waterfall"],
            "providers": [
                {"name": "people", "credits_per_hit": 1},
                {"name": "finder", "credits_per_hit": 1},
            ],
            "routes": [],
            "adaptive": {"mode": "off"},
        }
        settings = _settings(topics, **table, max_in_flight=8)
        today = datetime.now(UTC).date().isoformat()
        await write_state(
            settings,
            [(f"{HITS_PREFIX}default/people/{today}/other", {"calls": 2, "hits": 2, "credits": 2})],
        )
        n = 12
        await produce(settings, [_lead(i, f"co{i}.example") for i in range(n)])
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=1.0), timeout=120)
        finder, people = await _stats(finder_url), await _stats(people_url)
    bodies, classes = await _outputs(settings, n)
    assert not classes, "a lead went to the DLQ"
    assert people["credits"] == 3
    assert Counter(_found_by(body) for body in bodies.values()) == {"people": 3, "finder": 9}
    assert finder["credits"] == 9


#: The verifier, a declarative instance of the e-mail verifier simulator (Hunter's shape):
#: every answer is one (billed) verification; ``accept`` judges its status.
VERIFIER = {
    "type": "declarative",
    "method": "GET",
    "url": "${VERIFY_API_URL}/v2/email-verifier",
    "query": {"email": "{{ email }}", "api_key": "${VERIFY_API_KEY}"},
    "result": "data",
    "credits_per_match": 1,
}


async def test_an_email_the_verifier_rejects_is_replaced_by_the_next_finders(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two finders and a verifier: the e-mail finder's address at a ``.bad.test`` domain is
    invalid, so those leads go on to the person API, whose address (the lead's own, at a
    good domain) verifies; the rest stop at the finder; nobody's leads go to the DLQ. Each
    lead once; each provider's credits (the verifier's too) equal its simulator's bill and
    the budget their sum. Scaled down to 40 leads."""
    async with (
        serve_api(ApiSimConfig("email-finder", latency_ms=1)) as finder_url,
        serve_api(ApiSimConfig("person-match", latency_ms=1)) as people_url,
        serve_api(ApiSimConfig("email-verifier", latency_ms=1, misses=(".bad.test",))) as v_url,
    ):
        for name, url in (("EMAIL", finder_url), ("PERSON", people_url), ("VERIFY", v_url)):
            monkeypatch.setenv(f"{name}_API_URL", url)
            monkeypatch.setenv(f"{name}_API_KEY", "test-key")
        table = _example()
        table["credits_per_lead"] = 4
        table["providers"]["verifier"] = VERIFIER
        table["waterfall"] = {
            **table["waterfall"],
            "routes": [],
            "adaptive": {"mode": "off"},
            "max_credits_per_lead": 4,
            "verify": {
                "provider": "verifier",
                "field": "email",
                "accept": "status == 'valid'",
                "credits_per_call": 1,
            },
        }
        settings = _settings(topics, **table, max_in_flight=8)
        n = 40
        leads: list[tuple[bytes | None, bytes | None]] = []
        for i in range(n):
            domain = f"s{i}.bad.test" if i % 2 else f"s{i}.good.test"
            lead = {"lead_id": f"l{i}", "email": f"pat{i}@m{i}.good.test", "domain": domain,
                    "first_name": "Pat"}  # fmt: skip
            leads.append((f"l{i}".encode(), orjson.dumps(lead)))
        await produce(settings, leads)
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=1.0), timeout=120)
        finder, people, verifier = (
            await _stats(finder_url), await _stats(people_url), await _stats(v_url),
        )  # fmt: skip
    bodies, classes = await _outputs(settings, n)
    assert not classes, "a lead went to the DLQ"
    bad = {f"l{i}" for i in range(n) if i % 2}
    for key, body in bodies.items():
        steps = [(s["provider"], s["outcome"]) for s in body["enrichment_meta"]["providers"]]
        num = key[1:]
        if key in bad:
            assert body["enrichment"]["email"] == f"pat{num}@m{num}.good.test", body
            assert steps == [
                ("finder", "found"), ("verifier", "rejected"),
                ("people", "found"), ("verifier", "verified"),
            ]  # fmt: skip
        else:
            assert body["enrichment"]["email"] == f"pat@s{num}.good.test", body
            assert steps == [("finder", "found"), ("verifier", "verified")]
    paid = _credits_by_provider(bodies)
    assert paid["finder"] == finder["credits"] == n
    assert paid["people"] == people["credits"] == len(bad)
    assert paid["verifier"] == verifier["credits"] == n + len(bad)
    assert verifier["billed_twice"] == 0
    assert await _spent(settings) == (n + len(bad) + n + len(bad), 0)
