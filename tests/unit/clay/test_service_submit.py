"""ClayService's submit side without Kafka: webhook counts made durable before the POST,
given back only for a definite refusal, turns in arrival order, the pending record."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from streamproc.clay.pending import PendingLead
from streamproc.clay.service import ClayService
from streamproc.errors import ProviderRejected, ProviderTimeout
from streamproc.processing.config import GuardConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.lead import Lead
from streamproc.records.outcome import OutRecord
from streamproc.settings import Settings

HOOK = "https://api.clay.example/hook/a"


class _Store:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.restored = asyncio.Event()
        self.written: list[tuple[str, dict[str, Any] | None]] = []

    async def append(self, key: str, value: dict[str, Any] | None) -> tuple[int, int]:
        self.events.append(f"count={None if value is None else value['rows']}")
        self.written.append((key, value))
        return 1, len(self.written)

    def partition_for(self, key: str) -> int:
        return 1

    def record(self, key: str, value: dict[str, Any] | None) -> OutRecord:
        return OutRecord("state", key.encode(), None if value is None else orjson.dumps(value))


class _Record:
    topic = "leads.raw"
    partition = 2
    offset = 41
    timestamp = 1_700_000_000_000
    key = b"L1"
    value = orjson.dumps({"lead_id": "L1", "domain": "acme.example"})
    headers = [("traceparent", b"t")]


def _service(answer: httpx.Response | Exception, **changes: Any) -> tuple[ClayService, list[str]]:
    events: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events.append("POST")
        if isinstance(answer, Exception):
            raise answer
        return answer

    settings = Settings.model_validate(
        {
            "provider_mode": "clay",
            "clay_webhook_urls": HOOK,
            "clay_callback_secret": "s",
            "clay_rate_per_s": 1000,
            "provider_max_retries": 0,
            "clay_deadline_s": 60,
            **changes,
        }
    )
    guard = ResilienceGuard(
        GuardConfig.from_settings(settings), clock=lambda: 1_764_158_400.0, owner="me"
    )
    store = _Store(events)
    service = ClayService(
        settings,
        guard,
        store,  # type: ignore[arg-type]
        processor_version="t",
        clock=lambda: 1_000.0,
        transport=httpx.MockTransport(handler),
    )
    return service, events


async def _submit(service: ClayService) -> list[OutRecord]:
    lead = Lead(lead_id="L1", domain="acme.example")
    await service.submitter.start()
    slot = await service.reserve(lead)
    admission = await service._guard.admit(lead)
    try:
        return await service.submit(
            slot, _Record(), lead, orjson.loads(_Record.value), 1, admission
        )
    finally:
        service.release(slot)
        await service.submitter.close()


async def test_the_row_is_counted_durably_before_it_is_posted() -> None:
    """The webhook count (1) is in the state topic before the POST goes out."""
    service, events = _service(httpx.Response(200))
    await _submit(service)
    assert events == ["count=1", "POST"]
    assert service.rotation.rows(0) == 1


async def test_the_pending_record_keeps_what_a_dlq_record_needs() -> None:
    """The pending record has the deadline, origin, original bytes and headers and claim."""
    service, _ = _service(httpx.Response(200))
    (record,) = await _submit(service)
    pending = PendingLead.from_dict(orjson.loads(record.value or b"{}"))
    assert record.key == f"clay/pending/L1/{pending.correlation_id}".encode()
    assert pending.deadline == 1_060.0
    assert (pending.origin.partition, pending.origin.offset) == (2, 41)
    assert pending.value == _Record.value
    assert pending.headers == (("traceparent", b"t"),)
    assert pending.claim is not None and pending.claim.amount == 6
    assert pending.owner == "me"


async def test_each_submission_of_a_lead_has_its_own_pending_key() -> None:
    """The same lead submitted twice gives two pending records under two keys, each with
    the correlation id its row carried."""
    service, _ = _service(httpx.Response(200))
    (first,) = await _submit(service)
    (second,) = await _submit(service)
    assert first.key != second.key
    for record in (first, second):
        pending = PendingLead.from_dict(orjson.loads(record.value or b"{}"))
        assert record.key == f"clay/pending/L1/{pending.correlation_id}".encode()


async def test_a_refused_row_is_uncounted() -> None:
    """Clay answering 422 gives the row back: the count returns to 0, durably."""
    service, events = _service(httpx.Response(422))
    with pytest.raises(ProviderRejected):
        await _submit(service)
    assert events == ["count=1", "POST", "count=0"]
    assert service.rotation.rows(0) == 0


async def test_a_row_that_timed_out_stays_counted() -> None:
    """No answer after sending: Clay may have the row, so it stays counted (never under)."""
    service, events = _service(httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout):
        await _submit(service)
    assert events == ["count=1", "POST"]
    assert service.rotation.rows(0) == 1


async def test_turns_are_bounded_and_taken_in_arrival_order() -> None:
    """With a concurrency of 2 the third lead waits until a turn is released, and gets it
    before a fourth that came later."""
    service, _ = _service(httpx.Response(200), clay_submit_concurrency=2)
    lead = Lead(lead_id="L", domain="a.example")
    first, second = await service.reserve(lead), await service.reserve(lead)
    order: list[str] = []

    async def take(name: str) -> None:
        service.release(await service.reserve(lead))
        order.append(name)

    third = asyncio.create_task(take("third"))
    await asyncio.sleep(0)
    fourth = asyncio.create_task(take("fourth"))
    await asyncio.sleep(0.01)
    assert order == []
    service.release(first)
    service.release(first)  # a second release of the same turn changes nothing
    await asyncio.gather(third, fourth)
    service.release(second)
    assert order == ["third", "fourth"]
    assert service.rotation.rows(0) == 0
    held = [await service.reserve(lead), await service.reserve(lead)]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(service.reserve(lead), 0.05)
    for turn in held:
        service.release(turn)
