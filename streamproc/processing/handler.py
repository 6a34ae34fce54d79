"""One lead, start to finish: decode, guard, enrich, and build the records to publish.

The handler never raises for a lead: every failure becomes a DLQ outcome, so one bad
record can neither stop nor stall the line. Only cancellation propagates.

With an asynchronous provider (a :class:`Deferred`, Clay's webhook protocol) the lead is
*submitted* instead of enriched: the outcome carries the pending-lead state record, which
the lane commits with the input offset, and no output; the enriched lead (or DLQ record)
is published later by whoever receives the callback (:mod:`streamproc.clay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson

from streamproc import tracing
from streamproc.errors import HoldExpired, InternalError, LeadError, RegistryUnavailable
from streamproc.logs import get_logger
from streamproc.processing.config import HandlerConfig
from streamproc.processing.holds import Holds
from streamproc.processing.spend_pacing import LeadPacing
from streamproc.records.consumed import ConsumedRecord
from streamproc.records.dlq import Failure, Headers, Origin, attempt_of, encode_dlq_headers
from streamproc.records.lead import (
    EnrichmentMeta,
    Lead,
    ProcessorInfo,
    ProviderStep,
    Source,
    decode_lead,
)
from streamproc.records.mapping import LeadObject
from streamproc.records.outcome import Outcome, OutcomeKind, OutRecord
from streamproc.resilience.cache import CacheHit
from streamproc.resilience.receipts import receipt_id

__all__ = [
    "Admission",
    "Deferred",
    "Enricher",
    "Guard",
    "LeadCodec",
    "LeadHandler",
    "RawRecord",
    "SlotT",
    "TicketT",
    "Unreadable",
    "enriched_value",
]

log = get_logger(__name__)

#: How soon a lead held by a registry outage asks again; the registry client sends one probe
#: a second whatever the number of leads asking, so this only bounds how late they resume.
_REGISTRY_RETRY_S = 0.5


#: An input record as the handler reads it.
RawRecord = ConsumedRecord


@dataclass(slots=True)
class Unreadable:
    """A record the Kafka client could not decode: only its position is known."""

    topic: str
    partition: int
    offset: int
    timestamp: int = -1
    key: bytes | None = None
    value: bytes | None = None
    headers: Headers = ()


class CallResult(Protocol):
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def credits(self) -> int: ...
    @property
    def attempts(self) -> int: ...


class Enricher(Protocol):
    async def enrich(
        self,
        lead: Mapping[str, Any],
        lead_id: str,
        *,
        keep_trying: Callable[[LeadError], Awaitable[bool]] | None = None,
    ) -> CallResult: ...


#: What a guard holds for one admitted call until it is settled: its own type, which the
#: handler only passes back (ResilienceGuard's is :class:`~streamproc.processing.guard.Ticket`).
TicketT = TypeVar("TicketT")
#: A deferred provider's place for one submission (Clay's is a webhook row's
#: :class:`~streamproc.clay.turns.Reservation`), likewise only passed back by the handler.
SlotT = TypeVar("SlotT")
#: The same two, as a handler holds them: the processor takes any handler, whatever its
#: guard's ticket and its deferred provider's slot (it never sees either).
_TicketT_co = TypeVar("_TicketT_co", covariant=True)
_SlotT_co = TypeVar("_SlotT_co", covariant=True)


@dataclass(slots=True)
class Admission(Generic[TicketT]):
    """The guard's answer for one lead: call the provider, or use what it already has."""

    enrichment: dict[str, Any] | None = None
    source: Source = Source.PROVIDER
    #: Set when ``enrichment`` came from the cache: said in the lead's ``enrichment_meta``.
    cache: CacheHit | None = None
    #: The guard's ticket for an admitted call, passed back to settle what it reserved;
    #: None when the guard answered itself (``enrichment``) or reserved nothing.
    ticket: TicketT | None = None
    #: What the lead was charged for ``enrichment`` when an earlier run paid for it (its
    #: receipt): said in the lead's meta, not charged again.
    credits: int = 0
    #: State records to commit in the lead's own transaction (a receipt's tombstone), set
    #: by the guard at admit or settle.
    after: list[OutRecord] | None = None


