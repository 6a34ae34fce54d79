"""Tracing (streamproc/tracing.py) with the SDK's in-memory exporter: the spans of a lead,
their parents, retries as events, and the W3C trace context from input to provider to
output. The provider is httpx's MockTransport here; the same path runs on the real broker
and a real HTTP server in tests/integration/processing/test_traced_lead.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from streamproc import tracing
from streamproc.processing.config import HandlerConfig
from streamproc.processing.handler import LeadHandler
from streamproc.processing.lane import PartitionLane
from streamproc.provider.client import ProviderClient
from streamproc.records.outcome import Outcome, OutcomeKind
from streamproc.settings import Settings
from tests.unit.processing.stub_guard import OpenGuard

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()


@dataclass
class _Record:
    offset: int = 7
    topic: str = "leads.raw"
    partition: int = 1
    timestamp: int = 0
    key: bytes | None = b"L1"
    value: bytes | None = field(
        default_factory=lambda: orjson.dumps({"lead_id": "L1", "domain": "acme.example"})
    )
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _settings(**changes: Any) -> Settings:
    return Settings(
        tracing_enabled=True,
        provider_url="http://provider.test/enrich",
        provider_http_transport="httpx",
        provider_backoff_base_s=0.2,
        provider_backoff_max_s=0.2,
        **changes,
    )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(_settings(), exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def _header(headers: Any, name: str) -> bytes | None:
    found = [value for key, value in headers if key == name]
    assert len(found) <= 1, f"{name} twice in {headers}"
    return found[0] if found else None


def _ids(traceparent: bytes) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = traceparent.decode().split("-")
    assert version == "00"
    return trace_id, span_id, flags


def _sampled(flags: str) -> bool:
    return bool(int(flags, 16) & 0x01)


def _hex(span_id: int) -> str:
    return format(span_id, "016x")


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    finished = exporter.get_finished_spans()
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


def _provider(answers: list[int], seen: list[httpx.Request]) -> ProviderClient:
    """A provider client whose server answers ``answers`` in turn, then 200."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = answers.pop(0) if answers else 200
        if status != 200:
            return httpx.Response(status)
        return httpx.Response(200, json={"data": {"company": "Acme"}, "credits": 6})

    async def no_wait(_: float) -> None:
        return None

    return ProviderClient(
        _settings(), transport=httpx.MockTransport(answer), sleep=no_wait, rng=lambda: 0.5
    )


async def test_a_lead_continues_its_trace_through_the_provider_to_its_output(
    spans: InMemorySpanExporter,
) -> None:
    """The consume span is the input traceparent's child; the provider call is its child,
    with the 503 as a retry event; the provider saw the call's context; the output carries
    the consume span's context."""
    seen: list[httpx.Request] = []
    async with _provider([503], seen) as client:
        handler = LeadHandler(
            HandlerConfig.from_settings(_settings()), client, OpenGuard(), processor_version="9.9"
        )
        record = _Record(headers=[("traceparent", TRACEPARENT), ("tracestate", b"k=v")])
        outcome = await handler.handle(record)

    assert outcome.kind is OutcomeKind.ENRICHED
    named = _by_name(spans)
    consume, call = named["consume leads.raw"], named["provider call"]
    assert consume.kind is SpanKind.CONSUMER
    assert _hex(consume.context.trace_id) == TRACE_ID
    assert consume.parent is not None and _hex(consume.parent.span_id) == PARENT_ID
    assert consume.parent.is_remote
    assert consume.attributes is not None
    assert consume.attributes["messaging.destination.partition.id"] == "1"
    assert consume.attributes["messaging.kafka.offset"] == 7
    assert consume.attributes["streamproc.outcome"] == "enriched"
    assert consume.attributes["streamproc.lead_id"] == "L1"
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None and call.parent.span_id == consume.context.span_id
    assert call.attributes is not None and call.attributes["streamproc.provider.attempts"] == 2
    assert call.attributes["url.full"] == "http://provider.test:80/enrich"
    (retry,) = call.events
    assert retry.name == "provider.retry"
    assert dict(retry.attributes or {}) == {
        "streamproc.attempt": 1,
        "error.type": "provider_error",
        "streamproc.wait_s": pytest.approx(0.1),
    }

    assert len(seen) == 2
    for request in seen:  # every attempt carries the call's context
        trace_id, span_id, flags = _ids(request.headers["traceparent"].encode())
        assert (trace_id, span_id, flags) == (TRACE_ID, _hex(call.context.span_id), "01")
        assert request.headers["tracestate"] == "k=v"

    (out,) = outcome.records
    trace_id, span_id, _ = _ids(_header(out.headers, "traceparent") or b"")
    assert (trace_id, span_id) == (TRACE_ID, _hex(consume.context.span_id))
    assert _header(out.headers, "tracestate") == b"k=v"


