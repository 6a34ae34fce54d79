"""OpenTelemetry tracing of each lead, off unless ``tracing_enabled`` (docs/tracing.md).

A lead's W3C trace context (``traceparent``, ``tracestate``) comes in its Kafka headers,
goes on in the provider's HTTP request and out in the headers of its output record
(``leads.enriched``, ``leads.dlq``, and so ``leads.parked``, which keeps the DLQ headers).
Three kinds of span:

* ``consume <topic>`` (one per lead, a child of the input's ``traceparent``): from the
  lead's start to its outcome; its context replaces the input's ``traceparent`` in the
  record the lane holds, so every output built from that record, now or at commit time,
  carries it;
* ``provider call`` (its child): one logical call, each retry an event (``provider.retry``:
  the attempt that failed, its error class, the wait before the next);
* ``commit <topic>`` (one per transaction of a partition's lane): linked to the consume
  span of every lead it publishes; a new trace of its own, since a batch has many parents.

Why a process-wide switch and module functions rather than an object handed down: the hooks
sit in the hottest paths of the handler, the lanes and the provider client, and tracing must
cost nothing there when off. :data:`enabled` is set once by :func:`configure` (the one
explicit configure call, as for logging); every hook is ``if tracing.enabled:``, one
attribute read, and nothing of OpenTelemetry is imported until :func:`configure` turns it
on. The OpenTelemetry packages are the ``tracing`` extra.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from streamproc.errors import ConfigError, ErrorClass, LeadError
from streamproc.records.consumed import ConsumedRecord
from streamproc.records.dlq import Headers
from streamproc.records.outcome import Outcome, OutcomeKind
from streamproc.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "INSTALL_HINT",
    "SpanExporter",
    "TracingConfig",
    "configure",
    "enabled",
    "http_headers",
    "provider_call",
    "retry_event",
    "shutdown",
    "traced_commit",
    "traced_lead",
]

#: What a user without the extra is told.
INSTALL_HINT = "pip install 'streamproc[tracing]'"
#: The W3C trace context headers, in Kafka records as in HTTP requests.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_CONTEXT_HEADERS = (TRACEPARENT, TRACESTATE)

#: True while spans are made: set by :func:`configure`, cleared by :func:`shutdown`. Read as
#: ``tracing.enabled`` (never imported by name: the value changes).
enabled = False

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_group_id = ""
_propagator: TraceContextTextMapPropagator | None = None
#: How long :func:`shutdown` waits for the last spans to be exported: a few seconds, well
#: inside any sensible termination grace beyond ``shutdown_grace_s``, since an unreachable
#: collector would otherwise hold the exit for the exporter's retries (about 8 s measured).
SHUTDOWN_TIMEOUT_S = 3.0

T = TypeVar("T")
R = TypeVar("R", bound=ConsumedRecord)


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """The ``tracing_*`` settings (``tracing_`` dropped) and the group id spans carry."""

    enabled: bool
    exporter: Literal["otlp", "console"]
    #: None: the exporter reads the ``OTEL_EXPORTER_OTLP_*`` environment.
    otlp_endpoint: str | None
    service_name: str | None
    sample_ratio: float
    group_id: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TracingConfig:
        """Tracing's part of ``settings``."""
        endpoint = settings.tracing_otlp_endpoint
        return cls(
            enabled=settings.tracing_enabled,
            exporter=settings.tracing_exporter,
            otlp_endpoint=None if endpoint is None else str(endpoint),
            service_name=settings.tracing_service_name,
            sample_ratio=settings.tracing_sample_ratio,
            group_id=settings.group_id,
        )


