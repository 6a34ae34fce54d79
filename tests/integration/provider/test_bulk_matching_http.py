"""Bulk calls over a real HTTP server (no Kafka): answers matched to leads by id, and one
idempotency key per lead across retries and re-batching, against the mock provider."""

from __future__ import annotations

import asyncio
import tomllib
from typing import Any

import pytest
from aiohttp import web

from streamproc.errors import LeadError, ProviderError
from streamproc.processing.calls import ProviderCalls
from streamproc.provider.api import Enrichment, LeadIn, idempotency_key
from streamproc.provider.client import retry_driver
from streamproc.provider.config import ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, build_app, serve_app, stats_of
from tests.integration.conftest import ROOT


def _lead(i: int, domain: str | None = None) -> dict[str, Any]:
    domain = domain or f"co{i}.example"
    return {"lead_id": f"l{i}", "email": f"pat.{i}@{domain}", "domain": domain}


def _mock_bulk(monkeypatch: pytest.MonkeyPatch, url: str) -> Settings:
    monkeypatch.setenv("MOCK_PROVIDER_URL", url)
    table = tomllib.loads((ROOT / "examples/providers/mock_bulk.toml").read_text())["streamproc"]
    return Settings(
        **table,
        provider_backoff_base_s=0.01,
        provider_backoff_max_s=0.02,
        provider_timeout_s=30,
    )


async def _enrich_all(calls: ProviderCalls, leads: list[dict[str, Any]]) -> list[Any]:
    return await asyncio.gather(
        *(calls.enrich(lead, lead["lead_id"]) for lead in leads), return_exceptions=True
    )


async def test_a_reordered_answer_with_a_dropped_item_gives_every_lead_its_own_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mock answers its bulk items reversed and drops one: every lead gets its own
    person; the dropped lead is retried with the same item key, which the provider
    recognises (replayed, billed once); re-batched with other leads later, it is billed
    nothing again."""
    app = build_app(
        MockProviderConfig(port=0, latency_ms=1, bulk_reorder=True, honour_idempotency=True)
    )
    leads = [_lead(i, "gone.dropped.test" if i == 3 else None) for i in range(10)]
    async with serve_app(app, "127.0.0.1", 0) as url:
        settings = _mock_bulk(monkeypatch, url)
        provider = DeclarativeProvider(ProviderConfig.from_settings(settings, "declarative"))
        calls = ProviderCalls(
            provider,
            retry_driver(ProviderConfig.from_settings(settings, "declarative"), "provider"),
            batch_size=10,
            linger_s=5.0,
            timeout_s=settings.provider_timeout_s,
        )
        await calls.start()
        try:
            done = await _enrich_all(calls, leads)
            # A rebalance: the dropped lead again, batched with leads it never met.
            again = await _enrich_all(calls, [leads[3], *(_lead(i) for i in range(10, 19))])
        finally:
            await calls.close()
    stats = stats_of(app)
    for lead, result in zip(leads, done, strict=True):
        assert not isinstance(result, BaseException), result
        assert result.data["domain"] == lead["domain"]
        assert result.data["full_name"] == f"Pat {lead['lead_id'][1:]}"
    assert again[0].data == done[3].data
    assert done[3].attempts == 2
    key = idempotency_key("l3", leads[3])
    assert stats.charged[key] == 1
    assert stats.replayed == 2  # its retry and its re-batching
    assert stats.leads_charged_twice == 0
    assert set(stats.charged_leads.values()) == {1} and len(stats.charged_leads) == 19


async def test_unknown_and_doubled_ids_are_given_to_nobody() -> None:
    """An answer with an item of an id nobody sent and two items for one lead: that lead
    fails alone (retriable, possibly billed), every other lead gets its own item."""
    seen_items: list[dict[str, Any]] = []

    async def bulk(request: web.Request) -> web.Response:
        body = await request.json()
        seen_items.extend(body["people"])
        items = [{"ref": p["ref"], "name": f"name of {p['ref']}"} for p in body["people"]]
        items.reverse()
        items.append({"ref": "stranger", "name": "someone else"})
        items.append({"ref": "b", "name": "an impostor"})
        return web.json_response({"results": items})

    server = web.Application()
    server.router.add_post("/bulk", bulk)
    async with serve_app(server, "127.0.0.1", 0) as url:
        provider = DeclarativeProvider(
            ProviderConfig.from_settings(
                Settings(
                    provider="declarative",
                    provider_declarative={
                        "url": f"{url}/bulk",
                        "batch_url": f"{url}/bulk",
                        "batch_size": 3,
                        "batch_body": {"people": "{{ leads }}"},
                        "batch_item": {"ref": "{{ lead_id }}", "key": "{{ idempotency_key }}"},
                        "items": "results",
                        "item_id": "ref",
                        "result": "{name: name}",
                        "credits_per_match": 1,
                    },
                ),
                "declarative",
            )
        )
        await provider.start()
        try:
            answers = await provider.call([LeadIn(i, {"n": i}) for i in ("a", "b", "c")])
        finally:
            await provider.close()
    assert [item["key"] for item in seen_items] == [
        idempotency_key(i, {"n": i}) for i in ("a", "b", "c")
    ]
    assert answers[0] == Enrichment({"name": "name of a"}, 1)
    assert answers[2] == Enrichment({"name": "name of c"}, 1)
    failed = answers[1]
    assert isinstance(failed, ProviderError) and failed.retriable and failed.maybe_charged
    assert "several items" in failed.message


async def test_two_leads_with_one_id_are_never_in_one_request() -> None:
    """Two leads carrying the same id: the second is left out of the request, answered a
    retriable failure, so no answer can be given to the wrong one."""
    requests: list[list[str]] = []

    async def bulk(request: web.Request) -> web.Response:
        body = await request.json()
        requests.append([p["email"] for p in body["people"]])
        return web.json_response([{"ref": p["ref"], "email": p["email"]} for p in body["people"]])

    server = web.Application()
    server.router.add_post("/bulk", bulk)
    async with serve_app(server, "127.0.0.1", 0) as url:
        provider = DeclarativeProvider(
            ProviderConfig.from_settings(
                Settings(
                    provider="declarative",
                    provider_declarative={
                        "url": f"{url}/bulk",
                        "batch_url": f"{url}/bulk",
                        "batch_size": 3,
                        "batch_body": {"people": "{{ leads }}"},
                        "batch_item": {"ref": "{{ lead_id }}", "email": "{{ email }}"},
                        "items": "@",
                        "item_id": "ref",
                    },
                ),
                "declarative",
            )
        )
        await provider.start()
        try:
            answers = await provider.call(
                [
                    LeadIn("same", {"email": "one@a.example"}),
                    LeadIn("same", {"email": "two@a.example"}),
                    LeadIn("other", {"email": "three@a.example"}),
                ]
            )
        finally:
            await provider.close()
    assert requests == [["one@a.example", "three@a.example"]]
    assert isinstance(answers[0], Enrichment) and answers[0].data["email"] == "one@a.example"
    assert isinstance(answers[1], LeadError) and answers[1].retriable
    assert isinstance(answers[2], Enrichment) and answers[2].data["email"] == "three@a.example"
