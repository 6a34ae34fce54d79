"""Turn one provider HTTP answer into a result or the :mod:`streamproc.errors` it means.

Pure and synchronous: it sees the status, body and headers, never the socket, and takes the
wall clock as ``now`` (only for an HTTP-date ``Retry-After``). The table it implements is
docs/provider.md, "Synchronous HTTP":

=============================  =================================
answer                         outcome
=============================  =================================
200 with a readable body       :class:`ProviderResult`
200 with an unreadable body    :class:`~streamproc.errors.ProviderError`
429                            :class:`~streamproc.errors.RateLimited` (``retry_after_s``)
500-599                        :class:`~streamproc.errors.ProviderError`
401, 403                       :class:`~streamproc.errors.ProviderAuthError`
402                            :class:`~streamproc.errors.ProviderCreditsExhausted`
any other 1xx-4xx              :class:`~streamproc.errors.ProviderRejected`
outside 100-599                :class:`~streamproc.errors.ProviderError`
=============================  =================================

A readable body is ``{"data": {...}, "credits": n}`` where ``n`` is absent, ``null`` (charged
``default_credits``) or any JSON number >= 0, rounded up to whole credits.

Messages are short and never quote the body: a provider's error page may echo the lead
(personal data) or the request headers (the API key).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from streamproc.errors import (
    ProviderAuthError,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    RateLimited,
)

__all__ = [
    "MAX_CREDITS",
    "ProviderResult",
    "classify_response",
    "parse_retry_after",
    "whole_credits",
]

_UNREADABLE = "provider answered 200 with an unreadable answer"

#: The largest ``credits`` a 200 may charge: 2**53 is the last integer a JSON number (an
#: IEEE double to most encoders) carries exactly, far above any real charge, and well inside
#: the 64-bit integers the state topic's records can encode.
MAX_CREDITS = 2**53


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """A successful enrichment: the provider's ``data`` object and the credits it charged."""

    data: dict[str, Any]
    credits: int


def classify_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    default_credits: int,
    now: Callable[[], float],
) -> ProviderResult:
    """The result of a 200 answer, or raise the :class:`~streamproc.errors.LeadError` it means.

    ``default_credits`` is charged when a 200 body omits ``credits`` (or sends ``null``).
    ``now`` returns the Unix time in seconds. ``headers`` may be any mapping; the lookup of
    ``Retry-After`` is case-insensitive either way.
    """
    if status == 200:
        return _parse_success(body, default_credits)
    if status == 429:
        retry_after = _header(headers, "retry-after")
        raise RateLimited(
            "provider answered 429",
            retry_after_s=None if retry_after is None else parse_retry_after(retry_after, now),
        )
    if 500 <= status <= 599:
        raise ProviderError(f"provider answered {status}")
    if status in (401, 403):
        raise ProviderAuthError(f"provider answered {status}: the API key is refused")
    if status == 402:
        raise ProviderCreditsExhausted("provider answered 402: its credits are exhausted")
    if 100 <= status <= 499:
        raise ProviderRejected(f"provider answered {status}")
    # Not an HTTP status at all: the peer is broken, which a later call may not be.
    raise ProviderError(f"provider answered an invalid status {status}")


def parse_retry_after(value: str, now: Callable[[], float]) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` if it cannot be read.

    Accepts delta-seconds (``"120"``; a decimal such as ``"1.5"`` is tolerated) and an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is measured against ``now()``
    (Unix seconds); a date in the past means 0.
    """
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    try:
        return max(0.0, when.timestamp() - now())
    except (OverflowError, ValueError, OSError):
        return None


def _parse_success(body: bytes, default_credits: int) -> ProviderResult:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProviderError(_UNREADABLE) from None
    if not isinstance(payload, dict):
        raise ProviderError(_UNREADABLE)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ProviderError(_UNREADABLE)
    credits = payload.get("credits")
    if credits is None:
        return ProviderResult(data=data, credits=default_credits)
    charged = whole_credits(credits)
    if charged is None:
        raise ProviderError(_UNREADABLE)
    return ProviderResult(data=data, credits=charged)


def whole_credits(value: object) -> int | None:
    """The whole credits a JSON ``credits`` number charges, or ``None`` if it is no charge.

    Any JSON number counts, however it is spelled: ``6``, ``6.0`` and ``6e0`` are 6. A
    fractional charge is rounded *up* (``1.2`` → 2): the budget counts whole credits and
    must never count fewer than were spent, so it may over-count by less than one credit per
    lead. Negative numbers, values above :data:`MAX_CREDITS`, booleans, strings and the
    rest are not a charge that can be settled.
    """
    # bool is an int subclass; `"credits": true` is not a charge we can settle.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # Checked before rounding, so -0.5 is refused rather than rounded up to a free 0.
    if not 0 <= value <= MAX_CREDITS:
        return None
    return math.ceil(value)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` ignoring case, for plain dicts as well as ``httpx.Headers``."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None
