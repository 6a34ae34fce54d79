"""The waterfall's configuration: the ``[streamproc.waterfall]`` table, validated once.

A waterfall names providers (each a configured provider instance, by name), the fields an
answer must have to stop (``stop_when``), a ceiling of credits per lead, how answers merge,
the routes that pick providers and a segment by the lead's fields, and how the order adapts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import jmespath
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streamproc.errors import ConfigError

__all__ = ["Adaptive", "ProviderPrice", "Route", "Verify", "WaterfallConfig", "load_waterfall"]


class ProviderPrice(BaseModel):
    """A provider of the waterfall and what it is expected to cost: ``credits_per_call``
    charged on every call, ``credits_per_hit`` on a call that finds something. The adaptive
    order uses the credits actually charged once it has seen enough answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    credits_per_call: float = Field(0.0, ge=0)
    credits_per_hit: float = Field(0.0, ge=0)


class Route(BaseModel):
    """``when`` (a JMESPath expression on the lead; its truth as JMESPath defines it) picks
    this route: its ``segment`` (the name the hit rates are kept under) and its providers
    (a subset of the waterfall's, default all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when: str = Field(min_length=1)
    segment: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    providers: tuple[str, ...] | None = None


class Verify(BaseModel):
    """Validation of a found value by another provider (docs/waterfall.md, "Verification"):
    ``provider`` (a ``[streamproc.providers.<name>]`` instance, not one of the waterfall's)
    is asked with the lead and the found ``field``; its miss, or its answer where ``accept``
    (JMESPath on the answer) is false, rejects the value: the field is dropped and the
    waterfall goes on. ``credits_per_call``/``credits_per_hit`` are its expected price, as a
    waterfall provider's, so the ceiling holds with verification."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: A top-level field of an answer: only answers that have it are verified.
    field: str = Field(min_length=1)
    #: JMESPath on the verifier's answer; true (JMESPath truth) accepts. None: any answer
    #: that is not a miss accepts.
    accept: str | None = None
    #: A verifier that cannot answer (its retries ran out, its breaker is open, its cap
    #: spent): ``accept`` publishes the value unverified (the step says ``unverified``);
    #: ``next`` drops it and goes on to the next provider.
    on_error: Literal["accept", "next"] = "accept"
    credits_per_call: float = Field(0.0, ge=0)
    credits_per_hit: float = Field(0.0, ge=0)

    @field_validator("accept")
    @classmethod
    def _jmespath(cls, accept: str | None) -> str | None:
        if accept is not None:
            try:
                jmespath.compile(accept)
            except jmespath.exceptions.JMESPathError as exc:
                raise ValueError(f"{accept!r} is not JMESPath ({exc})") from None
        return accept

    def price(self) -> ProviderPrice:
        return ProviderPrice(
            name=self.provider,
            credits_per_call=self.credits_per_call,
            credits_per_hit=self.credits_per_hit,
        )


class Adaptive(BaseModel):
    """How the order learns (docs/waterfall.md, "Adaptive order")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: ``thompson``: order by cost over a hit rate drawn from each provider's posterior;
    #: ``greedy``: over its posterior mean; ``off``: the configured order.
    mode: Literal["thompson", "greedy", "off"] = "thompson"
    #: The Beta prior of a hit rate: a provider never seen counts as this many hits and
    #: misses (1, 1: uniform).
    prior_hits: float = Field(1.0, gt=0)
    prior_misses: float = Field(1.0, gt=0)
    #: Share of leads whose order is shuffled whole: exploration that never stops, so a
    #: provider that improves is seen even where its posterior is sure of it.
    epsilon: float = Field(0.0, ge=0, le=0.5)
    #: Fill-rate guard: a provider whose hit rate in a segment is below this floor (after
    #: ``guard_min_calls`` calls there) is skipped, but for ``guard_probe`` of the leads.
    floor_hit_rate: float = Field(0.0, ge=0, lt=1)
    guard_min_calls: int = Field(50, ge=1)
    guard_probe: float = Field(0.02, ge=0, le=1)
    #: Only the answers of the last this many days count: old ones age out.
    window_days: int = Field(14, ge=1, le=366)


class WaterfallConfig(BaseModel):
    """The ``[streamproc.waterfall]`` table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: tuple[ProviderPrice, ...] = Field(min_length=1)
    #: Dotted paths into the merged enrichment that must all be present (not null, not "")
    #: to stop; empty: stop at the first provider that finds anything.
    stop_when: tuple[str, ...] = ()
    #: Most credits one lead may cost; a provider whose call could pass it is skipped.
    max_credits_per_lead: float | None = Field(None, ge=0)
    #: ``first``: each field from the first provider that gave it; a table ``field =
    #: [provider, ...]`` prefers those providers for that field, then falls back to first.
    merge: Literal["first"] | dict[str, tuple[str, ...]] = "first"
    routes: tuple[Route, ...] = ()
    #: The segment of a lead no route picks.
    default_segment: str = "default"
    #: What happens to a lead that nothing answered: ``dlq`` (as no_match), ``publish``
    #: (what was found, possibly nothing), ``hold`` (wait for a provider to come back).
    last_resort: Literal["dlq", "publish", "hold"] = "dlq"
    adaptive: Adaptive = Adaptive()
    verify: Verify | None = None

    @model_validator(mode="after")
    def _known_providers(self) -> WaterfallConfig:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("a provider is listed twice")
        known = set(names)
        for route in self.routes:
            unknown = set(route.providers or ()) - known
            if unknown:
                raise ValueError(
                    f"route {route.segment!r} names unknown providers {sorted(unknown)}"
                )
        if self.verify is not None and self.verify.provider in known:
            raise ValueError(
                f"verify.provider {self.verify.provider!r} is one of the waterfall's providers"
            )
        if isinstance(self.merge, dict):
            for fields, preferred in self.merge.items():
                unknown = set(preferred) - known
                if unknown:
                    raise ValueError(f"merge.{fields} names unknown providers {sorted(unknown)}")
        return self

    def instances(self) -> tuple[ProviderPrice, ...]:
        """Every provider instance the waterfall asks: its providers, then its verifier."""
        if self.verify is None:
            return self.providers
        return (*self.providers, self.verify.price())

    def price(self, name: str) -> ProviderPrice:
        return next(p for p in self.providers if p.name == name)


def load_waterfall(table: Mapping[str, Any]) -> WaterfallConfig:
    """The ``[streamproc.waterfall]`` table validated, or a ConfigError in one line."""
    try:
        return WaterfallConfig.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"waterfall.{where}: {first['msg']}") from None