async def test_a_failed_lead_is_an_error_span_and_its_dlq_record_carries_the_trace(
    spans: InMemorySpanExporter,
) -> None:
    """A lead the provider rejects: both spans have the error class; the DLQ record keeps
    the other headers and carries the consume span's context."""
    seen: list[httpx.Request] = []
    async with _provider([400], seen) as client:
        handler = LeadHandler(
            HandlerConfig.from_settings(_settings()), client, OpenGuard(), processor_version="9.9"
        )
        record = _Record(headers=[("origin", b"crm"), ("traceparent", TRACEPARENT)])
        outcome = await handler.handle(record)

    assert outcome.kind is OutcomeKind.DLQ
    named = _by_name(spans)
    consume, call = named["consume leads.raw"], named["provider call"]
    for span in (consume, call):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "provider_rejected"
    assert call.events == ()  # a 400 is not retried
    (dlq,) = outcome.records
    assert _header(dlq.headers, "origin") == b"crm"
    trace_id, span_id, _ = _ids(_header(dlq.headers, "traceparent") or b"")
    assert (trace_id, span_id) == (TRACE_ID, _hex(consume.context.span_id))


async def test_a_lead_without_a_traceparent_starts_a_trace(spans: InMemorySpanExporter) -> None:
    """No (or an unreadable) traceparent: the consume span is a root, and the output gets
    its context."""
    for headers in ([], [("traceparent", b"00-trace-01")]):
        spans.clear()

        async def handle(record: _Record) -> Outcome:
            return Outcome(OutcomeKind.ENRICHED, [], "L1", 1)

        record = _Record(headers=list(headers))
        await tracing.traced_lead(record, handle)
        (consume,) = spans.get_finished_spans()
        assert consume.parent is None
        trace_id, span_id, flags = _ids(_header(record.headers, "traceparent") or b"")
        assert (trace_id, span_id) == (
            format(consume.context.trace_id, "032x"),
            _hex(consume.context.span_id),
        )
        assert _sampled(flags)


class _Producer:
    """A transactional producer that takes everything at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def begin_transaction(self) -> None:
        return None

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        self.sent.append({"topic": topic, **kw})
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        return None

    async def commit_transaction(self) -> None:
        return None

    async def abort_transaction(self) -> None:
        return None


async def test_a_commit_is_one_span_linked_to_each_lead_it_publishes(
    spans: InMemorySpanExporter,
) -> None:
    """Two leads committed in one transaction: one commit span, a root, linked to both
    consume spans; the published records carry their own lead's context."""
    seen: list[httpx.Request] = []
    producer = _Producer()
    async with _provider([], seen) as client:
        handler = LeadHandler(
            HandlerConfig.from_settings(_settings()), client, OpenGuard(), processor_version="9.9"
        )
        lane = PartitionLane(TopicPartition("leads.raw", 1), producer, "g", 7)  # type: ignore[arg-type]
        lane.submit(_Record(offset=7, headers=[("traceparent", TRACEPARENT)]), handler.handle)
        lane.submit(_Record(offset=8), handler.handle)
        await lane.wait_idle(5)
        result = await lane.commit()
    assert result is not None and result.next_offset == 9

    finished = spans.get_finished_spans()
    consumes = sorted(
        (s for s in finished if s.name == "consume leads.raw"),
        key=lambda s: (s.attributes or {})["messaging.kafka.offset"],
    )
    (commit,) = [s for s in finished if s.name == "commit leads.raw"]
    assert commit.parent is None
    assert [link.context.span_id for link in commit.links] == [s.context.span_id for s in consumes]
    assert commit.attributes is not None
    assert commit.attributes["messaging.batch.message_count"] == 2
    assert _hex(consumes[0].context.trace_id) == TRACE_ID
    assert consumes[1].context.trace_id != consumes[0].context.trace_id
    published = [dict(sent["headers"])["traceparent"] for sent in producer.sent]
    assert [_ids(tp)[1] for tp in published] == [_hex(s.context.span_id) for s in consumes]