def configure(config: TracingConfig, *, exporter: SpanExporter | None = None) -> None:
    """Turn tracing on when ``config.enabled``; otherwise leave it off and import
    nothing. ``exporter`` replaces the configured one (a test's in-memory exporter, whose
    spans are then handed over as each one ends, not in batches).

    Raises :class:`ConfigError` when tracing is on and the ``tracing`` extra is missing.
    """
    global enabled, _tracer, _provider, _group_id, _propagator
    if not config.enabled:
        return
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        raise ConfigError(
            f"tracing_enabled needs the OpenTelemetry packages: {INSTALL_HINT} "
            "(or set STREAMPROC_TRACING_ENABLED=false)"
        ) from None
    shutdown()
    resource = Resource.create(
        {SERVICE_NAME: config.service_name} if config.service_name is not None else {}
    )
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "streamproc"}))
    # Not shut down at interpreter exit: that would wait out the exporter's retries; the app
    # calls shutdown(), which bounds the wait.
    provider = TracerProvider(
        resource=resource,
        sampler=_sampler(config.sample_ratio),
        shutdown_on_exit=False,
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif config.exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # None: the exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then
        # OTEL_EXPORTER_OTLP_ENDPOINT, then localhost:4318 (and OTEL_EXPORTER_OTLP_HEADERS).
        otlp = OTLPSpanExporter(endpoint=config.otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(otlp))
    _provider = provider
    _tracer = provider.get_tracer("streamproc")
    _group_id = config.group_id
    _propagator = TraceContextTextMapPropagator()
    enabled = True


def shutdown(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Turn tracing off and export what is left, waiting at most ``timeout_s`` seconds (the
    rest is given up with its daemon thread). Blocking: call it from a thread in a running
    loop. Harmless when tracing is off."""
    global enabled, _tracer, _provider
    provider, _provider = _provider, None
    enabled, _tracer = False, None
    if provider is not None:
        worker = threading.Thread(
            target=provider.shutdown, name="streamproc-tracing-shutdown", daemon=True
        )
        worker.start()
        worker.join(timeout_s)


async def traced_lead(record: R, handle: Callable[[R], Awaitable[Outcome]]) -> Outcome:
    """``handle(record)`` inside the lead's consume span, whose context replaces the
    input's trace headers in ``record`` (the outputs copy them from there)."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = _require()
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": _group_id,
    }
    with tracer.start_as_current_span(
        f"consume {record.topic}",
        context=_extract(record.headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        record.headers = _with_context(record.headers)
        outcome = await handle(record)
        if span.is_recording():
            done: dict[str, Any] = {
                "streamproc.outcome": outcome.kind.value,
                "streamproc.attempt": outcome.attempt,
                "streamproc.credits": outcome.credits,
            }
            if outcome.lead_id is not None:
                done["streamproc.lead_id"] = outcome.lead_id
            if outcome.source is not None:
                done["streamproc.source"] = outcome.source.value
            if outcome.kind is OutcomeKind.DLQ:
                done["error.type"] = (outcome.error_class or ErrorClass.INTERNAL).value
                span.set_status(Status(StatusCode.ERROR, done["error.type"]))
            span.set_attributes(done)
    return outcome


async def provider_call(call: Awaitable[T], url: str | None) -> T:
    """Await one logical provider call (all its attempts) inside a ``provider call`` span,
    a child of the current (the lead's) span. The attempts carry it (:func:`http_headers`)."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = _require()
    with tracer.start_as_current_span(
        "provider call",
        kind=SpanKind.CLIENT,
        attributes=_http_attributes(url),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            done = await call
        except LeadError as exc:
            span.set_attribute("error.type", exc.error_class.value)
            span.set_status(Status(StatusCode.ERROR, exc.error_class.value))
            raise
        attempts = getattr(done, "attempts", None)
        if isinstance(attempts, int):
            span.set_attribute("streamproc.provider.attempts", attempts)
        return done


def http_headers() -> list[tuple[bytes, bytes]]:
    """The trace headers of the current span, for an HTTP request."""
    carrier: dict[str, str] = {}
    if _propagator is not None:
        _propagator.inject(carrier)
    return [(key.encode("ascii"), value.encode("ascii")) for key, value in carrier.items()]


def retry_event(attempt: int, error_class: ErrorClass, wait_s: float) -> None:
    """Attempt number ``attempt`` of the current call failed with ``error_class``; the next
    one comes after ``wait_s`` seconds."""
    from opentelemetry.trace import get_current_span

    get_current_span().add_event(
        "provider.retry",
        {
            "streamproc.attempt": attempt,
            "error.type": error_class.value,
            "streamproc.wait_s": wait_s,
        },
    )


async def traced_commit(
    topic: str,
    partition: int,
    prefix: Callable[[], Sequence[ConsumedRecord]],
    commit: Awaitable[T],
) -> T:
    """Await ``commit`` (one transaction) inside a ``commit`` span linked to the consume
    span of each record it publishes: ``prefix()``, read in the same step as ``commit``
    starts (and reads the same prefix); no span when it is empty."""
    records = prefix()
    if not records:
        return await commit
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind, get_current_span

    tracer = _require()
    links = []
    for record in records:
        context = get_current_span(_extract(record.headers)).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "settle",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.batch.message_count": len(records),
        "streamproc.first_offset": records[0].offset,
        "streamproc.last_offset": records[-1].offset,
    }
    with tracer.start_as_current_span(
        f"commit {topic}",
        context=Context(),  # a root: whatever task committed, the batch has no one parent
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        links=links,
    ):
        return await commit


def _require() -> Tracer:
    if _tracer is None:
        raise RuntimeError("tracing is off: check tracing.enabled before a hook")
    return _tracer


def _extract(headers: Headers) -> Context:
    """The trace context of Kafka headers (an empty one when they have none, or a bad one)."""
    assert _propagator is not None
    carrier: dict[str, str] = {}
    for key, value in headers:
        name = key.lower()
        if name in _CONTEXT_HEADERS and value is not None:
            carrier[name] = value.decode("latin-1")  # the last one wins, as in dlq._get
    return _propagator.extract(carrier)


def _with_context(headers: Headers) -> list[tuple[str, bytes]]:
    """``headers`` with the current span's trace headers instead of any they had."""
    kept = [(k, v) for k, v in headers if k.lower() not in _CONTEXT_HEADERS]
    return kept + [(key.decode(), value) for key, value in http_headers()]


@functools.lru_cache(maxsize=16)
def _http_attributes(url: str | None) -> dict[str, Any]:
    """The HTTP client attributes of a call to ``url``, without its credentials or query;
    none for a provider that does not name one endpoint."""
    if url is None:
        return {}
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    port = parts.port or default_port
    return {
        "http.request.method": "POST",
        "server.address": host,
        "server.port": port,
        "url.full": f"{parts.scheme}://{host}:{port}{parts.path}",
    }


def _sampler(ratio: float) -> Any:
    """Leads: their parent's decision, else ``ratio`` of new traces. Commits (the spans with
    links): sampled when any lead they publish is, so a sampled lead's commit is never lost."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    leads = ParentBased(TraceIdRatioBased(ratio))

    class _LeadsAndCommits(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if links:
                sampled = any(link.context.trace_flags.sampled for link in links)
                decision = Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP
                return SamplingResult(decision, attributes if sampled else None)
            return leads.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"streamproc(ParentBased(TraceIdRatioBased({ratio})), commits by links)"

    return _LeadsAndCommits()
