"""``streamproc try``: one lead through the configured provider, each step shown.

A user who writes a provider's configuration wants to know in a minute whether it asks the
API what they meant, reads the answer they meant and charges what the API charges. This
sends **one lead** through the provider the settings choose, **one attempt** (no retries,
no cache), and reports each step: every HTTP exchange (the request as sent, secrets
masked; the status; the time), how the answer was classified, what it cost, and the record
that would be published (to ``topic_enriched``, or to ``topic_dlq`` with its headers). It
touches no Kafka topic and no budget: nothing is produced, nothing is reserved.

A :class:`Trial` is a list of :class:`Step`, one per provider asked. With a
``[streamproc.waterfall]`` table the lead goes through the waterfall (docs/waterfall.md):
its route, then each provider of that route **in the configured order** (``try`` reads no
state topic, so not the order the group has learnt), one attempt each, the stop rule, the
cost ceiling (a provider passed over is a step ``over_ceiling``) and the merge, as the
pipeline runs them; each step says what the waterfall read its answer as (``found``,
``missed``, ``failed``), and the record is the merged enrichment with
``enrichment_meta.providers``, or the DLQ record the pipeline would write.

The requests are recorded by a transport wrapped around the network
(:class:`RecordingTransport`); a provider whose factory takes no ``transport`` (a plugin
that calls an SDK) shows its answer only.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from streamproc import __version__
from streamproc.errors import (
    ConfigError,
    InternalError,
    InvalidPayload,
    LeadError,
    NoMatch,
    ProviderTimeout,
)
from streamproc.processing.handler import enriched_value
from streamproc.processing.waterfall import worst_charge
from streamproc.provider.api import Enrichment, LeadIn, Provider
from streamproc.provider.client import _network_transport, pool_limits
from streamproc.provider.config import ProviderConfig
from streamproc.provider.registry import load_provider_factory
from streamproc.records.dlq import ATTEMPT, ERROR_CLASS, ERROR_MESSAGE, ERROR_RETRIABLE
from streamproc.records.lead import Source, decode_lead
from streamproc.redact import ENV_REFERENCE, secret_values
from streamproc.settings import Settings
from streamproc.waterfall.config import WaterfallConfig, load_waterfall
from streamproc.waterfall.routing import Router
from streamproc.waterfall.run import Failed, Found, LeadWaterfall, Missed, ProviderAnswer

__all__ = ["Exchange", "RecordingTransport", "Step", "Trial", "format_trial", "try_lead"]

#: How much of a body is shown: enough to see its shape, not a page of JSON.
BODY_CHARS = 2_000
MASK = "***"
#: Headers whose whole value is a credential, whatever it is.
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|auth", re.I)
#: Request headers httpx adds to every request, which say nothing about the configuration.
_TRANSPORT_HEADERS = frozenset(
    {"host", "accept", "accept-encoding", "connection", "content-length"}
)
#: Answer headers worth showing: what it cost, how long to wait, how much is left.
_SHOWN_ANSWER = re.compile(r"credit|retry-after|ratelimit|content-type", re.I)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request and its answer, as shown (masked, bodies cut at BODY_CHARS)."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    status: int | None = None
    answer_headers: dict[str, str] = field(default_factory=dict)
    answer: str | None = None
    elapsed_ms: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One provider asked about the lead: its exchanges and how its answer was read.

    ``outcome`` is ``enriched`` or the DLQ error class of the failure; ``credits`` is what
    the budget would settle (the charge, or the estimate when it may have been billed
    without an answer: ``possibly_billed``)."""

    provider: str
    exchanges: list[Exchange]
    outcome: str
    credits: int
    message: str | None = None
    retriable: bool | None = None
    possibly_billed: bool = False
    data: dict[str, Any] | None = None
    #: In a waterfall, how it read this answer: ``found``, ``missed``, ``failed``, or
    #: ``over_ceiling`` (not asked: its call could pass ``max_credits_per_lead``); a
    #: verifier's: ``verified``, ``rejected``, ``unverified``.
    waterfall: str | None = None


