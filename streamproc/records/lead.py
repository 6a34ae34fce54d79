"""The lead and the enriched lead: pydantic models, and the decoder for raw Kafka bytes.

A lead's unknown fields are kept and passed through untouched, so the enriched record is
built from the lead's own decoded object, not from a re-serialised model.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamproc.errors import InvalidPayload

__all__ = [
    "EnrichedLead",
    "EnrichmentMeta",
    "Lead",
    "ProcessorInfo",
    "ProviderStep",
    "Source",
    "decode_lead",
]

EnrichmentSource = Literal["provider", "cache", "fallback"]


class Source(StrEnum):
    """Where a lead's enrichment came from, as the code passes it around; written as
    ``enrichment_meta.source`` and the ``source`` metric label. The model keeps the
    Literal above so the published schema stays as it is; a test keeps the two equal."""

    PROVIDER = "provider"
    CACHE = "cache"
    FALLBACK = "fallback"


#: What a cached answer was keyed by: the company's domain or the person's e-mail.
CacheKeyKind = Literal["domain", "email"]


class Lead(BaseModel):
    """A sales lead as upstream publishes it to ``leads.raw`` (key = ``lead_id``)."""

    model_config = ConfigDict(extra="allow", frozen=True, title="Lead")

    lead_id: str = Field(min_length=1, max_length=256, description="The idempotency key.")
    email: str | None = Field(None, max_length=320)
    domain: str | None = Field(None, max_length=253)
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    source: str | None = None
    created_at: str | None = Field(None, description="When upstream created it (ISO-8601).")

    @model_validator(mode="after")
    def _email_or_domain(self) -> Lead:
        if not (self.email or self.domain):
            raise ValueError("a lead needs at least one of email or domain")
        return self

    @property
    def lookup_domain(self) -> str | None:
        """The domain the enrichment is about: ``domain``, else the e-mail's domain."""
        if self.domain:
            return self.domain.strip().lower() or None
        if self.email and "@" in self.email:
            return self.email.rsplit("@", 1)[1].strip().lower() or None
        return None


class ProcessorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str


class ProviderStep(BaseModel):
    """One provider of a lead's waterfall: what it answered and what it charged."""

    model_config = ConfigDict(frozen=True)

    provider: str
    outcome: Literal[
        "found", "missed", "unavailable", "failed", "over_ceiling", "verified", "rejected",
        "unverified",
    ]  # fmt: skip
    credits: int = Field(ge=0)


class EnrichmentMeta(BaseModel):
    """How a lead was enriched: where the data came from and what it cost."""

    model_config = ConfigDict(
        frozen=True,
        # The published schema says what the validator below enforces.
        json_schema_extra={
            "if": {"properties": {"source": {"const": "cache"}}, "required": ["source"]},
            "then": {"required": ["cache_key", "cached_at"]},
            "else": {"properties": {"cache_key": {"type": "null"}, "cached_at": {"type": "null"}}},
        },
    )

    source: EnrichmentSource
    credits: int = Field(ge=0, description="Credits charged for this lead (0 for cache/fallback).")
    attempt: int = Field(ge=1, description="How many times this lead has been processed.")
    enriched_at: datetime
    processor: ProcessorInfo
    cache_key: CacheKeyKind | None = Field(
        None,
        description="Source cache only: what the cached answer was keyed by (domain: shared "
        "by the leads of one company, with only the fields the cache may serve).",
    )
    cached_at: datetime | None = Field(
        None, description="Source cache only: when the provider's answer was cached."
    )
    providers: list[ProviderStep] | None = Field(
        None,
        description="A waterfall's lead only: each provider tried, in order, its outcome "
        "and what it charged (their sum is `credits`).",
    )

    @model_validator(mode="after")
    def _cache_fields_with_cache_source(self) -> EnrichmentMeta:
        cached = self.source == "cache"
        if cached != (self.cache_key is not None) or cached != (self.cached_at is not None):
            raise ValueError("cache_key and cached_at are set exactly when source is cache")
        return self


class EnrichedLead(Lead):
    """A lead plus the provider's data, published to ``leads.enriched`` (same key)."""

    model_config = ConfigDict(extra="allow", frozen=True, title="EnrichedLead")

    enrichment: dict[str, Any]
    enrichment_meta: EnrichmentMeta


def json_object(value: bytes | None, *, max_bytes: int) -> dict[str, Any]:
    """A record value as a JSON object; :class:`InvalidPayload` with a short reason (never
    quoting the payload) when it is null, over ``max_bytes``, not JSON or not an object."""
    if value is None:
        raise InvalidPayload("empty record (null value)")
    if len(value) > max_bytes:
        raise InvalidPayload(f"record is {len(value)} bytes, over the {max_bytes}-byte limit")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(obj, dict):
        raise InvalidPayload(f"not a JSON object but a JSON {_json_type(obj)}")
    return obj


def decode_lead(value: bytes | None, *, max_bytes: int) -> tuple[Lead, dict[str, Any]]:
    """Decode and validate a raw record value.

    Returns the model and the original JSON object (for pass-through). Raises
    :class:`InvalidPayload` with a short reason that never quotes the payload.
    """
    obj = json_object(value, max_bytes=max_bytes)
    try:
        lead = Lead.model_validate(obj)
    except ValidationError as exc:
        raise InvalidPayload(_validation_reason(exc)) from None
    return lead, obj


def _json_type(obj: object) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if isinstance(obj, bool):
        return "boolean"
    if isinstance(obj, int | float):
        return "number"
    return "null"


def _validation_reason(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"missing required field {field}"
    return f"{field}: {msg}" if field else msg
