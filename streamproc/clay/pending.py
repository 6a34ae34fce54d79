"""The pending-lead registry: leads submitted to Clay whose callback has not come yet.

A pending lead is the state record ``clay/pending/<lead_id>``, written in the same Kafka
transaction as the lead's input offset, and removed by a tombstone written in the same
transaction as the lead's output (enriched lead or DLQ record). Its value carries what is
needed to finish the lead without the input record: the original key, value and headers
(base64, so a DLQ record keeps the original bytes exactly), the attempt, the origin
(topic, partition, offset, timestamp), the deadline (epoch seconds: a wall-clock instant
that survives restarts), the correlation id sent to Clay, the budget claim to settle and
the instance that submitted it.

:class:`PendingRegistry` is the in-memory view every process builds from the state topic
(restore, then tail). It is pure and synchronous. Its transitions, per lead id::

    (unknown) --pending record--> PENDING --tombstone-------------> DONE
                                  PENDING --completed(corr) here--> DONE   (our own commit,
                                                                           before the tail)
    DONE --pending record-------------------> PENDING   (a new submission, e.g. a replay)

    except: after our own completion and before the tail's tombstone, a pending record of
    the very submission we completed is stale and ignored.

``DONE`` lead ids are remembered (bounded, oldest forgotten first) so that a duplicate
callback is recognised as such, also in an instance that only saw the tombstone.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamproc.records.dlq import Origin

__all__ = ["PENDING_PREFIX", "ClaimRef", "PendingLead", "PendingRegistry", "pending_key"]

PENDING_PREFIX = "clay/pending/"
#: DONE lead ids remembered for duplicate detection (~100 bytes each).
DONE_MEMORY = 200_000


def pending_key(lead_id: str) -> str:
    return f"{PENDING_PREFIX}{lead_id}"


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """The budget claim reserved at submit time, settled when the lead is finished."""

    claim_id: str
    day: str
    amount: int


@dataclass(frozen=True, slots=True)
class PendingLead:
    lead_id: str
    correlation_id: str
    #: Epoch seconds after which the lead is a ``provider_timeout``.
    deadline: float
    submitted_at: float
    #: The instance that submitted it; it sweeps it first (others after a grace).
    owner: str
    attempt: int
    origin: Origin
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    webhook: str
    domain: str | None = None
    claim: ClaimRef | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": 1,
            "lead_id": self.lead_id,
            "correlation_id": self.correlation_id,
            "deadline": self.deadline,
            "submitted_at": self.submitted_at,
            "owner": self.owner,
            "attempt": self.attempt,
            "origin": {
                "topic": self.origin.topic,
                "partition": self.origin.partition,
                "offset": self.origin.offset,
                "timestamp": self.origin.timestamp_ms,
            },
            "key": None if self.key is None else _b64(self.key),
            "value": _b64(self.value),
            "headers": [[k, _b64(v)] for k, v in self.headers],
            "webhook": self.webhook,
            "domain": self.domain,
        }
        if self.claim is not None:
            data["claim"] = {
                "claim_id": self.claim.claim_id,
                "day": self.claim.day,
                "amount": self.claim.amount,
            }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingLead:
        """``ValueError`` for anything :meth:`to_dict` did not produce."""
        try:
            origin = data["origin"]
            claim = data.get("claim")
            key = data.get("key")
            return cls(
                lead_id=_str(data["lead_id"]),
                correlation_id=_str(data["correlation_id"]),
                deadline=float(data["deadline"]),
                submitted_at=float(data["submitted_at"]),
                owner=_str(data["owner"]),
                attempt=int(data["attempt"]),
                origin=Origin(
                    _str(origin["topic"]),
                    int(origin["partition"]),
                    int(origin["offset"]),
                    int(origin["timestamp"]),
                ),
                key=None if key is None else _unb64(key),
                value=_unb64(data["value"]),
                headers=tuple((_str(k), _unb64(v)) for k, v in data["headers"]),
                webhook=_str(data["webhook"]),
                domain=data.get("domain") if isinstance(data.get("domain"), str) else None,
                claim=None
                if claim is None
                else ClaimRef(_str(claim["claim_id"]), _str(claim["day"]), int(claim["amount"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unreadable pending lead: {exc!r}") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


class PendingRegistry:
    """Pending leads by id, plus the ids recently finished. Not thread-safe (event loop).

    ``on_change`` is called with the lead id after every change (to wake its waiters).
    """

    def __init__(self, *, on_change: Callable[[str], None] | None = None) -> None:
        self._pending: dict[str, PendingLead] = {}
        #: lead ids finished (oldest first, bounded).
        self._done: OrderedDict[str, None] = OrderedDict()
        #: Our own completions the tail has not confirmed yet: lead id -> correlation id.
        self._ahead: dict[str, str] = {}
        self._on_change = on_change

    # --- transitions ----------------------------------------------------------------------

    def apply(self, lead_id: str, value: Mapping[str, Any] | None) -> None:
        """Apply a ``clay/pending/<lead_id>`` record of the state topic (``ValueError`` if
        unreadable; the registry is unchanged then)."""
        if value is None:
            self._pending.pop(lead_id, None)
            self._ahead.pop(lead_id, None)
            self._finish(lead_id)
        else:
            lead = PendingLead.from_dict(value)
            if lead.lead_id != lead_id:
                raise ValueError("pending record key and lead_id disagree")
            if self._ahead.get(lead_id) == lead.correlation_id:
                return  # we finished this very submission already; the tail is behind us
            self._done.pop(lead_id, None)
            self._pending[lead_id] = lead
        self._changed(lead_id)

    def completed(self, lead_id: str, correlation_id: str) -> None:
        """Our own transaction finished this submission (ahead of the tail's tombstone)."""
        current = self._pending.get(lead_id)
        if current is not None and current.correlation_id == correlation_id:
            del self._pending[lead_id]
        self._ahead[lead_id] = correlation_id
        self._finish(lead_id)
        self._changed(lead_id)

    def _finish(self, lead_id: str) -> None:
        self._done[lead_id] = None
        self._done.move_to_end(lead_id)
        while len(self._done) > DONE_MEMORY:
            self._done.popitem(last=False)

    def _changed(self, lead_id: str) -> None:
        if self._on_change is not None:
            self._on_change(lead_id)

    # --- queries ----------------------------------------------------------------------------

    def get(self, lead_id: str) -> PendingLead | None:
        return self._pending.get(lead_id)

    def is_done(self, lead_id: str) -> bool:
        """Finished (enriched or dead-lettered) and not pending again."""
        return lead_id in self._done and lead_id not in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[PendingLead]:
        return iter(list(self._pending.values()))

    def due(self, now: float, owner: str, orphan_grace_s: float) -> list[PendingLead]:
        """Leads this ``owner`` should sweep at ``now``: its own past their deadline, other
        owners' past their deadline plus the grace. Earliest deadline first."""
        due = [
            lead
            for lead in self._pending.values()
            if now >= lead.deadline + (0.0 if lead.owner == owner else orphan_grace_s)
        ]
        return sorted(due, key=lambda lead: lead.deadline)

    def next_due(self, owner: str, orphan_grace_s: float) -> float | None:
        """When :meth:`due` next returns something (epoch s), or None if nothing is pending."""
        times = [
            lead.deadline + (0.0 if lead.owner == owner else orphan_grace_s)
            for lead in self._pending.values()
        ]
        return min(times, default=None)

    def owned_by(self, owner: str) -> int:
        return sum(1 for lead in self._pending.values() if lead.owner == owner)
