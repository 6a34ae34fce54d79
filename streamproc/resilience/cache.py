"""The enrichment cache: which leads may share an answer, which fields it carries, when it ends.

Pure and synchronous: ``now`` (epoch seconds) is always an argument. The guard
(:mod:`streamproc.processing.guard`) is its shell: per lead it asks :meth:`key_for` and
:meth:`get`; it journals what :meth:`put` returns to the state topic as ``cache/<key>``,
and writes a tombstone for each key :meth:`expired` hands out, so compaction removes it.
Every ``cache/`` record of that topic comes back through :meth:`apply`
(:mod:`streamproc.state.group_state`; restore and tail alike, so every instance of
the group has the same entries).

Keys (``cache_key``)
    ``domain`` (default): ``<domain>``, the leads of one company share an answer; the key
    format predates these settings, so entries already in a state topic stay usable.
    Freemail domains get no key: the leads of ``gmail.com`` are strangers to each other.
    ``email``: ``email/<address>``, one person per entry (freemail addresses included: the
    key is the person). ``off``: no key, every lead is a provider call.

Fields (``cache_fields``)
    Only these top-level fields of an answer are stored, and an entry read back from the
    topic is filtered again, so an entry written under a wider setting, or by a version
    that stored whole answers, never serves more than today's list. The default list is
    company-level: with a provider that returns a person's title, phone or LinkedIn URL,
    the second person of a company gets the company's fields, never the first one's.

Expiry (``cache_ttl_s``)
    An entry is served while ``now - stored_at <= ttl_s``. Every key known to be in the
    topic is tracked with its ``stored_at`` (tens of bytes each, whether or not its answer
    is still in the in-memory LRU), so expired keys are tombstoned and the topic holds about
    one TTL's worth of keys; a restore does not load an expired entry. A key is handed out
    for its tombstone ``tombstone_grace_s`` after it expired: a fresh answer stored under
    it meanwhile by another instance has reached this one by then and is not deleted.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streamproc.settings import DEFAULT_CACHE_FIELDS, DEFAULT_FREEMAIL_DOMAINS, CacheKey

__all__ = [
    "CacheConfig",
    "CacheHit",
    "EnrichmentCache",
    "is_freemail",
]


#: Long against the state topic's tail latency (about 0.1 s), short against any TTL.
_TOMBSTONE_GRACE_S = 60.0

_EMAIL_PREFIX = "email/"


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The cache's own settings; ``fields`` None serves every field of an answer."""

    key: CacheKey = CacheKey.DOMAIN
    fields: frozenset[str] | None = frozenset(DEFAULT_CACHE_FIELDS)
    freemail_domains: frozenset[str] = frozenset(DEFAULT_FREEMAIL_DOMAINS)
    ttl_s: float = 7 * 24 * 3600.0
    max_entries: int = 100_000
    tombstone_grace_s: float = _TOMBSTONE_GRACE_S


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A lead answered from the cache: what it gets, under which kind of key, stored when."""

    data: dict[str, Any]
    key: CacheKey
    stored_at: float


@dataclass(slots=True)
class _Entry:
    data: dict[str, Any]
    stored_at: float
    #: The lead whose paid answer this is: never served to that lead (see ``get``).
    origin: str | None = None


class EnrichmentCache:
    """Answers by key, at most ``max_entries`` in memory (least recently used go first),
    plus the ``stored_at`` of every key in the state topic until it is tombstoned."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        #: key -> stored_at of every live key in the topic, and their tombstone times.
        self._known: dict[str, float] = {}
        self._due: list[tuple[float, str, float]] = []

    def __len__(self) -> int:
        """Answers in memory."""
        return len(self._entries)

    @property
    def tracked(self) -> int:
        """Keys in the state topic not yet tombstoned, as far as this instance knows."""
        return len(self._known)

    def key_for(self, *, domain: str | None, email: str | None) -> str | None:
        """The key a lead's answer is served from and stored under; None when it must not
        be cached (cache off, no usable address, a freemail domain)."""
        config = self.config
        if config.ttl_s <= 0:
            return None
        if config.key is CacheKey.DOMAIN:
            name = _normal_domain(domain)
            if name is None or is_freemail(name, config.freemail_domains):
                return None
            return name
        if config.key is CacheKey.EMAIL:
            address = _normal_email(email)
            return None if address is None else _EMAIL_PREFIX + address
        return None

    def get(self, key: str, now: float, lead_id: str | None = None) -> CacheHit | None:
        """The answer for ``key`` if it is fresh and has a field the cache may serve, and
        was not paid for by ``lead_id`` itself: that lead paid for its whole answer (its
        receipt), and must never be published with the company-level part of it."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if lead_id is not None and entry.origin == lead_id:
            return None
        if now - entry.stored_at > self.config.ttl_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        # A copy: whoever builds the lead's record must not change the next lead's answer.
        return CacheHit(dict(entry.data), _kind_of(key), entry.stored_at)

    def put(
        self, key: str, data: Mapping[str, Any], now: float, origin: str | None = None
    ) -> dict[str, Any] | None:
        """Keep a provider's answer, paid for by lead ``origin``; returns the state record
        to journal as ``cache/<key>`` (only the allowed fields), or None when nothing of it
        may be cached."""
        allowed = self._allowed(data)
        if not allowed:
            return None
        self._keep(key, allowed, now, origin)
        if origin is None:
            return {"data": allowed, "stored_at": now}
        return {"data": allowed, "stored_at": now, "lead": origin}

    def apply(self, key: str, value: Mapping[str, Any] | None, now: float) -> None:
        """A ``cache/<key>`` record of the state topic; ValueError when it is unreadable."""
        if not key:
            raise ValueError("cache record without a key")
        if value is None:
            self._known.pop(key, None)
            self._entries.pop(key, None)
            return
        data, at = value.get("data"), value.get("stored_at")
        if not isinstance(data, Mapping) or isinstance(at, bool) or not isinstance(at, int | float):
            raise ValueError("cache record needs data (an object) and stored_at (a number)")
        stored_at = float(at)
        self._track(key, stored_at)
        allowed = self._allowed(data)
        fresh = now - stored_at <= self.config.ttl_s
        origin = value.get("lead")
        if fresh and allowed and self._serves(key):
            self._keep(key, allowed, stored_at, origin if isinstance(origin, str) else None)
        else:
            self._entries.pop(key, None)

    def expired(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` keys to tombstone now: expired ``tombstone_grace_s`` ago or more.
        Each is handed out once and forgotten here."""
        out: list[str] = []
        due = self._due
        while due and len(out) < limit and due[0][0] < now:
            _, key, stored_at = heapq.heappop(due)
            if self._known.get(key) != stored_at:
                continue  # replaced or tombstoned since: that version's entry decides
            del self._known[key]
            self._entries.pop(key, None)
            out.append(key)
        return out

    def _keep(
        self, key: str, data: dict[str, Any], stored_at: float, origin: str | None = None
    ) -> None:
        self._track(key, stored_at)
        if self.config.max_entries <= 0:
            return
        self._entries[key] = _Entry(data, stored_at, origin)
        self._entries.move_to_end(key)
        while len(self._entries) > self.config.max_entries:
            self._entries.popitem(last=False)

    def _track(self, key: str, stored_at: float) -> None:
        if self._known.get(key) == stored_at:
            return  # our own write coming back from the topic
        self._known[key] = stored_at
        # Due strictly after this (see expired): at exactly ttl + grace it is still in grace.
        due_at = stored_at + self.config.ttl_s + self.config.tombstone_grace_s
        heapq.heappush(self._due, (due_at, key, stored_at))

    def _allowed(self, data: Mapping[str, Any]) -> dict[str, Any]:
        fields = self.config.fields
        if fields is None:
            return dict(data)
        return {name: value for name, value in data.items() if name in fields}

    def _serves(self, key: str) -> bool:
        """Whether lookups of the configured kind can ever ask for ``key``."""
        kind = self.config.key
        return kind is not CacheKey.OFF and _kind_of(key) is kind


def is_freemail(domain: str, freemail_domains: Iterable[str]) -> bool:
    """``domain`` is one of ``freemail_domains`` or a subdomain of one."""
    labels = domain.split(".")
    suffixes = {".".join(labels[i:]) for i in range(len(labels))}
    return not suffixes.isdisjoint(freemail_domains)


def _kind_of(key: str) -> CacheKey:
    return CacheKey.EMAIL if key.startswith(_EMAIL_PREFIX) else CacheKey.DOMAIN


def _normal_domain(domain: str | None) -> str | None:
    if domain is None:
        return None
    name = domain.strip().rstrip(".").lower()
    # A slash would make a domain key read as another kind of key.
    return name if name and "/" not in name else None


def _normal_email(email: str | None) -> str | None:
    if email is None:
        return None
    address = email.strip().lower()
    local, at, domain = address.rpartition("@")
    return address if at and local and _normal_domain(domain) == domain else None
