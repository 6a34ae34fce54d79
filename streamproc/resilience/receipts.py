"""Receipts: the answer a lead paid for, kept in the state topic until its output commits.

A lead can run again after the provider answered it and before its output committed: a
crash, a rebalance, a stand-down after a failed commit, a fenced lane, a batch retried.
Without a receipt it would be answered by the domain cache (company-level fields only) or
paid for again. So the guard journals every paid answer at once, as
``receipt/<lead_id>/<input hash>`` (the whole answer, its credits, when; carried inside
the ``cache/<key>`` record the answer writes anyway when it has one), and a lead that
finds its receipt is published with that answer, charged nothing new, the provider not
called. The receipt's tombstone travels in the lead's own output transaction: it leaves the
topic exactly when the output commits, and stays when the transaction aborts. It goes to
the partition of the record that carries the receipt, so every reader (a restore included)
applies it after the receipt.

Keyed by the lead *and its input*: the same lead written again with other fields (an
update upstream) is a new question, and is asked. The hash is of the input record's value
as it came, so any change to the lead is one.

Memory is bounded: a receipt lives from the answer to its lead's commit (the commit
interval, normally), so every instance holds the group's answers in flight; receipts whose
tombstone never came (a lead dead-lettered after its answer, an upgrade mid-flight) are
tombstoned by age (``ttl_s``), and at most ``max_entries`` are kept, oldest dropped
first.

Pure: no Kafka, the clock is passed in.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PREFIX", "Receipt", "ReceiptBook", "carries", "carry", "receipt_id"]

#: The state-topic key prefix of receipts.
PREFIX = "receipt/"

#: 8 bytes of BLAKE2b: a changed input must not collide with the one answered, among the
#: versions of *one* lead (not across leads: the lead id is part of the key).
_HASH_BYTES = 8


def receipt_id(lead_id: str, value: bytes | None) -> str:
    """The receipt's id (the key after ``receipt/``): the lead and a hash of its input."""
    digest = hashlib.blake2b(value or b"", digest_size=_HASH_BYTES).hexdigest()
    return f"{lead_id}/{digest}"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a lead was answered and charged, and when (epoch s); ``home``: the state key
    whose record carries it (its tombstone goes to that key's partition)."""

    data: dict[str, Any]
    credits: int
    at: float
    home: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "credits": self.credits, "at": self.at}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], home: str | None = None) -> Receipt:
        data, credits, at = value.get("data"), value.get("credits"), value.get("at")
        if not isinstance(data, dict):
            raise ValueError("receipt needs data (an object)")
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise ValueError("receipt needs credits (a non-negative integer)")
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise ValueError("receipt needs at (a number)")
        return cls(data, credits, float(at), home)


_CARRIED_ID = "receipt"
_CARRIED_DATA = "answer"
_CARRIED_CREDITS = "credits"


def carry(record: dict[str, Any], rid: str, data: dict[str, Any], credits: int) -> None:
    """Put a lead's receipt into the cache record its answer writes anyway: one state
    record per lead instead of two (the cache record is keyed by domain; its ``stored_at``
    is the receipt's time)."""
    record[_CARRIED_ID] = rid
    record[_CARRIED_DATA] = data
    record[_CARRIED_CREDITS] = credits


def carries(value: Mapping[str, Any] | None) -> bool:
    """Whether a cache record carries a receipt."""
    return value is not None and _CARRIED_ID in value


class ReceiptBook:
    """The receipts of the group not yet tombstoned, as this instance folded them."""

    def __init__(self, *, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # Insertion order is age order (a receipt is written once, when its call answers):
        # the oldest are the first to expire and to be dropped.
        self._receipts: OrderedDict[str, Receipt] = OrderedDict()

    def __len__(self) -> int:
        return len(self._receipts)

    def get(self, rid: str) -> Receipt | None:
        return self._receipts.get(rid)

    def put(
        self, rid: str, data: dict[str, Any], credits: int, now: float, home: str | None = None
    ) -> dict[str, Any]:
        """Keep an answer; returns the state record to journal as ``receipt/<rid>``."""
        receipt = Receipt(data, credits, now, home)
        self._keep(rid, receipt)
        return receipt.to_dict()

    def apply(self, rid: str, value: Mapping[str, Any] | None, now: float) -> None:
        """A ``receipt/<rid>`` record of the state topic; ValueError when unreadable."""
        if not rid:
            raise ValueError("receipt record without an id")
        if value is None:
            self._receipts.pop(rid, None)
            return
        self._fresh(rid, Receipt.from_dict(value, PREFIX + rid), now)

    def carried(self, home: str, value: Mapping[str, Any], now: float) -> None:
        """A cache record (``home``) that carries its lead's receipt (see :func:`carry`);
        ValueError when the receipt in it is unreadable."""
        rid, data = value.get(_CARRIED_ID), value.get(_CARRIED_DATA)
        if not isinstance(rid, str) or not rid:
            raise ValueError("carried receipt without an id")
        credits, at = value.get(_CARRIED_CREDITS), value.get("stored_at")
        fields = {"data": data, "credits": credits, "at": at}
        self._fresh(rid, Receipt.from_dict(fields, home), now)

    def _fresh(self, rid: str, receipt: Receipt, now: float) -> None:
        # One past its TTL was tombstoned (or due to be): a restore after the tombstone was
        # compacted away must not bring it back.
        if now - receipt.at <= self.ttl_s:
            self._keep(rid, receipt)

    def expired(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` receipts older than ``ttl_s``, to tombstone: forgotten here."""
        out: list[str] = []
        receipts = self._receipts
        while receipts and len(out) < limit:
            rid, receipt = next(iter(receipts.items()))
            if now - receipt.at <= self.ttl_s:
                break
            del receipts[rid]
            out.append(rid)
        return out

    def _keep(self, rid: str, receipt: Receipt) -> None:
        if rid in self._receipts:
            # Our own write coming back, or the same lead answered again: keep its place,
            # the answer is the newest.
            self._receipts[rid] = receipt
            return
        self._receipts[rid] = receipt
        while len(self._receipts) > self.max_entries:
            self._receipts.popitem(last=False)