@dataclass(frozen=True, slots=True)
class Trial:
    """What ``try`` did for one lead: its steps and the record it would publish (with a
    waterfall: the lead's segment, else None)."""

    lead_id: str
    steps: list[Step]
    topic: str
    key: str
    headers: dict[str, str]
    value: Any
    segment: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes every request to ``inner`` and keeps what was sent and answered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, mask: Masker) -> None:
        self._inner = inner
        self._mask = mask
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = self._mask.request(request)
        began = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
            content = await response.aread()
            await response.aclose()
        except Exception as exc:
            elapsed = (time.monotonic() - began) * 1000
            self.exchanges.append(_with(sent, elapsed_ms=elapsed, error=type(exc).__name__))
            raise
        elapsed = (time.monotonic() - began) * 1000
        self.exchanges.append(
            _with(
                sent,
                status=response.status_code,
                answer_headers={
                    k: self._mask.text(v)
                    for k, v in response.headers.items()
                    if _SHOWN_ANSWER.search(k)
                },
                answer=self._mask.body(content),
                elapsed_ms=elapsed,
            )
        )
        # The body was read (and decoded) here: the provider gets it whole.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=content, request=request
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _with(sent: Exchange, **changes: Any) -> Exchange:
    return Exchange(**{**asdict(sent), **changes})


class Masker:
    """Masks what must never be printed: every secret setting, every ``${ENV}`` value the
    provider's table uses (but the base URLs of its endpoints, which say where the request
    went), and the whole value of any credential header (an OAuth2 token, a Basic pair)."""

    def __init__(self, settings: Settings, table: Mapping[str, Any] | None = None) -> None:
        """``table``: the provider's (a waterfall member's); default the declarative one."""
        secrets = set(secret_values(settings))
        table = settings.provider_declarative or {} if table is None else table
        endpoints = [table.get("url"), table.get("batch_url")]
        auth = table.get("auth")
        if isinstance(auth, Mapping):
            endpoints.append(auth.get("token_url"))
        elsewhere = {k: v for k, v in table.items() if k not in ("url", "batch_url", "auth")} | {
            "auth": {k: v for k, v in (auth or {}).items() if k != "token_url"}
        }
        used_elsewhere = set(_env_values(elsewhere))
        for endpoint in endpoints:
            for value in _env_values(endpoint):
                # A plain base URL is where the request went; one with a user or a query
                # may carry a credential and stays masked.
                if value not in used_elsewhere and "@" not in value and "?" not in value:
                    secrets.discard(value)
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def body(self, content: bytes) -> str | None:
        if not content:
            return None
        text = self.text(content.decode("utf-8", "replace"))
        return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "…"

    def request(self, request: httpx.Request) -> Exchange:
        headers = {}
        for name, value in request.headers.items():
            if name.lower() in _TRANSPORT_HEADERS:
                continue
            if _SECRET_HEADER.search(name):
                scheme, space, _ = value.partition(" ")
                headers[name] = f"{scheme} {MASK}" if space else MASK
            else:
                headers[name] = self.text(value)
        return Exchange(
            method=request.method,
            url=self.text(str(request.url)),
            headers=headers,
            body=self.body(request.content),
        )


def _env_values(node: Any) -> list[str]:
    if isinstance(node, Mapping):
        return [v for key, value in node.items() for v in _env_values(key) + _env_values(value)]
    if isinstance(node, list | tuple):
        return [v for value in node for v in _env_values(value)]
    if isinstance(node, str):
        found = (os.environ.get(name) for name in ENV_REFERENCE.findall(node))
        return [value for value in found if value]
    return []


