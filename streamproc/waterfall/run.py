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

The cost ceiling skips any provider whose call could take the lead's spend over
``max_credits_per_lead`` (its worst case: ``credits_per_call + credits_per_hit``); the ones
that still fit are tried. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from streamproc.fieldpaths import MISSING, parse_path, read_path
from streamproc.waterfall.config import WaterfallConfig

__all__ = [
    "Failed",
    "Found",
    "LeadWaterfall",
    "Missed",
    "ProviderAnswer",
    "Tried",
    "Unavailable",
    "WaterfallResult",
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
Outcome = Literal["found", "missed", "unavailable", "failed", "over_ceiling"]


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

    @property
    def spent(self) -> int:
        return sum(t.credits for t in self.tried)

    def next_provider(self) -> str | None:
        """The provider to ask now, or None: the waterfall is over."""
        ceiling = self.config.max_credits_per_lead
        while not self._stopped and self._next < len(self.order):
            name = self.order[self._next]
            self._next += 1
            price = self.config.price(name)
            worst = price.credits_per_call + price.credits_per_hit
            if ceiling is not None and self.spent + worst > ceiling:
                self.tried.append(Tried(name, "over_ceiling", 0))
                continue
            return name
        return None

    def record(self, provider: str, answer: ProviderAnswer) -> None:
        """``provider``'s answer for this lead."""
        if isinstance(answer, Found):
            self.tried.append(Tried(provider, "found", answer.credits))
            self.answers.append((provider, answer.data))
            merged = merge(self.answers, self.config.merge)
            self._stopped = stop_rule_met(merged, self.config.stop_when)
        elif isinstance(answer, Missed):
            self.tried.append(Tried(provider, "missed", answer.credits))
        elif isinstance(answer, Unavailable):
            self.tried.append(Tried(provider, "unavailable", 0))
        else:
            self.tried.append(Tried(provider, "failed", answer.credits))

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
