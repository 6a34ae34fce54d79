"""The pending-submission registry: leads submitted to Clay whose callback has not come yet.

Every input record submitted to Clay is one *submission*, with a correlation id of its own
(sent to Clay as a column and echoed in the callback). A submission is the state record
``clay/pending/<lead_id>/<correlation_id>``, written in the same Kafka transaction as the
input offset, and removed by a tombstone written in the same transaction as its output
(enriched lead or DLQ record). One key per submission, not per lead id: an update of a
lead that arrives while the first is still pending is a second submission with its own
output and its own budget claim, as in sync mode, instead of replacing the first (whose
input then had no output and whose claim was never settled).

Its value carries what is needed to finish it without the input record: the original
key, value and headers (base64, so a DLQ record keeps the original bytes exactly), the
attempt, the origin (topic, partition, offset, timestamp), the deadline (epoch seconds: a
wall-clock instant that survives restarts), the correlation id, the budget claim to
settle and the instance that submitted it. Records of the earlier format, keyed
``clay/pending/<lead_id>`` (one per lead), are still read and finished under their own key.

:class:`PendingRegistry` is the in-memory view every process builds from the state topic
(restore, then tail). It is pure and synchronous. Its transitions, per submission
``(lead_id, correlation_id)``::

    (unknown) --pending record--> PENDING --tombstone-------------> DONE
                                  PENDING --completed() here------> DONE   (our own commit,
                                                                           before the tail)

    except: after our own completion and before the tail's tombstone, the pending record
    of the submission we completed is stale and ignored.

``DONE`` submissions are remembered (bounded, oldest forgotten first) so that a duplicate
or replayed callback is recognised as such, also in an instance that only saw the
tombstone.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamproc.records.dlq import Origin

__all__ = [
    "PENDING_PREFIX",
    "ClaimRef",
    "PendingLead",
    "PendingRegistry",
    "Submission",
    "pending_key",
]

PENDING_PREFIX = "clay/pending/"
#: DONE submissions remembered for duplicate detection (~150 bytes each).
DONE_MEMORY = 200_000
#: The record format written now (1: keyed by lead id alone).
_VERSION = 2

#: A submission's identity: ``(lead_id, correlation_id)``.
Submission = tuple[str, str]


def pending_key(lead_id: str, correlation_id: str) -> str:
    """The state key of one submission."""
    return f"{PENDING_PREFIX}{lead_id}/{correlation_id}"


def _submission_of(rest: str) -> Submission | None:
    """The submission a ``clay/pending/<rest>`` key names, when it is of the current format
    (the correlation id is ours: hex, without ``/``). A lead id may itself contain ``/``."""
    lead_id, sep, correlation_id = rest.rpartition("/")
    if not sep or not lead_id or not _is_hex(correlation_id):
        return None
    return lead_id, correlation_id


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdef" for ch in text)


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

    @property
    def submission(self) -> Submission:
        return self.lead_id, self.correlation_id

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": _VERSION,
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
    """Pending submissions, plus the ones recently finished. Not thread-safe (event loop).

    ``on_change`` is called with the lead id after every change (to wake its waiters).
    """

    def __init__(self, *, on_change: Callable[[str], None] | None = None) -> None:
        #: Pending submissions by the rest of their state key (after ``clay/pending/``).
        self._pending: dict[str, PendingLead] = {}
        #: lead id -> correlation id -> rest of the state key, for every pending submission.
        self._by_lead: dict[str, dict[str, str]] = {}
        #: Submissions finished (oldest first, bounded).
        self._done: OrderedDict[Submission, None] = OrderedDict()
        #: Our own completions the tail has not confirmed yet.
        self._ahead: set[Submission] = set()
        self._on_change = on_change

    # --- transitions ----------------------------------------------------------------------

    def apply(self, rest: str, value: Mapping[str, Any] | None) -> None:
        """Apply a ``clay/pending/<rest>`` record of the state topic (``ValueError`` if
        unreadable; the registry is unchanged then)."""
        if value is None:
            lead = self._pending.get(rest)
            submission = lead.submission if lead is not None else _submission_of(rest)
            if submission is None:
                return  # an earlier format's tombstone of a lead we never saw pending
            self._drop(rest, submission)
            self._ahead.discard(submission)
            self._finish(submission)
            self._changed(submission[0])
            return
        lead = PendingLead.from_dict(value)
        if rest not in (f"{lead.lead_id}/{lead.correlation_id}", lead.lead_id):
            raise ValueError("pending record key and its lead_id/correlation_id disagree")
        if lead.submission in self._ahead:
            return  # we finished this very submission already; the tail is behind us
        self._done.pop(lead.submission, None)
        previous = self._by_lead.get(lead.lead_id, {})
        for correlation_id, other in list(previous.items()):
            if other == rest and correlation_id != lead.correlation_id:
                # The earlier format: one key per lead, a new submission replaced the last.
                self._drop(rest, (lead.lead_id, correlation_id))
        self._pending[rest] = lead
        self._by_lead.setdefault(lead.lead_id, {})[lead.correlation_id] = rest
        self._changed(lead.lead_id)

    def completed(self, lead: PendingLead) -> None:
        """Our own transaction finished this submission (ahead of the tail's tombstone)."""
        rest = self._by_lead.get(lead.lead_id, {}).get(lead.correlation_id)
        if rest is not None:
            self._drop(rest, lead.submission)
        self._ahead.add(lead.submission)
        self._finish(lead.submission)
        self._changed(lead.lead_id)

    def _drop(self, rest: str, submission: Submission) -> None:
        lead_id, correlation_id = submission
        current = self._pending.get(rest)
        if current is not None and current.submission == submission:
            del self._pending[rest]
        others = self._by_lead.get(lead_id)
        if others is not None and others.get(correlation_id) == rest:
            del others[correlation_id]
            if not others:
                del self._by_lead[lead_id]

    def _finish(self, submission: Submission) -> None:
        self._done[submission] = None
        self._done.move_to_end(submission)
        while len(self._done) > DONE_MEMORY:
            self._done.popitem(last=False)

    def _changed(self, lead_id: str) -> None:
        if self._on_change is not None:
            self._on_change(lead_id)

    # --- queries ----------------------------------------------------------------------------

    def get(self, lead_id: str, correlation_id: str) -> PendingLead | None:
        """The pending submission, or None."""
        rest = self._by_lead.get(lead_id, {}).get(correlation_id)
        return None if rest is None else self._pending.get(rest)

    def state_key(self, lead_id: str, correlation_id: str) -> str:
        """The state key the submission is pending under (its tombstone's key); the
        current format's key when it is not pending."""
        rest = self._by_lead.get(lead_id, {}).get(correlation_id)
        if rest is None:
            return pending_key(lead_id, correlation_id)
        return f"{PENDING_PREFIX}{rest}"

    def is_done(self, lead_id: str, correlation_id: str) -> bool:
        """Finished (enriched or dead-lettered) and not pending again."""
        return (lead_id, correlation_id) in self._done and self.get(lead_id, correlation_id) is None

    def has_pending(self, lead_id: str) -> bool:
        """Whether any submission of ``lead_id`` is pending."""
        return lead_id in self._by_lead

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[PendingLead]:
        return iter(list(self._pending.values()))

    def due(self, now: float, owner: str, orphan_grace_s: float) -> list[PendingLead]:
        """Submissions this ``owner`` should sweep at ``now``: its own past their deadline,
        other owners' past their deadline plus the grace. Earliest deadline first."""
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
