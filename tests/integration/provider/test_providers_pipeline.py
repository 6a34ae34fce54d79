"""Every kind of provider end to end on the real broker: ``http``, the declarative provider
one lead and a batch per call, and a user's own package; each lead exactly once, and the
provider's own count of credits equal to the budget ledger's."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
import tomllib
from collections import Counter
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
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from streamproc.state.store import StateStore
from tests.integration.conftest import ROOT, configure
from tests.integration.kafka_io import produce, read_all

EXAMPLES = ROOT / "examples" / "providers"
LEADS = 2_000


def _leads(n: int, odd: dict[int, str] | None = None) -> list[tuple[bytes | None, bytes | None]]:
    odd = odd or {}
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(n):
        domain = odd.get(i, f"co{i}.example")
        lead = {"lead_id": f"l{i}", "email": f"pat{i}@{domain}", "domain": domain}
        out.append((f"l{i}".encode(), orjson.dumps({**lead, "first_name": "Pat"})))
    return out


def _example(name: str) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((EXAMPLES / name).read_text())["streamproc"]
    return table


async def _run(settings: Settings, records: list[tuple[bytes | None, bytes | None]]) -> App:
    await produce(settings, records)
    app = App(settings)
    await asyncio.wait_for(app.run(stop_when_idle_s=1.0), timeout=120)
    return app


async def _ledger(settings: Settings) -> tuple[int, int]:
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


async def _exactly_once(settings: Settings, n: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Each lead once in leads.enriched or leads.dlq, each partition's enriched leads in
    input order: the enriched bodies, the DLQ classes."""
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    seen = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert set(seen) == {f"l{i}" for i in range(n)}, "a lead is missing or unknown"
    assert max(seen.values()) == 1, "a lead was published twice"
    for partition in {r.partition for r in enriched}:
        order = [int((r.key or b"l0").decode()[1:]) for r in enriched if r.partition == partition]
        assert order == sorted(order), "a partition's outputs left their input order"
    bodies = {(r.key or b"").decode(): orjson.loads(r.value or b"") for r in enriched}
    classes = {(r.key or b"").decode(): r.headers["streamproc.error.class"] for r in dlq}
    return bodies, classes


def _settings(topics: Settings, **changes: Any) -> Settings:
    # A big budget, no cache (every lead is a call), retries that do not wait.
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


async def test_http_provider_2000_leads(topics: Settings) -> None:
    """Today's contract through the provider interface: 2,000 leads once, credits held."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=3)) as url:
        settings = _settings(topics, provider="http", provider_url=f"{url}/enrich")
        await _run(settings, _leads(LEADS))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, LEADS)
    assert len(bodies) == LEADS and not classes
    assert await _ledger(settings) == (stats["credits"], 0) == (6 * LEADS, 0)


@pytest.mark.parametrize("batch", [1, 10])
async def test_declarative_person_match_2000_leads(
    topics: Settings, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """The person-match example one lead per call and ten per call (its bulk endpoint): no
    match goes to the DLQ alone as no_match, billed nothing; credits held."""
    async with serve_api(ApiSimConfig("person-match", latency_ms=1)) as url:
        monkeypatch.setenv("PERSON_API_URL", url)
        monkeypatch.setenv("PERSON_API_KEY", "test-key")
        table = {**_example("person_match.toml"), "provider_batch_size": batch}
        settings = _settings(topics, **table)
        misses = {i: f"x{i}.nomatch.test" for i in range(0, LEADS, 97)}
        app = await _run(settings, _leads(LEADS, misses))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, LEADS)
    assert set(classes) == {f"l{i}" for i in misses}
    assert set(classes.values()) == {b"no_match"}
    assert all(
        b["enrichment"]["organization"]["primary_domain"] == b["domain"] for b in bodies.values()
    )
    assert stats["credits"] == LEADS - len(misses)
    assert await _ledger(settings) == (stats["credits"], 0)
    if batch == 10:
        assert stats["requests"] <= LEADS // 5, "leads were not batched"
    assert app.processor.stats.committed == LEADS


async def test_declarative_company_bulk_partial_failure_and_rate_limit(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk of 100 with per-item statuses: a 404 item goes to the DLQ alone, a 429 for the
    whole request is retried as a batch, everything else enriched once; credits held."""
    async with serve_api(ApiSimConfig("company-bulk", latency_ms=1)) as url:
        monkeypatch.setenv("COMPANY_API_URL", url)
        monkeypatch.setenv("COMPANY_API_KEY", "test-key")
        settings = _settings(topics, **_example("company_bulk.toml"), provider_batch_linger_ms=50)
        odd = {3: "gone.nomatch.test", 5: "busy.ratelimit.test"}
        await _run(settings, _leads(300, odd))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, 300)
    assert classes == {"l3": b"no_match"}
    assert bodies["l5"]["enrichment"]["website"] == "busy.ratelimit.test"
    assert stats["by_status"]["429"] == 1
    assert stats["credits"] == 299
    assert await _ledger(settings) == (299, 0)