class Guard(Protocol[TicketT]):
    """Breaker, budget and cache in front of the provider (see ``streamproc.resilience``)."""

    async def admit(self, lead: Lead, receipt: str | None = None) -> Admission[TicketT]:
        """Admit a call, answer from the lead's ``receipt`` (its id, see
        :mod:`streamproc.resilience.receipts`) or the cache, wait (hold policies) or raise a
        LeadError."""
        ...

    def settle(
        self, admission: Admission[TicketT], result: CallResult | None, error: LeadError | None
    ) -> None:
        """Record the call's outcome."""
        ...

    def cancelled(self, admission: Admission[TicketT]) -> None:
        """The lead's processing was cancelled mid-call (rebalance, shutdown)."""
        ...

    def fallback(self, lead: Lead, error: LeadError) -> dict[str, Any] | None:
        """Local enrichment for a lead the provider could not serve, or None."""
        ...

    async def may_retry(self, admission: Admission[TicketT], error: LeadError) -> bool:
        """An attempt of an admitted call failed with ``error``: may it retry in-process?"""
        ...

    def hold_after(self, error: LeadError) -> bool:
        """Whether a failed lead is held and admitted again instead of dead-lettered."""
        ...


class Deferred(Protocol[SlotT, TicketT]):
    """An asynchronous provider: a lead is submitted now and finished later, elsewhere.

    ``TicketT``: the ticket of the guard whose admissions it is given."""

    async def reserve(self, lead: Lead) -> SlotT:
        """A place for one more submission (a webhook row); waits while there is none."""
        ...

    def release(self, slot: SlotT) -> None:
        """Give back a place that was not used; harmless after :meth:`submit` used it."""
        ...

    async def submit(
        self,
        slot: SlotT,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        admission: Admission[TicketT],
    ) -> list[OutRecord]:
        """Submit an admitted lead; returns the state records to commit with its offset.

        Raises a LeadError when the provider did not accept it (the claim is then settled
        by the handler, as for a failed synchronous call).
        """
        ...


class LeadCodec(Protocol):
    """Leads in another shape than plain JSON with our field names (``lead_fields``, the
    schema registry's wire format): see streamproc.registry.codec."""

    async def decode(self, value: bytes | None) -> tuple[Lead, LeadObject]:
        """The lead and the record's own object; a LeadError when it is not a lead;
        RegistryUnavailable while the registry is down (the lead is held)."""
        ...

    def encode(self, obj: LeadObject, enrichment: dict[str, Any], meta: dict[str, Any]) -> bytes:
        """The ``leads.enriched`` value: the record's own object with the enrichment."""
        ...


