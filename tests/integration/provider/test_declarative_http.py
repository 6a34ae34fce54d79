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
