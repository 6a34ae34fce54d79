"""The declarative provider over a real HTTP server (no Kafka)."""

from __future__ import annotations

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
            Settings(
                provider="declarative",
                provider_declarative={
                    "url": f"{url}/match",
                    "headers": {"Idempotency-Key": "{{ lead_id }}"},
                    "body": {"email": "{{ email }}"},
                    "single_item": "person",
                },
            )
        )
        await provider.start()
        try:
            answers = await provider.call([LeadIn("lead-7", {"email": "a@b.example"})])
        finally:
            await provider.close()
    assert seen == ["lead-7"]
    assert answers == [Enrichment({"ok": True}, 6)]


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
        provider = DeclarativeProvider(settings)
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
