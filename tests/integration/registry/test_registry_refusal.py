"""A schema registry that refuses one schema id for good (403 on its subject): the lead that
needs it waits at most hold_max_age_s, then is dead-lettered retriable as hold_expired, and
the leads behind it on its partition are enriched (issue 19, item 5). The registry is an
in-test HTTP server speaking the Confluent-compatible API: a real Apicurio cannot be told
to refuse one id."""

from __future__ import annotations

import asyncio
import json
import time

import orjson
from aiohttp import web

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_app, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"lead_id": {"type": "string"}, "domain": {"type": "string"}},
    "required": ["lead_id"],
}
ALLOWED, REFUSED = 1, 2
MAX_AGE_S = 3.0


def _wire(schema_id: int, lead: dict[str, str]) -> bytes:
    """The registry's wire format: magic byte 0, the schema id, the JSON payload."""
    return b"\x00" + schema_id.to_bytes(4, "big") + orjson.dumps(lead)


def _registry() -> web.Application:
    async def config(_: web.Request) -> web.Response:
        return web.json_response({"compatibilityLevel": "BACKWARD"})

    async def schema(request: web.Request) -> web.Response:
        if int(request.match_info["id"]) == REFUSED:
            return web.json_response({"error_code": 40301, "message": "forbidden"}, status=403)
        return web.json_response({"schemaType": "JSON", "schema": json.dumps(SCHEMA)})

    app = web.Application()
    app.router.add_get("/config", config)
    app.router.add_get("/schemas/ids/{id}", schema)
    return app


async def test_a_schema_id_refused_for_good_is_dead_lettered_after_the_max_age(
    topics: Settings,
) -> None:
    """On one partition: five leads, one whose schema id the registry answers 403, five
    more. The refused lead is dead-lettered once, retriable, as hold_expired, after the
    maximum age; the ten others are enriched."""
    before = [f"a{i}" for i in range(5)]
    after = [f"b{i}" for i in range(5)]
    records = [
        *((b"k", _wire(ALLOWED, {"lead_id": i, "domain": f"{i}.example"})) for i in before),
        (b"k", _wire(REFUSED, {"lead_id": "refused", "domain": "refused.example"})),
        *((b"k", _wire(ALLOWED, {"lead_id": i, "domain": f"{i}.example"})) for i in after),
    ]
    async with (
        serve_app(_registry(), "127.0.0.1", 0) as registry,
        serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url,
    ):
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            input_format="registry",
            schema_registry_url=registry,
            hold_max_age_s=MAX_AGE_S,
        )
        await produce(settings, records)
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            deadline = time.monotonic() + 90
            while app.processor.stats.committed < len(records):
                assert time.monotonic() < deadline, "the partition never moved past the refusal"
                await asyncio.sleep(0.3)
        finally:
            app.request_stop()
            await asyncio.wait_for(running, 60)

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert sorted(orjson.loads(r.value or b"")["lead_id"] for r in enriched) == sorted(
        before + after
    )
    (dead,) = dlq
    assert dead.headers["streamproc.error.class"] == b"hold_expired"
    assert dead.headers["streamproc.error.retriable"] == b"true"
    assert b"403" in dead.headers["streamproc.error.message"]
    assert dead.value == records[5][1]
