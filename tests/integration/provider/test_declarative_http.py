"""The declarative provider over a real HTTP server (no Kafka)."""

from __future__ import annotations

import asyncio

import pytest

from streamproc.provider.config import ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.settings import Settings


async def test_a_one_lead_call_carries_its_idempotency_key() -> None:
    """A header template of ``{{ lead_id }}`` is rendered per one-lead call (over a real
    HTTP server: the header arrives as sent)."""
    from aiohttp import web

    from streamproc.provider.api import Enrichment, LeadIn
    from streamproc.simulators.provider import serve_app

    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"person": {"ok": True}})

    app = web.Application()
    app.router.add_post("/match", handle)
    async with serve_app(app, "127.0.0.1", 0) as url:
        provider = DeclarativeProvider(
            ProviderConfig.from_settings(
                Settings(
                    provider="declarative",
                    provider_declarative={
                        "url": f"{url}/match",
                        "headers": {"Idempotency-Key": "{{ lead_id }}"},
                        "body": {"email": "{{ email }}"},
                        "single_item": "person",
                    },
                ),
                "declarative",
            )
        )
        await provider.start()
        try:
            answers = await provider.call([LeadIn("lead-7", {"email": "a@b.example"})])
        finally:
            await provider.close()
    assert seen == ["lead-7"]
    assert answers == [Enrichment({"ok": True}, 6)]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_lead_that_cannot_be_sent_is_refused_alone(transport: str) -> None:
    """A lead whose id (in a header) or field (in the URL) holds a CR/LF is answered
    invalid_payload alone and left out of the request; the others of its bulk call are
    enriched, and nothing counts against the breaker (over a real HTTP server, both
    transports)."""
    from aiohttp import web

    from streamproc.errors import InvalidPayload, LeadError
    from streamproc.processing.calls import ProviderCalls
    from streamproc.provider.api import Enrichment, LeadIn
    from streamproc.provider.driver import RetryDriver
    from streamproc.provider.retry import RetryPolicy
    from streamproc.simulators.provider import serve_app

    seen: list[str] = []

    async def one(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"person": {"ok": True}})

    async def bulk(request: web.Request) -> web.Response:
        body = await request.json()
        seen.extend(item["id"] for item in body["leads"])
        return web.json_response({"people": [{"ok": i["id"]} for i in body["leads"]]})

    app = web.Application()
    app.router.add_post("/match", one)
    app.router.add_post("/bulk", bulk)
    async with serve_app(app, "127.0.0.1", 0) as url:
        provider = DeclarativeProvider(
            ProviderConfig.from_settings(
                Settings(
                    provider="declarative",
                    provider_http_transport=transport,
                    provider_declarative={
                        "url": f"{url}/match",
                        "headers": {"Idempotency-Key": "{{ lead_id }}"},
                        "body": {"email": "{{ email }}"},
                        "single_item": "person",
                        "batch_size": 3,
                        "batch_url": f"{url}/bulk?tenant={{{{ tenant }}}}",
                        "batch_body": {"leads": "{{ leads }}"},
                        "batch_item": {"id": "{{ lead_id }}"},
                        "items": "people",
                    },
                ),
                "declarative",
            )
        )
        driver = RetryDriver(RetryPolicy(2, 0.0, 0.0), peer="provider", timeout_s=5)
        calls = ProviderCalls(provider, driver, batch_size=3, linger_s=0.05, timeout_s=5)
        await calls.start()
        try:
            alone = await provider.call([LeadIn("x\r\nInjected: 1", {"email": "a@b.example"})])

            async def enrich(lead_id: str, tenant: str) -> object:
                try:
                    return await calls.enrich({"tenant": tenant}, lead_id)
                except LeadError as exc:
                    return exc

            batch = await asyncio.gather(
                enrich("bad", "t\r\n"), enrich("ok-1", "t"), enrich("ok-2", "t")
            )
        finally:
            await calls.close()
    assert len(alone) == 1 and isinstance(alone[0], InvalidPayload)
    assert isinstance(batch[0], InvalidPayload) and not batch[0].counts_against_breaker
    assert [getattr(r, "data", None) for r in batch[1:]] == [{"ok": "ok-1"}, {"ok": "ok-2"}]
    assert seen == ["ok-1", "ok-2"]
    assert not isinstance(alone[0], Enrichment)