async def test_unsampled_leads_and_their_commits_export_nothing() -> None:
    """Ratio 0: a lead without a traceparent is not sampled, nor is a commit of such leads;
    the output still carries the (unsampled) context."""
    exporter = InMemorySpanExporter()
    tracing.configure(_settings(tracing_sample_ratio=0.0), exporter=exporter)
    try:
        producer = _Producer()
        seen: list[httpx.Request] = []
        async with _provider([], seen) as client:
            handler = LeadHandler(
                HandlerConfig.from_settings(_settings()),
                client,
                OpenGuard(),
                processor_version="9.9",
            )
            lane = PartitionLane(TopicPartition("leads.raw", 1), producer, "g", 7)  # type: ignore[arg-type]
            lane.submit(_Record(offset=7), handler.handle)
            await lane.wait_idle(5)
            assert await lane.commit() is not None
    finally:
        tracing.shutdown()
    assert exporter.get_finished_spans() == ()
    (sent,) = producer.sent
    assert not _sampled(_ids(dict(sent["headers"])["traceparent"])[2])
    assert not _sampled(_ids(seen[0].headers["traceparent"].encode())[2])


async def test_off_by_default_and_the_handler_leaves_headers_alone() -> None:
    """Without tracing_enabled nothing is configured and the input's headers pass as
    they came."""
    tracing.configure(Settings())
    assert tracing.enabled is False
    seen: list[httpx.Request] = []
    async with _provider([], seen) as client:
        handler = LeadHandler(
            HandlerConfig.from_settings(Settings()), client, OpenGuard(), processor_version="9.9"
        )
        outcome = await handler.handle(_Record(headers=[("traceparent", b"00-trace-01")]))
    assert outcome.records[0].headers == [("traceparent", b"00-trace-01")]
    assert "traceparent" not in seen[0].headers


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=60,
        check=False,
    )


def test_off_imports_nothing_of_opentelemetry() -> None:
    """A process with tracing off builds the app and handles a lead without importing any
    OpenTelemetry module."""
    code = """
import asyncio, sys
from streamproc.app import App
from streamproc.settings import Settings
from tests.unit.processing.stub_guard import OpenGuard
from dataclasses import dataclass
@dataclass
class Record:
    topic = "leads.raw"; partition = 0; offset = 0; timestamp = 0; key = b"L1"
    value = b'{"lead_id": "L1", "domain": "acme.example"}'
    headers = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
app = App(Settings(provider_url="http://127.0.0.1:9/enrich"))
class Enricher:
    async def enrich(self, lead, lead_id, *, keep_trying=None):
        class R: data = {"company": "Acme"}; credits = 1; attempts = 1
        return R()
from streamproc.processing.config import HandlerConfig
from streamproc.processing.handler import LeadHandler
config = HandlerConfig.from_settings(app.settings)
handler = LeadHandler(config, Enricher(), OpenGuard(), processor_version="9")
assert asyncio.run(handler.handle(Record())).kind == "enriched"
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
print("clean")
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_on_without_the_extra_is_one_line_saying_what_to_install() -> None:
    """`streamproc run` with tracing on and no OpenTelemetry installed exits 2 with one
    line naming the extra, before it touches Kafka or the provider."""
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if the tracing extra were not installed
from streamproc.cli import main
sys.exit(main(["run", "--provider-url", "http://127.0.0.1:9/enrich"]))
"""
    done = _python(code, STREAMPROC_TRACING_ENABLED="true")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'streamproc[tracing]'" in lines[0]
    assert lines[0].startswith("streamproc: tracing_enabled")


def test_the_provider_url_on_a_span_has_no_credentials_nor_query() -> None:
    """A provider URL with a user, a password or a query key shows only scheme, host, port
    and path on the provider call span."""
    attributes = tracing._http_attributes("https://user:s3cret@api.example/v1/enrich?key=abc")
    assert attributes["url.full"] == "https://api.example:443/v1/enrich"
    assert attributes["server.address"] == "api.example"
    assert "s3cret" not in repr(attributes) and "abc" not in repr(attributes)