def build_provider(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    member: tuple[str, ProviderConfig] | None = None,
) -> tuple[Provider, bool]:
    """The provider ``settings`` choose (or the waterfall's ``member``: its instance name
    and configuration), given ``transport`` when its factory takes one; and whether it did
    (its exchanges are recorded)."""
    from streamproc.clay import ClayService

    name = settings.provider_name if member is None else member[1].name
    shown = name if member is None else f"{member[0]} ({name})"
    factory = load_provider_factory(name)
    if factory is ClayService:
        raise ConfigError(
            "try sends one lead to a synchronous provider; Clay answers by callback "
            "(docs/clay.md): try its webhook with `streamproc mock-provider --mode clay`"
        )
    if member is None and getattr(factory, "needs_provider_url", False):
        settings.require_provider()
    takes_transport = transport is not None and _takes_transport(factory)
    config = ProviderConfig.from_settings(settings, name) if member is None else member[1]
    try:
        provider = factory(config, transport=transport) if takes_transport else factory(config)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"provider {shown} failed to start: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(provider, Provider):
        raise ConfigError(
            f"provider {shown!r} cannot be tried: it is not a synchronous streamproc provider "
            "(batch_size, start(), close(), call(leads))"
        )
    return provider, takes_transport


def _takes_transport(factory: Any) -> bool:
    try:
        return "transport" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def read_lead(text: str, settings: Settings) -> tuple[str, dict[str, Any]]:
    """The lead ``text`` holds (a JSON object with ``lead_id`` and an e-mail or a domain),
    or a ConfigError in one line."""
    try:
        lead, obj = decode_lead(text.encode(), max_bytes=settings.max_lead_bytes)
    except InvalidPayload as exc:
        raise ConfigError(f"--lead: not a lead streamproc would take: {exc.message}") from None
    return lead.lead_id, obj


