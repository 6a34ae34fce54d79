"""The handler with a lead codec (lead_fields, registry payloads): the provider gets our
names, the output keeps the record's shape, and a registry outage holds the lead."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from streamproc.errors import LeadError, RegistryUnavailable
from streamproc.processing.config import HandlerConfig
from streamproc.processing.handler import CallResult, LeadHandler
from streamproc.records.lead import Lead
from streamproc.records.mapping import LeadObject, LeadShape, decode_shaped_json
from streamproc.records.outcome import OutcomeKind
from streamproc.registry.codec import ShapedJsonCodec
from streamproc.settings import Settings
from tests.unit.processing.stub_guard import OpenGuard
from tests.unit.processing.test_handler import _Record, _Result


class _Enricher:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def enrich(
        self,
        lead: Any,
        lead_id: str,
        *,
        keep_trying: Callable[[LeadError], Awaitable[bool]] | None = None,
    ) -> CallResult:
        self.sent.append(dict(lead))
        return _Result({"company": "Acme"}, 1)


class _FlakyRegistryCodec(ShapedJsonCodec):
    """Plain JSON behind a registry that is down for the first ``down`` questions."""

    def __init__(self, settings: Settings, down: int) -> None:
        super().__init__(settings)
        self.down = down
        self.asked = 0

    async def decode(self, value: bytes | None) -> tuple[Lead, LeadObject]:
        self.asked += 1
        if self.asked <= self.down:
            raise RegistryUnavailable("down")
        return await super().decode(value)


RECORD = orjson.dumps({"id": 5, "contact": {"email": "p@acme.example"}})
SETTINGS = Settings(lead_fields={"lead_id": "/id", "email": "contact.email"})


async def test_a_mapped_lead_reaches_the_provider_under_our_names_and_keeps_its_shape() -> None:
    """The provider is sent lead_id and email; leads.enriched gets the record's own shape
    plus enrichment and enrichment_meta."""
    enricher = _Enricher()
    handler = LeadHandler(
        HandlerConfig.from_settings(SETTINGS),
        enricher,
        OpenGuard(),
        processor_version="1",
        codec=ShapedJsonCodec(SETTINGS),
    )
    outcome = await handler.handle(_Record(key=b"5", value=RECORD))
    assert outcome.kind is OutcomeKind.ENRICHED and outcome.lead_id == "5"
    assert enricher.sent == [{"lead_id": "5", "email": "p@acme.example"}]
    published = orjson.loads(outcome.records[0].value or b"")
    assert set(published) == {"id", "contact", "enrichment", "enrichment_meta"}
    assert published["enrichment"] == {"company": "Acme"}


async def test_a_registry_outage_holds_the_lead_and_never_dead_letters_it() -> None:
    """While the codec says the registry is down the lead waits (counted as held); when it
    answers, the lead is enriched, not dead-lettered."""
    codec = _FlakyRegistryCodec(SETTINGS, down=3)
    handler = LeadHandler(
        HandlerConfig.from_settings(SETTINGS),
        _Enricher(),
        OpenGuard(),
        processor_version="1",
        codec=codec,
    )
    task = asyncio.ensure_future(handler.handle(_Record(key=b"5", value=RECORD)))
    await asyncio.sleep(0.1)
    assert not task.done() and handler.registry_held == 1
    outcome = await asyncio.wait_for(task, 10)
    assert outcome.kind is OutcomeKind.ENRICHED and codec.asked == 4
    assert handler.registry_held == 0


async def test_a_lead_held_for_the_registry_is_released_at_shutdown() -> None:
    """release_holds cancels it (it is read again from the committed offset)."""
    codec = _FlakyRegistryCodec(SETTINGS, down=10**6)
    handler = LeadHandler(
        HandlerConfig.from_settings(SETTINGS),
        _Enricher(),
        OpenGuard(),
        processor_version="1",
        codec=codec,
    )
    task = asyncio.ensure_future(handler.handle(_Record(key=b"5", value=RECORD)))
    await asyncio.sleep(0.1)
    assert handler.release_holds() == 1
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_registry_that_keeps_refusing_dead_letters_the_lead_after_the_max_age() -> None:
    """A registry refusing for good (a 403 for one schema id): past hold_max_age_s the lead
    is dead-lettered, retriable, as hold_expired, saying what it waited for."""
    settings = SETTINGS.model_copy(update={"hold_max_age_s": 1.0})
    codec = _FlakyRegistryCodec(settings, down=10**6)
    handler = LeadHandler(
        HandlerConfig.from_settings(settings),
        _Enricher(),
        OpenGuard(),
        processor_version="1",
        codec=codec,
    )
    outcome = await asyncio.wait_for(handler.handle(_Record(key=b"5", value=RECORD)), 30)
    assert outcome.kind is OutcomeKind.DLQ and outcome.error_class == "hold_expired"
    headers = dict(outcome.records[0].headers)
    assert headers["streamproc.error.retriable"] == b"true"
    assert b"schema registry: down" in headers["streamproc.error.message"]
    assert handler.registry_held == 0


def test_the_shaped_decoder_reads_what_the_codec_reads() -> None:
    """ShapedJsonCodec is decode_shaped_json with the settings' mapping."""
    lead, obj = decode_shaped_json(RECORD, LeadShape(SETTINGS.lead_fields), max_bytes=1000)
    assert lead.lead_id == "5" and obj.lead_fields["email"] == "p@acme.example"
