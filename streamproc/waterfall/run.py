"""One lead's waterfall: which provider next, when to stop, what it cost, what to publish.

A state machine the pipeline will drive (docs/waterfall.md): it asks
:meth:`LeadWaterfall.next_provider`, calls that provider (with that provider's own breaker,
budget and retries), and reports the answer with :meth:`LeadWaterfall.record`:

* :class:`Found`: data, and the credits charged; the answers so far are merged and the stop
  rule checked (every ``stop_when`` field present; without any, the first find stops);
* :class:`Missed`: nothing for this lead (a :class:`~streamproc.errors.NoMatch`), charged
  what the API bills a miss (usually 0); the next provider;
* :class:`Unavailable`: not asked (its breaker is open, its budget spent, its guard): the
  next provider, nothing spent (the seed's graceful degradation);
* :class:`Failed`: its retries ran out; the next provider, with what it may have cost.

With ``verify`` configured, a :class:`Found` that has the verified field is held back
until the driver has asked the verifier (:meth:`LeadWaterfall.to_verify`, then
:meth:`LeadWaterfall.verified` with the verifier's answer): accepted, it is merged and the
stop rule checked; rejected (a miss, or ``accept`` false), the field is dropped from that
answer and the waterfall goes on, whatever the rest of the answer holds: a rejected value
never stops it. A verifier that cannot answer follows ``on_error``.

The cost ceiling skips any provider whose call could take the lead's spend over
``max_credits_per_lead`` (its worst case: ``credits_per_call + credits_per_hit``, plus the
verifier's worst case when verification is configured); the ones that still fit are tried.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import jmespath
from jmespath.parser import ParsedResult

from streamproc.fieldpaths import MISSING, parse_path, read_path
from streamproc.waterfall.config import Verify, WaterfallConfig

__all__ = [
    "Failed",
    "Found",
    "LeadWaterfall",
    "Missed",
    "ProviderAnswer",
    "Tried",
    "Unavailable",
    "Verification",
    "WaterfallResult",
    "judge",
    "merge",
    "stop_rule_met",
]


@dataclass(frozen=True, slots=True)
class Found:
    data: dict[str, Any]
    credits: int


@dataclass(frozen=True, slots=True)
class Missed:
    credits: int = 0


@dataclass(frozen=True, slots=True)
class Unavailable:
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    credits: int = 0


ProviderAnswer = Found | Missed | Unavailable | Failed
Outcome = Literal[
    "found", "missed", "unavailable", "failed", "over_ceiling", "verified", "rejected",
    "unverified",
]  # fmt: skip
#: The verifier's judgement of a found value.
Verdict = Literal["verified", "rejected", "unverified"]


@dataclass(frozen=True, slots=True)
class Verification:
    """A found value the verifier (``provider``) must judge before it may stop the lead."""

    provider: str
    finder: str
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Tried:
    """One provider's part in a lead's waterfall (what ``enrichment_meta`` will list)."""

    provider: str
    outcome: Outcome
    credits: int


@dataclass(frozen=True, slots=True)
class WaterfallResult:
    """What a lead's waterfall came to. ``verdict``: ``publish`` (the merged data),
    ``dlq`` (nothing found: ``no_match``), or ``hold`` (nothing found while a provider was
    unavailable, and ``last_resort`` is hold)."""

    data: dict[str, Any]
    tried: tuple[Tried, ...]
    stopped: bool
    credits: int
    verdict: Literal["publish", "dlq", "hold"]

    @property
    def answered_by(self) -> tuple[str, ...]:
        return tuple(t.provider for t in self.tried if t.outcome == "found")


def _present(value: Any) -> bool:
    return (
        value is not MISSING and value is not None and value != "" and value != [] and value != {}
    )


def stop_rule_met(merged: Mapping[str, Any], required: Sequence[str]) -> bool:
    """Every required dotted path has a value in ``merged``; without any, anything found."""
    if not required:
        return any(_present(v) for v in merged.values())
    return all(_present(read_path(merged, parse_path(path))) for path in required)


@lru_cache(maxsize=32)
def _compiled(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


def judge(verify: Verify, answer: ProviderAnswer) -> Verdict:
    """The verifier's ``answer`` as a verdict: a miss rejects; a found answer accepts when
    ``accept`` is unset or true of it (JMESPath truth; an expression that errs on it is
    false); an answer that could not be had is ``unverified``."""
    if isinstance(answer, Missed):
        return "rejected"
    if not isinstance(answer, Found):
        return "unverified"
    if verify.accept is None:
        return "verified"
    try:
        value = _compiled(verify.accept).search(answer.data)
    except jmespath.exceptions.JMESPathError:
        return "rejected"
    return "rejected" if value in (False, None, "", [], {}) else "verified"


def merge(
    answers: Sequence[tuple[str, Mapping[str, Any]]],
    rule: Literal["first"] | Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The answers (provider, data), in the order they came, as one enrichment: each
    top-level field from the first answer that has it (a null or empty value is not having
    it); a field the rule lists is taken from the first of its preferred providers that
    gave it, else as the others."""
    merged: dict[str, Any] = {}
    for _, data in answers:
        for key, value in data.items():
            if key not in merged and _present(value):
                merged[key] = value
    if isinstance(rule, Mapping):
        given = dict(answers)
        for key, preferred in rule.items():
            for provider in preferred:
                value = given.get(provider, {}).get(key, MISSING)
                if _present(value):
                    merged[key] = value
                    break
    return merged