async def test_a_bulk_calls_idempotency_key_is_its_set_of_leads() -> None:
    """In a bulk call a lead-templated header is the hash of the request's sorted lead keys:
    the same leads in another order repeat it, a retried subset gets another one (over a
    real HTTP server)."""
    import hashlib

    import orjson
    from aiohttp import web

    from streamproc.provider.api import LeadIn, idempotency_key
    from streamproc.simulators.provider import serve_app

    keys: list[str] = []

    async def bulk(request: web.Request) -> web.Response:
        keys.append(request.headers.get("Idempotency-Key", ""))
        body = await request.json()
        return web.json_response({"people": [{"ok": True} for _ in body["leads"]]})

    app = web.Application()
    app.router.add_post("/bulk", bulk)
    async with serve_app(app, "127.0.0.1", 0) as url:
        provider = DeclarativeProvider(
            ProviderConfig.from_settings(
                Settings(
                    provider="declarative",
                    provider_declarative={
                        "url": f"{url}/match",
                        "headers": {"Idempotency-Key": "{{ lead_id }}"},
                        "batch_size": 3,
                        "batch_url": f"{url}/bulk",
                        "batch_body": {"leads": "{{ leads }}"},
                        "batch_item": {"id": "{{ lead_id }}"},
                        "items": "people",
                    },
                ),
                "declarative",
            )
        )
        await provider.start()
        try:
            for ids in (["a", "b", "c"], ["c", "b", "a"], ["a", "c"]):
                await provider.call([LeadIn(i, {}) for i in ids])
        finally:
            await provider.close()

    def key(ids: list[str]) -> str:
        lead_keys = sorted(idempotency_key(i, {}) for i in ids)
        return hashlib.sha256(orjson.dumps(lead_keys)).hexdigest()

    assert keys == [key(["a", "b", "c"]), key(["a", "b", "c"]), key(["a", "c"])]
    assert keys[0] != keys[2]


async def test_at_debug_a_declarative_key_in_the_query_never_reaches_the_log(
    monkeypatch: object, capsys: object, caplog: object
) -> None:
    """``api_key = "${EMAIL_API_KEY}"`` in the query (examples/providers/email_finder.toml):
    at log_level DEBUG neither httpx's request line nor a line quoting the URL shows it."""
    import logging

    import pytest
    from aiohttp import web

    from streamproc.logs import configure_logging, get_logger
    from streamproc.provider.api import LeadIn
    from streamproc.redact import secret_values
    from streamproc.simulators.provider import serve_app

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    assert isinstance(caplog, pytest.LogCaptureFixture)
    key = "ek-live-7c1d9e44b2"
    monkeypatch.setenv("EMAIL_API_KEY", key)
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.query.get("api_key", ""))
        return web.json_response({"data": {"email": "j@acme.example"}})

    app = web.Application()
    app.router.add_get("/v2/email-finder", handle)
    async with serve_app(app, "127.0.0.1", 0) as url:
        settings = Settings(
            provider="declarative",
            log_level="DEBUG",
            provider_declarative={
                "method": "GET",
                "url": f"{url}/v2/email-finder",
                "query": {"domain": "{{ domain }}", "api_key": "${EMAIL_API_KEY}"},
                "result": "data",
            },
        )
        configure_logging("DEBUG", "json", secrets=secret_values(settings))
        caplog.set_level(logging.DEBUG)
        provider = DeclarativeProvider(ProviderConfig.from_settings(settings, "declarative"))
        await provider.start()
        try:
            await provider.call([LeadIn("lead-1", {"domain": "acme.example"})])
        finally:
            await provider.close()
        get_logger("test").debug("provider.request", url=f"{url}/v2/email-finder?api_key={key}")
    try:
        assert seen == [key]
        out = capsys.readouterr().err  # type: ignore[attr-defined]
        assert "provider.request" in out
        assert key not in out
        assert key not in caplog.text
    finally:
        configure_logging("INFO", "json")
