"""The public provider interface: what any enrichment provider implements (docs/provider.md).

A provider is an object with :meth:`Provider.call`: it takes a batch of leads (a single
lead is a batch of one) and makes **one attempt** at enriching them: one HTTP request, one
SDK call, one query. It answers, per lead and in the order given, an :class:`Enrichment`
(the data and the credits that lead was charged) or the classified failure of that lead,
one of the :class:`~streamproc.errors.LeadError` classes below. A failure of the whole call
(a 429, a 5xx, a refused key, no credits left, no answer) it raises instead.

=================================  ===================================================
failure                            class
=================================  ===================================================
rate limited, retry in N seconds   :class:`~streamproc.errors.RateLimited` (``retry_after_s``)
retriable (5xx, unreadable)        :class:`~streamproc.errors.ProviderError`
rejected (this lead, for good)     :class:`~streamproc.errors.ProviderRejected`
auth broken (every lead)           :class:`~streamproc.errors.ProviderAuthError`
out of credits                     :class:`~streamproc.errors.ProviderCreditsExhausted`
=================================  ===================================================

Everything else is streamproc's and the same for every provider: the bound on each
attempt (``provider_timeout_s``; a timeout is counted as possibly billed), retries (a
failed call is retried as a batch; a lead rejected inside it goes to the DLQ alone), the
breaker (one call, one count), the budget (reserved before the call for every lead in it,
settled at each lead's charge), the cache, the DLQ and exactly-once publication. A
provider knows nothing of Kafka.

Providers are found by the entry point group ``streamproc.providers`` (the ``provider``
setting names one); the entry point is a callable taking a :class:`ProviderConfig` (its
own settings table, URL, key, timeout and retry policy; never the whole settings, which
hold every Kafka and Clay secret) and returning the provider (a class whose ``__init__``
takes it is one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

import orjson

from streamproc.errors import (
    InvalidPayload,
    LeadError,
    ProviderAuthError,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from streamproc.provider.config import ProviderConfig

__all__ = [
    "ENTRY_POINT_GROUP",
    "Answer",
    "Enrichment",
    "HeadersHook",
    "LeadError",
    "LeadIn",
    "Provider",
    "ProviderAuthError",
    "ProviderConfig",
    "ProviderCreditsExhausted",
    "ProviderError",
    "ProviderRejected",
    "RateLimited",
    "batch_idempotency_key",
    "idempotency_key",
]

#: The entry point group providers are registered under.
ENTRY_POINT_GROUP = "streamproc.providers"


def idempotency_key(lead_id: str, lead: Mapping[str, Any]) -> str:
    """The lead's idempotency key: the hex SHA-256 of the JSON ``[lead_id, lead]``, keys
    sorted.

    The same lead with the same input carries the same key on every attempt, in every
    batch, in every process (a retry, a re-batching after a rebalance, a restart, a replay
    from the DLQ), so a provider that honours it bills the lead once; the same ``lead_id``
    with a changed input is another question and carries another key. Hex, so any
    ``lead_id`` travels in a header, and 64 characters whatever its length. Raises
    :class:`~streamproc.errors.InvalidPayload` for a lead JSON cannot carry.
    """
    try:
        canonical = orjson.dumps(
            [lead_id, lead if isinstance(lead, dict) else dict(lead)],
            option=orjson.OPT_SORT_KEYS,
        )
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidPayload("lead cannot be encoded as JSON") from exc
    return hashlib.sha256(canonical).hexdigest()


def batch_idempotency_key(keys: Iterable[str]) -> str:
    """The key of a whole bulk request (for an API that takes one per request): the hex
    SHA-256 of the JSON list of its leads' :func:`idempotency_key`, sorted. The same leads
    give the same key in any order; a request of other leads (a retried subset) another
    (docs/provider.md, "Idempotency")."""
    return hashlib.sha256(orjson.dumps(sorted(keys))).hexdigest()


@dataclass(frozen=True, slots=True)
class LeadIn:
    """One lead of a call: its id, its JSON object as it came from the input topic, and its
    :func:`idempotency_key` (worked out when not given; send it where the API takes one)."""

    lead_id: str
    lead: Mapping[str, Any]
    idempotency_key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            object.__setattr__(self, "idempotency_key", idempotency_key(self.lead_id, self.lead))


@dataclass(frozen=True, slots=True)
class Enrichment:
    """A lead enriched: the data to publish under ``enrichment`` and the whole credits it
    was charged (0 when the provider bills nothing for it)."""

    data: dict[str, Any]
    credits: int


#: What a call answers for one lead.
Answer: TypeAlias = Enrichment | LeadError

#: A provider's optional ``on_headers`` attribute (``None`` at first): when the provider has
#: a rate limit (``provider_rate_per_s``), the pipeline sets it, and the provider calls it
#: with the headers of every HTTP answer (any status, a 429's too) before reading it, so the
#: pacer learns the API's quota from ``x-ratelimit-*`` (docs/provider.md, "Rate limit").
#: It runs inline on the event loop: cheap, never raises.
HeadersHook: TypeAlias = Callable[[Mapping[str, str]], None]


@runtime_checkable
class Provider(Protocol):
    """An enrichment provider. ``batch_size`` is the most leads one call takes (1: one lead
    per call); the ``provider_batch_size`` setting may ask for fewer, never more."""

    batch_size: int

    async def start(self) -> None:
        """Open connections; called once before the first call."""
        ...

    async def close(self) -> None:
        """Release connections; called once at shutdown, after the last call."""
        ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        """One attempt at ``leads``: an answer per lead, in order, or raise the
        :class:`~streamproc.errors.LeadError` of the whole call."""
        ...
