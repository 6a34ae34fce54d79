"""Leads in the schema registry's wire format, written by confluent-kafka's serializers (a
client nobody here wrote) against a real registry (Apicurio's Confluent-compatible API):
enriched exactly once, and the enriched records read back by confluent-kafka's
deserializers; records the registry cannot account for go to the DLQ as they came.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamproc.app import App
from streamproc.errors import ConfigError
from streamproc.records.wire import frame
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

AVRO_LEAD = {
    "type": "record",
    "name": "CrmLead",
    "namespace": "acme.crm",
    "fields": [
        {"name": "id", "type": "long"},
        {
            "name": "contact",
            "type": {
                "type": "record",
                "name": "Contact",
                "fields": [
                    {"name": "email", "type": "string"},
                    {"name": "name", "type": ["null", "string"], "default": None},
                ],
            },
        },
        {"name": "score", "type": "double"},
    ],
}

JSON_LEAD = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Lead",
    "type": "object",
    "properties": {
        "lead_id": {"type": "string"},
        "email": {"type": "string"},
        "domain": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["lead_id"],
}


def _context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


async def _run_until_idle(settings: Settings) -> App:
    app = App(settings)
    await asyncio.wait_for(app.run(stop_when_idle_s=2.0), timeout=120)
    return app


async def test_avro_leads_in_a_shape_of_their_own_enriched_once_and_read_back(
    topics: Settings, registry_url: str
) -> None:
    """Avro leads (id a long, the e-mail nested) written by confluent-kafka's serializer
    are enriched once each, written with the registered extended schema and read back by
    its deserializer with their own fields intact; an unknown schema id and a plain JSON
    record go to the DLQ byte for byte, as unknown_schema and undecodable_payload."""
    registry = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(registry, json.dumps(AVRO_LEAD))
    leads = {
        i: {"id": 1000 + i, "contact": {"email": f"p{i}@firm{i % 3}.example", "name": None},
            "score": i / 4}
        for i in range(12)
    }  # fmt: skip
    values = [serializer(lead, _context(topics.topic_raw)) for lead in leads.values()]
    unknown = frame(987_654, b"\x02")
    plain = orjson.dumps({"lead_id": "plain", "email": "x@y.example"})
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            input_format="registry",
            output_format="registry",
            schema_registry_url=registry_url,
            lead_fields={"lead_id": "id", "email": "/contact/email"},
        )
        records = [(str(1000 + i).encode(), v) for i, v in enumerate(values)]
        await produce(settings, [*records[:6], (b"u", unknown), (b"p", plain), *records[6:]])
        app = await _run_until_idle(settings)

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    deserializer = AvroDeserializer(registry)
    read = [deserializer(r.value, _context(settings.topic_enriched)) for r in enriched]
    assert sorted(r["id"] for r in read) == sorted(lead["id"] for lead in leads.values())
    for record in read:
        lead = leads[record["id"] - 1000]
        assert record["contact"] == lead["contact"] and record["score"] == lead["score"]
        domain = lead["contact"]["email"].split("@")[1]
        assert record["enrichment"]["domain"] == domain
        assert record["enrichment_meta"]["source"] in ("provider", "cache")
        assert record["enrichment_meta"]["attempt"] == 1
    latest = registry.get_latest_version(f"{settings.topic_enriched}-value")
    assert {name["name"] for name in json.loads(latest.schema.schema_str)["fields"]} == {
        "id", "contact", "score", "enrichment", "enrichment_meta",
    }  # fmt: skip
    by_key = {r.key: r for r in dlq}
    assert sorted(by_key) == [b"p", b"u"]
    assert by_key[b"u"].value == unknown and by_key[b"p"].value == plain
    assert by_key[b"u"].headers["streamproc.error.class"] == b"unknown_schema"
    assert by_key[b"p"].headers["streamproc.error.class"] == b"undecodable_payload"
    assert app.processor.stats.committed == 14


async def test_json_schema_leads_enriched_once_and_read_back(
    topics: Settings, registry_url: str
) -> None:
    """JSON Schema leads written by confluent-kafka's serializer are enriched once each
    and read back by its deserializer (which validates them against the extended schema
    the processor registered)."""
    registry = SchemaRegistryClient({"url": registry_url})
    serializer = JSONSerializer(json.dumps(JSON_LEAD), registry)
    leads = [
        {"lead_id": f"j{i}", "email": f"j{i}@corp{i % 2}.example", "tags": ["a", str(i)]}
        for i in range(8)
    ]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            input_format="registry",
            output_format="registry",
            schema_registry_url=registry_url,
        )
        values = [serializer(lead, _context(settings.topic_raw)) for lead in leads]
        await produce(
            settings, [(lead["lead_id"].encode(), v) for lead, v in zip(leads, values, strict=True)]
        )
        await _run_until_idle(settings)

    enriched = await read_all(settings, settings.topic_enriched)
    assert await read_all(settings, settings.topic_dlq) == []
    deserializer = JSONDeserializer(None, schema_registry_client=registry)
    read: list[dict[str, Any]] = [
        deserializer(r.value, _context(settings.topic_enriched)) for r in enriched
    ]
    assert Counter(r["lead_id"] for r in read) == Counter(lead["lead_id"] for lead in leads)
    for record in read:
        assert record["tags"][0] == "a"
        assert record["enrichment"]["domain"] == record["email"].split("@")[1]
        assert record["enrichment_meta"]["credits"] >= 0


async def test_an_incompatible_output_subject_stops_the_start_with_one_line(
    topics: Settings, registry_url: str
) -> None:
    """When the enriched schema would break the output subject's compatibility (here its
    `id` was a string, the input's is a long), `run` refuses to start with one line
    naming both subjects, before it reads a lead."""
    registry = SchemaRegistryClient({"url": registry_url})
    AvroSerializer(registry, json.dumps(AVRO_LEAD))(
        {"id": 1, "contact": {"email": "a@b.example", "name": None}, "score": 0.0},
        _context(topics.topic_raw),
    )
    taken = {"type": "record", "name": "Old", "fields": [{"name": "id", "type": "string"}]}
    registry.register_schema(f"{topics.topic_enriched}-value", Schema(json.dumps(taken), "AVRO"))
    settings = configure(
        topics,
        provider_url="http://127.0.0.1:9/enrich",
        input_format="registry",
        output_format="registry",
        schema_registry_url=registry_url,
    )
    with pytest.raises(ConfigError) as caught:
        await asyncio.wait_for(App(settings).run(), timeout=60)
    message = str(caught.value)
    assert "\n" not in message and "not compatible" in message
    assert f"{topics.topic_enriched}-value" in message, message
