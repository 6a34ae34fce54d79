"""Plain JSON leads in the user's own shape (``lead_fields``): read through the mapping,
enriched once, and published in their own shape with the enrichment added."""

from __future__ import annotations

import asyncio

import orjson

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all


async def test_a_mapped_lead_shape_end_to_end(topics: Settings) -> None:
    """Leads whose id is a number at ``id`` and whose mail is at ``contact.email`` are
    enriched by the mail's domain and keep every field of their own shape; one without a
    mail is dead-lettered as invalid_payload naming the mapped path, as it came."""
    leads = [
        {"id": 500 + i, "contact": {"email": f"c{i}@shop{i % 2}.example"}, "crm": {"x": i}}
        for i in range(6)
    ]
    broken = orjson.dumps({"id": 9, "contact": {}})
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            lead_fields="lead_id=/id, email=contact.email",
        )
        await produce(
            settings,
            [(str(lead["id"]).encode(), orjson.dumps(lead)) for lead in leads] + [(b"9", broken)],
        )
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=2.0), timeout=120)

    enriched = [
        orjson.loads(r.value or b"") for r in await read_all(settings, settings.topic_enriched)
    ]
    assert sorted(r["id"] for r in enriched) == [lead["id"] for lead in leads]
    for record in enriched:
        i = record["id"] - 500
        assert record["contact"] == leads[i]["contact"] and record["crm"] == {"x": i}
        assert "lead_id" not in record and "email" not in record  # its own shape, not ours
        assert record["enrichment"]["domain"] == f"shop{i % 2}.example"
    dlq = await read_all(settings, settings.topic_dlq)
    assert [r.value for r in dlq] == [broken]
    assert dlq[0].headers["streamproc.error.class"] == b"invalid_payload"
    assert b"contact.email" in dlq[0].headers["streamproc.error.message"]