@dataclass
class LeadWaterfall:
    """The waterfall of one lead over ``order`` (from :func:`~.order.plan_order`)."""

    config: WaterfallConfig
    order: tuple[str, ...]
    tried: list[Tried] = field(default_factory=list)
    answers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _next: int = 0
    _stopped: bool = False
    #: A found answer waiting for the verifier: (its provider, its data).
    _pending: tuple[str, dict[str, Any]] | None = None

    @property
    def spent(self) -> int:
        return sum(t.credits for t in self.tried)

    def next_provider(self) -> str | None:
        """The provider to ask now, or None: the waterfall is over."""
        if self._pending is not None:
            raise RuntimeError("a found answer waits for its verification")
        ceiling = self.config.max_credits_per_lead
        verify = self.config.verify
        # A find may cost a verification too: the ceiling reserves it with the call.
        extra = 0.0 if verify is None else verify.credits_per_call + verify.credits_per_hit
        while not self._stopped and self._next < len(self.order):
            name = self.order[self._next]
            self._next += 1
            price = self.config.price(name)
            worst = price.credits_per_call + price.credits_per_hit + extra
            if ceiling is not None and self.spent + worst > ceiling:
                self.tried.append(Tried(name, "over_ceiling", 0))
                continue
            return name
        return None

    def record(self, provider: str, answer: ProviderAnswer) -> None:
        """``provider``'s answer for this lead."""
        if isinstance(answer, Found):
            self.tried.append(Tried(provider, "found", answer.credits))
            verify = self.config.verify
            if verify is not None and _present(answer.data.get(verify.field, MISSING)):
                self._pending = (provider, answer.data)
                return
            self._accept(provider, answer.data)
        elif isinstance(answer, Missed):
            self.tried.append(Tried(provider, "missed", answer.credits))
        elif isinstance(answer, Unavailable):
            self.tried.append(Tried(provider, "unavailable", 0))
        else:
            self.tried.append(Tried(provider, "failed", answer.credits))

    def to_verify(self) -> Verification | None:
        """The found value the verifier must judge now (then :meth:`verified`), or None."""
        verify = self.config.verify
        if self._pending is None or verify is None:
            return None
        finder, data = self._pending
        return Verification(verify.provider, finder, verify.field, data[verify.field])

    def verified(self, answer: ProviderAnswer) -> Verdict:
        """The verifier's answer about the pending value: accepted, it counts as found;
        rejected (or unverified under ``on_error = "next"``), its field is dropped and the
        waterfall goes on."""
        verify = self.config.verify
        if self._pending is None or verify is None:
            raise RuntimeError("no found answer waits for a verification")
        finder, data = self._pending
        self._pending = None
        verdict = judge(verify, answer)
        credits = answer.credits if isinstance(answer, Found | Missed | Failed) else 0
        self.tried.append(Tried(verify.provider, verdict, credits))
        if verdict == "verified" or (verdict == "unverified" and verify.on_error == "accept"):
            self._accept(finder, data)
        else:
            # Kept for its other fields, but it does not stop the waterfall, whatever they
            # hold: the value it was asked for failed the check.
            self.answers.append((finder, {k: v for k, v in data.items() if k != verify.field}))
        return verdict

    def _accept(self, provider: str, data: dict[str, Any]) -> None:
        self.answers.append((provider, data))
        merged = merge(self.answers, self.config.merge)
        self._stopped = stop_rule_met(merged, self.config.stop_when)

    def result(self) -> WaterfallResult:
        """What the lead comes to (call once :meth:`next_provider` answered None)."""
        merged = merge(self.answers, self.config.merge)
        if merged or self.config.last_resort == "publish":
            verdict: Literal["publish", "dlq", "hold"] = "publish"
        elif self.config.last_resort == "hold" and any(
            t.outcome in ("unavailable", "failed") for t in self.tried
        ):
            verdict = "hold"
        else:
            verdict = "dlq"
        return WaterfallResult(merged, tuple(self.tried), self._stopped, self.spent, verdict)