def enriched_value(
    obj: dict[str, Any],
    enrichment: dict[str, Any],
    *,
    source: Source,
    credits: int,
    attempt: int,
    enriched_at: datetime,
    processor: dict[str, str],
    cache: CacheHit | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> bytes:
    """The ``leads.enriched`` value: the lead's own fields, ``enrichment``, and the
    ``enrichment_meta`` of the published model (``EnrichedLead`` in ``schemas/``),
    validated, with ``cache_key`` and ``cached_at`` when ``cache`` served it. The lead's own
    fields were validated when it was decoded and pass through as they came.

    The meta is built here rather than by :func:`enrichment_meta`: this is the path of
    every plain JSON lead, and a call less is measurable per lead. A lead from the provider
    or the fallback, at a UTC time, gets its meta as a plain dict that orjson writes as the
    model would (``Z``, microseconds only when there are some): building and dumping the
    model was about a tenth of streamproc's own CPU per lead (bench/profiles/). Anything
    else goes through the model and its validation."""
    if (
        cache is None
        and source in _UNCACHED_SOURCES
        and type(credits) is int
        and credits >= 0
        and type(attempt) is int
        and attempt >= 1
        and enriched_at.tzinfo is UTC
        and processor.keys() == _PROCESSOR_KEYS
    ):
        fast: dict[str, Any] = {
            "source": source,
            "credits": credits,
            "attempt": attempt,
            "enriched_at": enriched_at,
            "processor": processor,
        }
        if steps is not None:
            fast["providers"] = steps
        return orjson.dumps(
            {**obj, "enrichment": enrichment, "enrichment_meta": fast},
            option=orjson.OPT_UTC_Z,
        )
    dumped = enrichment_meta(
        source=source,
        credits=credits,
        attempt=attempt,
        enriched_at=enriched_at,
        processor=processor,
        cache=cache,
        steps=steps,
    )
    return orjson.dumps({**obj, "enrichment": enrichment, "enrichment_meta": dumped})


#: The sources whose meta has no cache fields, and the processor's fields (EnrichmentMeta).
_UNCACHED_SOURCES = frozenset({Source.PROVIDER, Source.FALLBACK})
_PROCESSOR_KEYS = frozenset({"name", "version"})


def enrichment_meta(
    *,
    source: Source,
    credits: int,
    attempt: int,
    enriched_at: datetime,
    processor: dict[str, str],
    cache: CacheHit | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``enrichment_meta`` of an enriched lead, validated, as JSON values."""
    meta = EnrichmentMeta(
        source=source,
        credits=credits,
        attempt=attempt,
        enriched_at=enriched_at,
        processor=ProcessorInfo(**processor),
        cache_key=cache.key.value if cache is not None else None,
        cached_at=datetime.fromtimestamp(cache.stored_at, UTC) if cache is not None else None,
        providers=None if steps is None else [ProviderStep(**step) for step in steps],
    )
    return meta.model_dump(mode="json", exclude_none=True)


_Result = TypeVar("_Result")


def _shaped(obj: dict[str, Any]) -> LeadObject:
    """The object a codec decoded: the record as it came, with the lead's fields under our
    names (what the provider is sent; without a codec it is sent the record itself)."""
    assert isinstance(obj, LeadObject)
    return obj


class LeadHandler(Generic[_TicketT_co, _SlotT_co]):
    """One lead from input record to outcome: decode, the guard, the provider, the records
    to publish. Never raises for a lead (a failure is a DLQ outcome); only cancellation
    propagates. Synchronous providers (``enricher``) and Clay (``deferred``) share one
    admit → call → settle round (:meth:`_admit_and_call`).
    """

    def __init__(
        self,
        config: HandlerConfig,
        enricher: Enricher | None,
        guard: Guard[_TicketT_co],
        *,
        processor_version: str,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        deferred: Deferred[_SlotT_co, _TicketT_co] | None = None,
        codec: LeadCodec | None = None,
        pacing: LeadPacing | None = None,
    ) -> None:
        if enricher is None and deferred is None:
            raise ValueError("LeadHandler needs an enricher or a deferred provider")
        self._config = config
        self._enricher = enricher
        #: A waterfall's answers say which providers were tried (``enrichment_meta``).
        self._steps = getattr(enricher, "has_steps", False) is True
        self._guard = guard
        self._utcnow = utcnow
        self._deferred = deferred
        self._processor = {"name": "streamproc", "version": processor_version}
        #: None: plain JSON with our field names, decoded inline (the fast path).
        self._codec = codec
        self._pacing = pacing
        # Chosen once here: with no score and no pacing a lead pays no check for them.
        self._handle_one = self._handle if pacing is None else self._handle_paced
        self._enrich_one = self._enrich if pacing is None else self._enrich_paced
        #: Leads waiting for the schema registry to answer again.
        self._holds = Holds(time.monotonic)
        #: How many leads wait for the registry now (in a hold or asking again).
        self.registry_held = 0

    def release_holds(self, tasks: Collection[asyncio.Task[Any]] | None = None) -> int:
        """Cancel the leads held by a registry outage, all of them (at shutdown) or the
        lead tasks ``tasks`` (of revoked partitions); returns how many."""
        return self._holds.release(tasks)

    async def _decode(self, codec: LeadCodec, value: bytes | None) -> tuple[Lead, LeadObject]:
        """Decode through ``codec``; while the registry is down (or refuses) the lead waits
        here, so its partition commits nothing past it (a hold), up to ``hold_max_age_s``:
        then it is dead-lettered, retriable, as ``hold_expired``."""
        try:
            return await codec.decode(value)
        except RegistryUnavailable:
            pass
        self.registry_held += 1
        expires = time.monotonic() + self._config.hold_max_age_s
        try:
            while True:
                await self._holds.hold(min(time.monotonic() + _REGISTRY_RETRY_S, expires))
                try:
                    return await codec.decode(value)
                except RegistryUnavailable as exc:
                    if time.monotonic() >= expires:
                        # A refusal for one schema id (a 403 on its subject) would hold
                        # the partition forever: past the age, the lead goes, replayable.
                        raise HoldExpired(
                            "held longer than hold_max_age_s "
                            f"({self._config.hold_max_age_s:g}s) waiting for the schema "
                            f"registry: {exc}"
                        ) from exc
        finally:
            self.registry_held -= 1

    async def handle(self, record: RawRecord) -> Outcome:
        if tracing.enabled:  # off: this one check (docs/tracing.md)
            return await tracing.traced_lead(record, self._handle_one)
        return await self._handle_one(record)

    async def _handle_paced(self, record: RawRecord) -> Outcome:
        """A deferral record is handled as the input record it was (its DLQ record points
        there)."""
        assert self._pacing is not None
        return await self._handle(self._pacing.view(record))

    async def _handle(self, record: RawRecord) -> Outcome:
        attempt = attempt_of(record.headers)
        lead_id: str | None = None
        try:
            if self._codec is None:
                lead, obj = decode_lead(record.value, max_bytes=self._config.max_lead_bytes)
            else:
                lead, obj = await self._decode(self._codec, record.value)
            lead_id = lead.lead_id
            try:
                return await self._enrich_one(record, lead, obj, attempt)
            except LeadError as exc:
                guessed = self._guard.fallback(lead, exc)
                if guessed is None:
                    raise
                return self._enriched(record, lead, obj, attempt, guessed, Source.FALLBACK, 0)
        except LeadError as exc:
            return self._dead_letter(record, exc, attempt, lead_id)
        except Exception as exc:  # a bug of ours must not stop the line
            log.exception("lead.internal_error", lead_id=lead_id, offset=record.offset)
            error = InternalError(f"internal error: {exc.__class__.__name__}")
            return self._dead_letter(record, error, attempt, lead_id)

    async def _enrich_paced(
        self, record: RawRecord, lead: Lead, obj: dict[str, Any], attempt: int
    ) -> Outcome:
        """Score the lead (its floor), then enrich it now or defer it to its band's topic:
        a deferral is the lead's one output, committed with its offset like a DLQ record."""
        pacing = self._pacing
        assert pacing is not None
        fields = obj if self._codec is None else _shaped(obj).lead_fields
        deferral = await pacing.admit(record, lead.lead_id, fields)
        if deferral is not None:
            return Outcome(OutcomeKind.DEFERRED, [deferral], lead.lead_id, attempt)
        try:
            return await self._enrich(record, lead, obj, attempt)
        finally:
            pacing.finished(record)

    async def _enrich(
        self, record: RawRecord, lead: Lead, obj: dict[str, Any], attempt: int
    ) -> Outcome:
        if self._deferred is not None:
            return await self._submit(self._deferred, record, lead, obj, attempt)
        enricher = self._enricher
        assert enricher is not None

        async def call(admission: Admission[_TicketT_co]) -> CallResult:
            return await enricher.enrich(
                obj if self._codec is None else _shaped(obj).lead_fields,
                lead.lead_id,
                keep_trying=functools.partial(self._guard.may_retry, admission),
            )

        receipt = receipt_id(lead.lead_id, record.value)
        admission, result = await self._guarded(lead, call, receipt)
        if result is None:
            return self._answered(record, lead, obj, attempt, admission)
        self._guard.settle(admission, result, None)
        return self._enriched(
            record,
            lead,
            obj,
            attempt,
            result.data,
            Source.PROVIDER,
            result.credits,
            after=admission.after,
            steps=getattr(result, "steps", None) if self._steps else None,
        )

    async def _submit(
        self,
        deferred: Deferred[_SlotT_co, _TicketT_co],
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
    ) -> Outcome:
        """Asynchronous mode: a webhook place first (held while there is none, before any
        credit is reserved), then the guard (cache, breaker, budget claim), then submit.
        The claim is settled later, by whoever finishes the submission."""

        # Clay is sent what a synchronous provider is: the lead's fields under our names
        # (docs/schema-registry.md); the raw record travels in ``record`` for the output.
        fields = obj if self._codec is None else _shaped(obj).lead_fields

        @contextlib.asynccontextmanager
        async def place(
            lead: Lead,
        ) -> AsyncIterator[Callable[[Admission[_TicketT_co]], Awaitable[list[OutRecord]]]]:
            """A place to submit in, as the call that submits there."""
            slot = await deferred.reserve(lead)
            try:

                async def call(admission: Admission[_TicketT_co]) -> list[OutRecord]:
                    return await deferred.submit(slot, record, lead, fields, attempt, admission)

                yield call
            finally:
                deferred.release(slot)

        # The rounds of :meth:`_guarded`, each within a place: a held lead gives its
        # webhook row back while it waits.
        while True:
            async with place(lead) as call:
                answered = await self._admit_and_call(lead, call, None)
            if answered is not None:
                break
        admission, pending = answered
        if pending is None:
            return self._answered(record, lead, obj, attempt, admission)
        return Outcome(OutcomeKind.SUBMITTED, pending, lead.lead_id, attempt)

    async def _guarded(
        self,
        lead: Lead,
        call: Callable[[Admission[_TicketT_co]], Awaitable[_Result]],
        receipt: str | None,
    ) -> tuple[Admission[_TicketT_co], _Result | None]:
        """The lead loop of a synchronous provider: rounds of :meth:`_admit_and_call` until
        one is not held. (A Clay submission runs the same rounds, each within a webhook
        place: :meth:`_submit`.) No context manager at all here: entering and leaving an
        empty one cost a generator and two coroutines per lead (bench/profiles/)."""
        while True:
            answered = await self._admit_and_call(lead, call, receipt)
            if answered is not None:
                return answered

    async def _admit_and_call(
        self,
        lead: Lead,
        call: Callable[[Admission[_TicketT_co]], Awaitable[_Result]],
        receipt: str | None,
    ) -> tuple[Admission[_TicketT_co], _Result | None] | None:
        """The one admit → call → settle round of both modes: admit the lead through the
        guard and ``call`` the provider. ``(admission, None)`` when the guard answered
        itself (the cache). A failure is settled; when the breaker opened under the call,
        the lead is held and None says it goes again instead of being dead-lettered. A
        cancelled call gives its admission back."""
        admission = await self._guard.admit(lead, receipt)
        if admission.enrichment is not None:
            return admission, None
        try:
            return admission, await call(admission)
        except LeadError as exc:
            self._guard.settle(admission, None, exc)
            if not self._guard.hold_after(exc):
                raise
            return None
        except BaseException:
            self._guard.cancelled(admission)
            raise

    def _answered(
        self,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        admission: Admission[_TicketT_co],
    ) -> Outcome:
        """A lead the guard answered itself (from its receipt or the cache): nothing charged
        now; a receipt's answer says what the lead was charged when it was bought."""
        assert admission.enrichment is not None
        enrichment, source, cache = admission.enrichment, admission.source, admission.cache
        return self._enriched(
            record,
            lead,
            obj,
            attempt,
            enrichment,
            source,
            0,
            cache=cache,
            paid=admission.credits,
            after=admission.after,
        )

    def _enriched(
        self,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        enrichment: dict[str, Any],
        source: Source,
        credits: int,
        cache: CacheHit | None = None,
        paid: int = 0,
        after: list[OutRecord] | None = None,
        steps: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        """``credits`` charged now; ``paid`` charged by an earlier run (said in the meta);
        ``steps``: a waterfall's providers tried."""
        if self._codec is None:
            value = enriched_value(
                obj,
                enrichment,
                source=source,
                credits=credits or paid,
                attempt=attempt,
                enriched_at=self._utcnow(),
                processor=self._processor,
                cache=cache,
                steps=steps,
            )
        else:
            meta = enrichment_meta(
                source=source,
                credits=credits or paid,
                attempt=attempt,
                enriched_at=self._utcnow(),
                processor=self._processor,
                cache=cache,
            )
            # The registry's output schemas carry no steps (their compatibility is the
            # user's): a waterfall's steps are in the plain JSON output only.
            value = self._codec.encode(_shaped(obj), enrichment, meta)
        out = OutRecord(
            self._config.topic_enriched,
            record.key if record.key is not None else lead.lead_id.encode(),
            value,
            list(record.headers),
        )
        return Outcome(
            OutcomeKind.ENRICHED,
            [out] if after is None else [out, *after],
            lead.lead_id,
            attempt,
            source=source,
            credits=credits,
        )

    def dead_letter(self, record: Any, error: LeadError, previous: Outcome | None) -> Outcome:
        """The DLQ outcome of a lead that ``previous`` (its outcome until now) cannot publish.

        What the lead was charged stays counted: the provider was paid all the same.
        """
        attempt = previous.attempt if previous is not None else attempt_of(record.headers)
        lead_id = previous.lead_id if previous is not None else None
        outcome = self._dead_letter(record, error, attempt, lead_id)
        if previous is None:
            return outcome
        # The receipt's tombstone is left out: a lead dead-lettered after its answer (its
        # output too large, refused) keeps its receipt until receipt_ttl_s, so a replay of
        # it within that time is answered from the receipt, not bought again.
        return Outcome(
            outcome.kind,
            outcome.records,
            lead_id,
            attempt,
            error_class=outcome.error_class,
            source=previous.source,
            credits=previous.credits,
        )

    def _dead_letter(
        self, record: RawRecord, exc: LeadError, attempt: int, lead_id: str | None
    ) -> Outcome:
        headers = encode_dlq_headers(
            record.headers,
            Failure(exc.error_class, exc.message, exc.retriable),
            Origin(record.topic, record.partition, record.offset, record.timestamp),
            attempt,
            self._utcnow(),
        )
        key = record.key if record.key is not None else (lead_id.encode() if lead_id else None)
        if key is None and record.value is None:
            # Upstream may write neither (a Java `new ProducerRecord(topic, null)`), but
            # Kafka clients refuse to: the DLQ record gets an empty key.
            key = b""
        out = OutRecord(self._config.topic_dlq, key, record.value, headers)
        return Outcome(OutcomeKind.DLQ, [out], lead_id, attempt, error_class=exc.error_class)
