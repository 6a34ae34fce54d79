"""Which Clay webhook takes the next row: lifetime counts and rotation, as a pure object.

A Clay table webhook accepts a fixed number of rows in its lifetime (50,000). streamproc is
configured with a list of webhook URLs and uses them in order: the next row goes to the
first webhook whose count is below ``limit - headroom``.

Counts are group-wide and live in the state topic: each process writes its own count per
webhook under ``clay/webhook/<webhook id>/<owner>`` (a stable key per process and webhook,
so compaction keeps one record each), and every process sums the records of all owners.
A row is counted **before** it is POSTed (durably, see ``streamproc.clay.journal``) and
uncounted when Clay did not accept it, so:

* a crash between the count and Clay's answer over-counts by the rows in flight (the
  webhook is retired a little early), and never under-counts;
* rows other instances have in flight are not yet in our sum: ``headroom`` absorbs them.

Reservations (:meth:`WebhookRotation.reserve`) are in memory and count at once, so
concurrent leads of this process never overshoot. When every webhook is used up,
:meth:`reserve` returns ``None`` and the caller *holds* the lead (the topic is the queue)
until an operator adds a webhook: a dead-lettered lead would need a replay anyway, and a
held one costs nothing and loses nothing.

Webhook ids are a hash of the URL, never the URL, which is a credential of sorts (whoever
knows it can add rows to the table): ids (:func:`streamproc.redact.webhook_id`) go into
keys, metrics labels and logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproc.redact import webhook_id

__all__ = ["KEY_PREFIX", "Slot", "WebhookRotation"]

KEY_PREFIX = "clay/webhook/"


@dataclass(frozen=True, slots=True)
class Slot:
    """One row's place on a webhook: reserved in memory until submitted or released."""

    index: int
    url: str
    webhook_id: str


class WebhookRotation:
    """Counts per webhook (this process's and every other owner's) and the choice of the next."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        owner: str,
        limit: int,
        headroom: int = 0,
        alert_ratio: float = 0.9,
    ) -> None:
        if not urls:
            raise ValueError("at least one webhook URL is needed")
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.urls = list(urls)
        self.ids = [webhook_id(url) for url in self.urls]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("a webhook URL is listed twice")
        self.owner = owner
        self.limit = limit
        #: Rows a webhook may take from us: the limit minus the headroom, at least 1.
        self.usable = max(1, limit - headroom)
        self.alert_ratio = alert_ratio
        self._others: dict[str, dict[str, int]] = {wid: {} for wid in self.ids}
        #: This process's durable count per webhook (accepted rows plus rows in flight).
        self._mine: dict[str, int] = dict.fromkeys(self.ids, 0)
        #: Reserved in memory, not yet counted durably.
        self._held: dict[str, int] = dict.fromkeys(self.ids, 0)
        self._current: int | None = None
        self.rotations = 0

    # --- the state topic ------------------------------------------------------------------

    @staticmethod
    def key(wid: str, owner: str) -> str:
        return f"{KEY_PREFIX}{wid}/{owner}"

    def apply(self, rest: str, value: Mapping[str, Any] | None) -> None:
        """Apply a ``clay/webhook/<id>/<owner>`` record (``rest`` is ``<id>/<owner>``).

        Our own records are ignored (our in-memory count is ahead of them), as are
        webhooks no longer configured.
        """
        wid, _, owner = rest.partition("/")
        if not owner or owner == self.owner or wid not in self._others:
            return
        if value is None:
            self._others[wid].pop(owner, None)
            return
        rows = value.get("rows")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValueError("webhook count without a valid 'rows'")
        self._others[wid][owner] = rows

    def record(self, wid: str) -> tuple[str, dict[str, Any]]:
        """Key and value of this process's durable count for webhook ``wid``."""
        return self.key(wid, self.owner), {"webhook": wid, "rows": self._mine[wid]}

    # --- the choice -------------------------------------------------------------------------

    def rows(self, index: int) -> int:
        """Rows counted against webhook ``index`` by the whole group, reservations included."""
        wid = self.ids[index]
        return sum(self._others[wid].values()) + self._mine[wid] + self._held[wid]

    def reserve(self) -> Slot | None:
        """A slot on the first webhook with room, counted at once; None if all are used up."""
        for index, wid in enumerate(self.ids):
            if self.rows(index) < self.usable:
                self._held[wid] += 1
                if self._current is not None and index > self._current:
                    self.rotations += 1
                self._current = index
                return Slot(index, self.urls[index], wid)
        self._current = None
        return None

    def submitting(self, slot: Slot) -> None:
        """The row is about to be POSTed: its reservation becomes part of the durable count."""
        self._held[slot.webhook_id] -= 1
        self._mine[slot.webhook_id] += 1

    def another_row(self, slot: Slot) -> None:
        """A retry of a row Clay may already have taken (no answer came): one more row."""
        self._mine[slot.webhook_id] += 1

    def not_accepted(self, slot: Slot) -> None:
        """Clay did not accept a row counted by :meth:`submitting`."""
        self._mine[slot.webhook_id] -= 1

    def release(self, slot: Slot) -> None:
        """A reserved row was never submitted."""
        self._held[slot.webhook_id] -= 1

    # --- reading ----------------------------------------------------------------------------

    @property
    def current(self) -> int | None:
        """Index of the webhook the last reservation went to (None before any, or when full)."""
        return self._current

    def exhausted(self) -> bool:
        """Every webhook is at its usable limit."""
        return all(self.rows(i) >= self.usable for i in range(len(self.ids)))

    def remaining_rows(self) -> int:
        """Rows the group may still send, over all webhooks."""
        return sum(max(0, self.usable - self.rows(i)) for i in range(len(self.ids)))

    def capacity_low(self) -> bool:
        """The last webhook has taken ``alert_ratio`` of its limit: add webhooks soon."""
        return self.rows(len(self.ids) - 1) >= self.alert_ratio * self.limit or self.exhausted()

    def snapshot(self) -> list[dict[str, Any]]:
        """Per webhook: id, rows, limit (for /status)."""
        return [
            {"index": i, "webhook": wid, "rows": self.rows(i), "limit": self.limit}
            for i, wid in enumerate(self.ids)
        ]
