"""A traced lead on the real broker with a real HTTP provider: its trace goes from the
input's traceparent through the provider's request to its output, and its spans are
consume → provider call (a retry event for the 503) → commit (linked)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streamproc.app import App
from streamproc.settings import Settings
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()


@asynccontextmanager
async def _provider(seen: list[dict[str, str]]) -> AsyncIterator[str]:
    """An HTTP provider on a free port: the first call to each lead answers 503, then 200;
    a lead of ``reject.test`` is answered 400. ``seen``: each request's headers."""
    calls: dict[str, int] = {}

    async def enrich(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        lead = orjson.loads(await request.read())
        if lead["domain"].endswith("reject.test"):
            return web.Response(status=400)
        calls[lead["lead_id"]] = calls.get(lead["lead_id"], 0) + 1
        if calls[lead["lead_id"]] == 1:
            return web.Response(status=503)
        body = {"data": {"company": "Acme", "domain": lead["domain"]}, "credits": 6}
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/enrich", enrich)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/enrich"
    finally:
        await runner.cleanup()


def _ids(traceparent: str | bytes) -> tuple[str, str]:
    text = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
    _, trace_id, span_id, _ = text.split("-")
    return trace_id, span_id


def _hex(value: int, width: int = 16) -> str:
    return format(value, f"0{width}x")


def span_tree(spans: tuple[ReadableSpan, ...], trace_id: str) -> str:
    """The spans of one trace as an indented tree, with the commits that link to them."""
    ours = [s for s in spans if _hex(s.context.trace_id, 32) == trace_id]
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in ours:
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    lines: list[str] = []

    def show(span: ReadableSpan, depth: int) -> None:
        attributes = span.attributes or {}
        detail = ", ".join(
            f"{key}={attributes[key]}"
            for key in (
                "streamproc.lead_id",
                "streamproc.outcome",
                "streamproc.provider.attempts",
                "error.type",
            )
            if key in attributes
        )
        lines.append(f"{'  ' * depth}{span.name} [{span.kind.name}] {detail}".rstrip())
        for event in span.events:
            lines.append(f"{'  ' * (depth + 1)}event {event.name} {dict(event.attributes or {})}")
        for child in sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time):
            show(child, depth + 1)
        for commit in spans:
            if any(link.context.span_id == span.context.span_id for link in commit.links):
                count = (commit.attributes or {}).get("messaging.batch.message_count")
                lines.append(
                    f"{'  ' * (depth + 1)}{commit.name} [{commit.kind.name}, own trace, "
                    f"linked; {count} lead(s) in its transaction]"
                )

    roots = [s for s in ours if s.parent is None or s.parent.is_remote]
    lines.append(f"trace {trace_id} (remote parent {PARENT_ID})")
    for root in sorted(roots, key=lambda s: s.start_time or 0):
        show(root, 1)
    return "\n".join(lines)


async def test_a_traced_lead_keeps_its_trace_from_input_to_provider_to_output(
    topics: Settings,
) -> None:
    """One lead enriched after a 503, one rejected: the provider saw the input's trace id,
    the enriched and DLQ records carry it, and the spans form consume → provider call (a
    retry event) → commit."""
    seen: list[dict[str, str]] = []
    exporter = InMemorySpanExporter()
    async with _provider(seen) as url:
        settings = configure(
            topics,
            provider_url=url,
            provider_backoff_base_s=0.01,
            provider_backoff_max_s=0.01,
            tracing_enabled=True,
        )
        leads = [
            (b"ok-1", orjson.dumps({"lead_id": "ok-1", "domain": "acme.example"})),
            (b"rej-1", orjson.dumps({"lead_id": "rej-1", "domain": "x.reject.test"})),
        ]
        await produce(settings, leads, headers=[("traceparent", TRACEPARENT)])
        app = App(settings, span_exporter=exporter)
        await asyncio.wait_for(app.run(stop_when_idle_s=1.0), timeout=60)

    # The provider: every request carried the input's trace (the provider call's span).
    assert len(seen) == 3  # ok-1: 503 then 200; rej-1: 400
    assert {_ids(headers["traceparent"])[0] for headers in seen} == {TRACE_ID}

    spans = exporter.get_finished_spans()
    consumes = {
        (s.attributes or {}).get("streamproc.lead_id"): s
        for s in spans
        if s.name == f"consume {settings.topic_raw}"
    }
    assert set(consumes) == {"ok-1", "rej-1"}
    calls = {s.parent.span_id: s for s in spans if s.name == "provider call" and s.parent}
    commits = [s for s in spans if s.name == f"commit {settings.topic_raw}"]
    for lead_id, consume in consumes.items():
        assert _hex(consume.context.trace_id, 32) == TRACE_ID
        assert consume.parent is not None and _hex(consume.parent.span_id) == PARENT_ID
        call = calls[consume.context.span_id]  # the provider call is the lead's child
        span_id = consume.context.span_id
        linked = [c for c in commits if any(k.context.span_id == span_id for k in c.links)]
        assert len(linked) == 1, f"{lead_id}: one commit links to it"
        assert linked[0].parent is None
        if lead_id == "ok-1":
            assert [e.name for e in call.events] == ["provider.retry"]
            assert (call.events[0].attributes or {})["error.type"] == "provider_error"
            assert (call.attributes or {})["streamproc.provider.attempts"] == 2
        else:
            assert (call.attributes or {})["error.type"] == "provider_rejected"
    ok_call = calls[consumes["ok-1"].context.span_id]
    ok_requests = [h for h in seen if _ids(h["traceparent"])[1] == _hex(ok_call.context.span_id)]
    assert len(ok_requests) == 2, "both attempts carried the provider call's span"

    # The outputs: the same trace, the lead's consume span as parent.
    (enriched,) = await read_all(settings, settings.topic_enriched)
    (dead,) = await read_all(settings, settings.topic_dlq)
    assert _ids(enriched.headers["traceparent"]) == (
        TRACE_ID,
        _hex(consumes["ok-1"].context.span_id),
    )
    assert _ids(dead.headers["traceparent"]) == (TRACE_ID, _hex(consumes["rej-1"].context.span_id))
    assert dead.headers["streamproc.error.class"] == b"provider_rejected"
    print("\n" + span_tree(spans, TRACE_ID))


async def test_spans_go_to_the_configured_otlp_endpoint() -> None:
    """With tracing_otlp_endpoint set, the spans reach that URL as OTLP/HTTP protobuf, under
    service.name streamproc, by the time tracing shuts down."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from streamproc import tracing
    from streamproc.records.outcome import Outcome, OutcomeKind

    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        received.append(export)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        endpoint = f"http://127.0.0.1:{port}/v1/traces"
        tracing.configure(
            tracing.TracingConfig.from_settings(
                Settings(tracing_enabled=True, tracing_otlp_endpoint=endpoint)
            )
        )

        @dataclass
        class Record:
            topic: str = "leads.raw"
            partition: int = 0
            offset: int = 5
            timestamp: int = 0
            key: bytes | None = None
            value: bytes | None = None
            headers: list[tuple[str, bytes]] = field(
                default_factory=lambda: [("traceparent", TRACEPARENT)]
            )

        async def handle(record: Record) -> Outcome:
            return Outcome(OutcomeKind.ENRICHED, [], "L1", 1)

        await tracing.traced_lead(Record(), handle)
        await asyncio.to_thread(tracing.shutdown)
    finally:
        tracing.shutdown()
        await runner.cleanup()

    spans = [
        (resource.resource, span)
        for export in received
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [span.name for _, span in spans] == ["consume leads.raw"]
    resource, span = spans[0]
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_ID
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "streamproc"