async def try_lead(
    settings: Settings,
    lead_id: str,
    lead: dict[str, Any],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> Trial:
    """Ask the configured provider about one lead, once, and say what would be published.

    ``transport`` replaces the network (it is wrapped to record each exchange)."""
    if settings.waterfall is not None:
        return await _try_waterfall(
            settings, load_waterfall(settings.waterfall), lead_id, lead, transport, now
        )
    mask = Masker(settings)
    recorder = RecordingTransport(
        transport
        or _network_transport(
            settings.provider_http_transport, pool_limits(settings.max_in_flight)
        ),
        mask,
    )
    provider, recorded = build_provider(settings, recorder)
    step = await _ask(settings, provider, LeadIn(lead_id, lead), settings.provider_name)
    if recorded:
        step = Step(**{**_fields(step), "exchanges": list(recorder.exchanges)})
    else:
        await recorder.aclose()
    return _publication(settings, lead_id, lead, [step], now or datetime.now(UTC))


async def _try_waterfall(
    settings: Settings,
    config: WaterfallConfig,
    lead_id: str,
    lead: dict[str, Any],
    transport: httpx.AsyncBaseTransport | None,
    now: datetime | None,
) -> Trial:
    """The lead through the waterfall, one attempt per provider asked (module doc)."""
    tables = settings.providers or {}
    members = {
        name: (name, member)
        for name, member in ProviderConfig.members(
            settings, (p.name for p in config.instances())
        ).items()
    }
    routed = Router(config).route(lead)
    run = LeadWaterfall(config, routed.providers)
    steps: list[Step] = []
    network = transport or _network_transport(
        settings.provider_http_transport, pool_limits(settings.max_in_flight)
    )
    try:
        while (name := run.next_provider()) is not None:
            steps += _passed_over(run, len(steps))
            recorder = _Shared(network, Masker(settings, tables[name]))
            provider, recorded = build_provider(settings, recorder, members[name])
            worst = worst_charge(config.price(name))
            step = await _ask(settings, provider, LeadIn(lead_id, lead), name, estimate=worst)
            answer = _answer(step)
            run.record(name, answer)
            read = run.tried[-1].outcome
            steps.append(
                Step(
                    **{
                        **_fields(step),
                        "exchanges": list(recorder.exchanges) if recorded else [],
                        "waterfall": read,
                    }
                )
            )
            check = run.to_verify()
            if check is not None:
                # The verifier judges the found value as the pipeline's does (docs/waterfall.md).
                verifier = check.provider
                recorder = _Shared(network, Masker(settings, tables[verifier]))
                provider, recorded = build_provider(settings, recorder, members[verifier])
                asked = LeadIn(lead_id, {**lead, check.field: check.value})
                worst = worst_charge(config.verify.price()) if config.verify else 0
                step = await _ask(settings, provider, asked, verifier, estimate=worst)
                verdict = run.verified(_answer(step))
                steps.append(
                    Step(
                        **{
                            **_fields(step),
                            "exchanges": list(recorder.exchanges) if recorded else [],
                            "waterfall": verdict,
                        }
                    )
                )
        steps += _passed_over(run, len(steps))
    finally:
        await network.aclose()
    result = run.result()
    when = now or datetime.now(UTC)
    meta = [
        {"provider": t.provider, "outcome": t.outcome, "credits": t.credits} for t in result.tried
    ]
    if result.verdict == "publish":
        value = enriched_value(
            lead,
            result.data,
            source=Source.PROVIDER,
            credits=result.credits,
            attempt=1,
            enriched_at=when,
            processor={"name": "streamproc", "version": __version__},
            steps=meta,
        )
        return Trial(
            lead_id,
            steps,
            settings.topic_enriched,
            lead_id,
            {},
            orjson.loads(value),
            routed.segment,
        )
    said = ", ".join(f"{t.provider}: {t.outcome}" for t in result.tried) or "none"
    if any(t.outcome in ("unavailable", "failed") for t in result.tried):
        # As the pipeline: a provider that could not answer makes it the group breaker's
        # provider_error, held or dead-lettered by on_breaker_open.
        error = ("provider_error", f"no provider found the lead; some could not answer ({said})")
        retriable = "true"
    else:
        error = ("no_match", f"no provider found the lead ({said})")
        retriable = "false"
    headers = {
        ERROR_CLASS: error[0],
        ERROR_MESSAGE: error[1],
        ERROR_RETRIABLE: retriable,
        ATTEMPT: "1",
    }
    return Trial(lead_id, steps, settings.topic_dlq, lead_id, headers, lead, routed.segment)


def _passed_over(run: LeadWaterfall, shown: int) -> list[Step]:
    """The providers the cost ceiling passed over since the last step shown."""
    return [
        Step(t.provider, [], "over_ceiling", 0, message="its call could pass the ceiling",
             waterfall="over_ceiling")
        for t in run.tried[shown:]
        if t.outcome == "over_ceiling"
    ]  # fmt: skip


def _answer(step: Step) -> ProviderAnswer:
    """A step as the waterfall reads it."""
    if step.outcome == "enriched":
        assert step.data is not None
        return Found(step.data, step.credits)
    if step.outcome == "no_match":
        return Missed(step.credits)
    return Failed(step.outcome, step.credits)


class _Shared(RecordingTransport):
    """A recorder of one member's exchanges over the network every member shares: closing
    it leaves the network open for the next."""

    async def aclose(self) -> None:
        return None


def _fields(step: Step) -> dict[str, Any]:
    return {name: getattr(step, name) for name in Step.__dataclass_fields__}


async def _ask(
    settings: Settings, provider: Provider, one: LeadIn, name: str, *, estimate: int | None = None
) -> Step:
    """One attempt of ``provider`` at ``one``, bounded as the pipeline bounds it; a failure
    that may have been billed counts at ``estimate`` (default ``credits_per_lead``)."""
    try:
        await provider.start()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"provider {name} failed to start: {type(exc).__name__}: {exc}") from None
    try:
        async with asyncio.timeout(settings.provider_timeout_s):
            (answer,) = await provider.call([one])
    except (TimeoutError, httpx.TimeoutException):
        answer = ProviderTimeout(
            f"provider did not answer within {settings.provider_timeout_s:g}s", maybe_charged=True
        )
    except LeadError as exc:
        answer = exc
    except Exception as exc:  # a provider's bug: the pipeline's class for it
        answer = InternalError(f"provider raised {type(exc).__name__}", maybe_charged=True)
    finally:
        await provider.close()
    if isinstance(answer, Enrichment):
        return Step(name, [], "enriched", answer.credits, data=answer.data)
    if isinstance(answer, NoMatch):
        charged = answer.credits
    else:
        worst = settings.credits_per_lead if estimate is None else estimate
        charged = worst if answer.maybe_charged else 0
    return Step(
        name,
        [],
        answer.error_class.value,
        charged,
        message=answer.message,
        retriable=answer.retriable,
        possibly_billed=answer.maybe_charged and not isinstance(answer, NoMatch),
    )


