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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from streamproc.errors import (
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
    "LeadError",
    "LeadIn",
    "Provider",
    "ProviderAuthError",
    "ProviderConfig",
    "ProviderCreditsExhausted",
    "ProviderError",
    "ProviderRejected",
    "RateLimited",
]

#: The entry point group providers are registered under.
ENTRY_POINT_GROUP = "streamproc.providers"


@dataclass(frozen=True, slots=True)
class LeadIn:
    """One lead of a call: its id (send it as an idempotency key where the API takes one)
    and its JSON object as it came from the input topic."""

    lead_id: str
    lead: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Enrichment:
    """A lead enriched: the data to publish under ``enrichment`` and the whole credits it
    was charged (0 when the provider bills nothing for it)."""

    data: dict[str, Any]
    credits: int


#: What a call answers for one lead.
Answer: TypeAlias = Enrichment | LeadError


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
