"""What an API's answer says of its rate limit, and the pace that keeps within it.

Pure: headers and the clock are arguments. The pipeline's pacer
(:mod:`streamproc.processing.pacing`) reads every answer of a provider through
:func:`parse_quota` and slows down with :func:`quota_pace` when the quota left would run
out before its window resets; a ``Retry-After`` pauses it as a whole (docs/provider.md,
"Rate limit").

The names read, first found wins (all case-insensitive):

* remaining: ``x-ratelimit-remaining`` (GitHub's convention; People Data Labs sends a JSON
  object per window, ``{"minute": 99}``, and the smallest is taken), ``ratelimit-remaining``
  (the IETF draft's early names), ``x-rate-limit-remaining``, Apollo's
  ``x-minute-requests-left`` (a fixed minute, with no reset header: the whole minute is
  assumed, which never overshoots);
* reset: ``x-ratelimit-reset``, ``ratelimit-reset``, ``x-rate-limit-reset``: seconds from
  now, or a Unix time (a number above :data:`_EPOCH_FLOOR`), or an HTTP or ISO date;
* the IETF draft's combined field ``RateLimit: limit=100, remaining=80, reset=54`` (early
  drafts) or ``RateLimit: "default";r=80;t=54`` (structured, later drafts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import orjson

__all__ = ["Quota", "parse_quota", "quota_pace"]

_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")
_RESET = ("x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
#: Apollo's per-minute quota left, in a fixed minute whose end it does not send.
_APOLLO_MINUTE = "x-minute-requests-left"
_APOLLO_WINDOW_S = 60.0
#: A reset above this is a Unix time (2001-09-09), below it seconds from now: no window
#: is a billion seconds long, and no clock reads before 2001.
_EPOCH_FLOOR = 1e9
_DRAFT_REMAINING = re.compile(r"(?:^|[;,\s])(?:remaining|r)=(\d+)")
_DRAFT_RESET = re.compile(r"(?:^|[;,\s])(?:reset|t)=(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class Quota:
    """Requests the API will still take (``remaining``) before its window resets, in
    ``reset_in_s`` seconds from the answer."""

    remaining: int
    reset_in_s: float


def parse_quota(headers: Mapping[str, str], now: float) -> Quota | None:
    """The quota an answer's headers state, or ``None`` when they state none that can be
    read (a remaining count without a reset says nothing about pace). ``now``: Unix
    seconds, for a reset given as a time."""
    lower = {name.lower(): value for name, value in headers.items()}
    draft = lower.get("ratelimit")
    if draft is not None:
        left, reset = _DRAFT_REMAINING.search(draft), _DRAFT_RESET.search(draft)
        if left is not None and reset is not None:
            return Quota(int(left.group(1)), float(reset.group(1)))
    remaining = _first(lower, _REMAINING)
    if remaining is not None:
        left_n = _count(remaining)
        reset_s = _first(lower, _RESET)
        seconds = None if reset_s is None else _reset_in_s(reset_s, now)
        if left_n is not None and seconds is not None:
            return Quota(left_n, seconds)
    apollo = lower.get(_APOLLO_MINUTE)
    if apollo is not None and (left_n := _count(apollo)) is not None:
        return Quota(left_n, _APOLLO_WINDOW_S)
    return None


def quota_pace(quota: Quota, fraction: float) -> float | None:
    """The most requests per second this process may send so that its ``fraction`` of the
    quota lasts until the reset; ``None``: no bound (the window is over). 0 means none
    before the reset. The group's members each see the same remaining count, so each takes
    its share of it, as it does of the configured rate."""
    if not quota.reset_in_s > 0 or not math.isfinite(quota.reset_in_s):
        return None
    return max(0, quota.remaining) * fraction / quota.reset_in_s


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if (value := headers.get(name)) is not None:
            return value
    return None


def _count(text: str) -> int | None:
    """A whole count, or the smallest of a JSON object's (one per window, as PDL sends)."""
    text = text.strip()
    if text.startswith("{"):
        windows = _windows(text)
        counts = [v for v in windows.values() if isinstance(v, int | float) and v >= 0]
        return int(min(counts)) if counts else None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


def _windows(text: str) -> dict[str, object]:
    """A JSON object of one value per window (PDL's ``{'minute': 99}``, quoted either way);
    empty when it is not one."""
    try:
        windows = orjson.loads(text.replace("'", '"'))
    except orjson.JSONDecodeError:
        return {}
    return windows if isinstance(windows, dict) else {}


def _reset_in_s(text: str, now: float) -> float | None:
    """Seconds until the reset a header states: seconds, a Unix time, or a date."""
    text = text.strip()
    if text.startswith("{"):
        found = [s for v in _windows(text).values() if (s := _reset_in_s(str(v), now)) is not None]
        return min(found) if found else None
    try:
        value = float(text)
    except ValueError:
        return _date_in_s(text, now)
    if not math.isfinite(value) or value < 0:
        return None
    return max(0.0, value - now) if value > _EPOCH_FLOOR else value


def _date_in_s(text: str, now: float) -> float | None:
    when: datetime | None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return max(0.0, when.timestamp() - now)
    except (OverflowError, ValueError, OSError):
        return None