def _publication(
    settings: Settings, lead_id: str, lead: dict[str, Any], steps: list[Step], now: datetime
) -> Trial:
    last = steps[-1]
    if last.outcome == "enriched":
        assert last.data is not None
        value = enriched_value(
            lead,
            last.data,
            source=Source.PROVIDER,
            credits=sum(step.credits for step in steps),
            attempt=1,
            enriched_at=now,
            processor={"name": "streamproc", "version": __version__},
        )
        return Trial(lead_id, steps, settings.topic_enriched, lead_id, {}, orjson.loads(value))
    headers = {
        ERROR_CLASS: last.outcome,
        ERROR_MESSAGE: last.message or "",
        ERROR_RETRIABLE: "true" if last.retriable else "false",
        ATTEMPT: "1",
    }
    return Trial(lead_id, steps, settings.topic_dlq, lead_id, headers, lead)


def format_trial(trial: Trial) -> str:
    """The report a person reads."""
    lines = [f"lead {trial.lead_id}: one attempt, no Kafka topic, no budget"]
    if trial.segment is not None:
        lines.append(
            f"waterfall: segment {trial.segment}, its providers in the configured order "
            "(not the order the group has learnt)"
        )
    for number, step in enumerate(trial.steps, 1):
        lines.append(f"step {number}: provider {step.provider}")
        if step.waterfall == "over_ceiling":
            lines.append("  not asked: its call could pass max_credits_per_lead (over_ceiling)")
            continue
        for exchange in step.exchanges:
            lines.append(f"  -> {exchange.method} {exchange.url}")
            lines.extend(f"     {k}: {v}" for k, v in exchange.headers.items())
            if exchange.body is not None:
                lines.append(f"     body: {exchange.body}")
            if exchange.status is None:
                lines.append(
                    f"  <- no answer ({exchange.error}) after {exchange.elapsed_ms:.0f} ms"
                )
                continue
            lines.append(f"  <- {exchange.status} in {exchange.elapsed_ms:.0f} ms")
            lines.extend(f"     {k}: {v}" for k, v in exchange.answer_headers.items())
            if exchange.answer is not None:
                lines.append(f"     body: {exchange.answer}")
        read = "" if step.waterfall is None else f" -> {step.waterfall}"
        if step.outcome == "enriched":
            lines.append(f"  answer: enriched, {step.credits} credits{read}")
        else:
            retry = "retriable" if step.retriable else "not retriable"
            billed = " (possibly billed: counted at the estimate)" if step.possibly_billed else ""
            lines.append(
                f"  answer: {step.outcome} ({step.message}), {retry}, "
                f"{step.credits} credits{billed}{read}"
            )
    if trial.segment is not None:
        spent = sum(step.credits for step in trial.steps)
        lines.append(f"waterfall total: {spent} credits")
    lines.append(f"would publish to {trial.topic}, key {trial.key}:")
    lines.extend(f"  header {k}: {v}" for k, v in trial.headers.items())
    lines.append(
        "  " + orjson.dumps(trial.value, option=orjson.OPT_INDENT_2).decode().replace("\n", "\n  ")
    )
    return "\n".join(lines)
