"""The operator's live levers on spending: pause, resume and today's limit, and who pulled
them.

One compacted key of the state topic, :data:`CONTROL_KEY`, holds the group's current
:class:`SpendingControl`: whether spending is paused, the last limit set (and for which
budget day), and who changed what, why and when. Every instance folds that key
(:class:`SpendingFold`): the **latest record in log order wins** (compaction keeps exactly
that one, so a restart remembers what the live readers saw last); a record that does not
validate is skipped by every reader alike; a tombstone means "never changed" (not paused).

A limit change is also a :class:`~streamproc.resilience.claims.SetLimit` in the claims log,
where the ledger decides claims against it in log order; this record says who set it.

Pure: no Kafka; the time of a change is passed in (``now``, epoch seconds).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "CONTROL_KEY",
    "HISTORY_MAX",
    "SpendingAction",
    "SpendingControl",
    "SpendingFold",
    "change",
]

CONTROL_KEY = "control/spending"
#: Changes a reader remembers for the console and ``budget show`` (the log keeps one).
HISTORY_MAX = 20
#: Longest reason and name kept: a record of the state topic, not a document.
_TEXT_MAX = 500


class SpendingAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    SET_LIMIT = "set_limit"


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty text")
    if len(value) > _TEXT_MAX:
        raise ValueError(f"{name} is longer than {_TEXT_MAX} characters")
    return value.strip()


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"limit must be a whole number of credits >= 0, got {value!r}")
    return value


def _at(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("at must be a finite number (epoch seconds)")
    return float(value)


@dataclass(frozen=True, slots=True)
class SpendingControl:
    """The group's spending levers after the change ``action`` by ``by`` (``why``) at
    ``at`` (epoch s). ``limit``/``day``: the last limit set, and its budget day (None:
    none set); a limit set for another day than the group's current one no longer rules."""

    paused: bool
    action: SpendingAction
    by: str
    why: str
    at: float
    limit: int | None = None
    day: str | None = None

    def __post_init__(self) -> None:
        _text(self.by, "by")
        _text(self.why, "reason")
        _at(self.at)
        if (self.limit is None) != (self.day is None):
            raise ValueError("limit and day come together")
        if self.limit is not None:
            _limit(self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "action": self.action.value,
            "by": self.by,
            "why": self.why,
            "at": self.at,
            "limit": self.limit,
            "day": self.day,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpendingControl:
        paused = data.get("paused")
        if not isinstance(paused, bool):
            raise ValueError("paused must be true or false")
        try:
            action = SpendingAction(str(data.get("action")))
        except ValueError:
            raise ValueError(f"unknown spending action {data.get('action')!r}") from None
        limit, day = data.get("limit"), data.get("day")
        if day is not None and not isinstance(day, str):
            raise ValueError("day must be an ISO date string")
        return cls(
            paused=paused,
            action=action,
            by=_text(data.get("by"), "by"),
            why=_text(data.get("why"), "reason"),
            at=_at(data.get("at")),
            limit=None if limit is None else _limit(limit),
            day=day,
        )


def change(
    current: SpendingControl | None,
    action: SpendingAction,
    *,
    by: str,
    why: str,
    now: float,
    limit: int | None = None,
    day: str | None = None,
) -> SpendingControl:
    """The record that applies ``action`` to ``current``; ``ValueError`` (one line, fit to
    print) for a missing reason or name, or a limit that is not a whole number >= 0.

    A set-limit keeps the pause as it is; a pause or resume keeps the last limit set.
    """
    by, why = _text(by, "--by"), _text(why, "--reason")
    if action is SpendingAction.SET_LIMIT:
        if limit is None or day is None:
            raise ValueError("set-limit needs a limit and the budget day it is for")
        limit = _limit(limit)
        paused = current is not None and current.paused
    else:
        if limit is not None:
            raise ValueError(f"{action.value} takes no limit")
        paused = action is SpendingAction.PAUSE
        limit, day = (None, None) if current is None else (current.limit, current.day)
    return SpendingControl(paused, action, by, why, now, limit, day)


class SpendingFold:
    """The current :class:`SpendingControl` of the group, folded from :data:`CONTROL_KEY`'s
    records in log order, and the last few changes seen."""

    def __init__(self) -> None:
        self.current: SpendingControl | None = None
        #: ``current``'s pause, kept as it changes: every lead reads it twice (the guard),
        #: so a plain attribute, not a property.
        self.paused = False
        self.history: deque[SpendingControl] = deque(maxlen=HISTORY_MAX)

    def apply(self, value: Mapping[str, Any] | None) -> SpendingControl | None:
        """Apply one record (None: a tombstone); returns the change it makes, None for a
        tombstone. ``ValueError`` for a record that does not validate: nothing changes."""
        if value is None:
            self.current = None
            self.paused = False
            return None
        control = SpendingControl.from_dict(value)
        self.current = control
        self.paused = control.paused
        self.history.append(control)
        return control

    def status(self) -> dict[str, Any] | None:
        """The current control as JSON-able data (None: never changed)."""
        return None if self.current is None else self.current.to_dict()