async def test_declarative_email_finder_bills_per_match_only(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Billed per e-mail found: a lead without one is published empty and charged 0."""
    async with serve_api(ApiSimConfig("email-finder")) as url:
        monkeypatch.setenv("EMAIL_API_URL", url)
        monkeypatch.setenv("EMAIL_API_KEY", "test-key")
        settings = _settings(topics, **_example("email_finder.toml"))
        await _run(settings, _leads(60, {7: "none.nomatch.test"}))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, 60)
    assert not classes
    assert bodies["l7"]["enrichment"] == {} and bodies["l7"]["enrichment_meta"]["credits"] == 0
    assert bodies["l8"]["enrichment"]["email"] == "pat@co8.example"
    assert stats["credits"] == 59
    assert await _ledger(settings) == (59, 0)


def _install_custom_provider() -> None:
    """pip-install examples/custom_provider into this test's venv (once; quick after).

    Not editable: an editable install is found through a ``.pth`` file, which Python reads
    only at start-up, so this process could not import what it just installed."""
    try:
        importlib.metadata.distribution("streamproc-example-provider")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            str(ROOT / "examples" / "custom_provider"),
        ],
        check=True,
    )
    importlib.invalidate_caches()


async def test_custom_provider_installed_with_pip_and_selected_by_name(topics: Settings) -> None:
    """The example package, installed with pip, is selected by its entry point name; 2,000
    leads once, a lead without a domain rejected alone; its charges equal the ledger's."""
    _install_custom_provider()
    from streamproc_example_provider import DomainProvider

    DomainProvider.charged = 0
    settings = _settings(topics, provider="example-domain", provider_batch_size=25)
    records = _leads(LEADS)
    records[11] = (b"l11", orjson.dumps({"lead_id": "l11", "email": "pat@nodomain.example"}))
    app = await _run(settings, records)
    bodies, classes = await _exactly_once(settings, LEADS)
    assert app.provider is not None and isinstance(app.provider.provider, DomainProvider)
    assert app.provider.batch_size == 25
    assert bodies["l12"]["enrichment"] == {"company": "Co12"}
    assert DomainProvider.charged == LEADS - len(classes)
    assert await _ledger(settings) == (DomainProvider.charged, 0)


def test_an_unknown_provider_is_one_line(topics: Settings) -> None:
    """A provider name no package registered is a ConfigError listing the installed ones."""
    from streamproc.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'nope' is not installed .*http"):
        App(configure(topics, provider="nope"))


async def test_mock_bulk_batch_with_a_rejected_and_a_rate_limited_lead(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mock's bulk endpoint answers per lead inside one 200: the rejected lead goes to
    the DLQ alone, the rate-limited one is retried and enriched, the rest once; credits
    held."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=5)) as url:
        monkeypatch.setenv("MOCK_PROVIDER_URL", url)
        settings = _settings(topics, **_example("mock_bulk.toml"))
        odd = {4: "no.reject.test", 6: "slow.ratelimit.test"}
        await _run(settings, _leads(400, odd))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, 400)
    assert classes == {"l4": b"provider_rejected"}
    assert bodies["l6"]["enrichment"]["domain"] == "slow.ratelimit.test"
    assert stats["by_status"]["429"] == 1
    assert stats["credits"] == 6 * 399
    assert await _ledger(settings) == (6 * 399, 0)


async def test_mock_bulk_reordered_and_dropped_items_each_reach_their_own_lead(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mock answers its bulk items in reverse order and drops two (billed): every lead
    is enriched with its own person; each dropped lead is retried in a request of its own
    with the same item key, which the provider recognises, so nobody is billed twice."""
    config = MockProviderConfig(
        port=0, latency_ms=1, seed=5, bulk_reorder=True, honour_idempotency=True
    )
    async with serve_mock_provider(config) as url:
        monkeypatch.setenv("MOCK_PROVIDER_URL", url)
        settings = _settings(topics, **_example("mock_bulk.toml"))
        odd = {4: "lost.dropped.test", 150: "gone.dropped.test"}
        await _run(settings, _leads(300, odd))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, 300)
    assert not classes
    for lead_id, body in bodies.items():
        assert body["enrichment"]["full_name"] == f"Pat{lead_id[1:]}", lead_id
        assert body["enrichment"]["domain"] == body["domain"], lead_id
    assert stats["replayed"] == 2
    assert (stats["leads_charged_twice"], stats["duplicates_charged"]) == (0, 0)
    assert stats["credits"] == 6 * 300
    spent, reserved = await _ledger(settings)
    assert spent >= stats["credits"] and reserved == 0


async def test_company_bulk_reordered_and_dropped_items_matched_by_metadata(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A People Data Labs style bulk answer reordered, one item dropped: matched by the
    metadata each item echoes, every lead gets its own company; the dropped lead is
    retried alone (this API takes no idempotency key: it bills the retry again, the
    documented rule)."""
    async with serve_api(ApiSimConfig("company-bulk", latency_ms=1, reorder=True)) as url:
        monkeypatch.setenv("COMPANY_API_URL", url)
        monkeypatch.setenv("COMPANY_API_KEY", "test-key")
        settings = _settings(topics, **_example("company_bulk.toml"), provider_batch_linger_ms=50)
        await _run(settings, _leads(300, {7: "lost.dropped.test"}))
        stats = await _stats(url)
    bodies, classes = await _exactly_once(settings, 300)
    assert not classes
    for body in bodies.values():
        assert body["enrichment"]["website"] == body["domain"]
    assert stats["billed_twice"] == 1
