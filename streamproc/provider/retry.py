"""When to retry a failed provider call in-process, and how long to wait first.

Pure and synchronous: no I/O, no clock, no global RNG. The caller passes the random source
(``rng``), so a test can pin every delay, and does the sleeping itself.

Backoff is exponential with *full jitter* (the delay is drawn uniformly from
``[0, min(max_s, base_s * 2**(attempt-1))]``), which spreads a burst of failing callers
over the whole window instead of having them retry in lock-step. When the provider said
``Retry-After``, the wait is at least that long, up to :attr:`RetryPolicy.retry_after_max_s`
(the ``provider_retry_after_max_s`` setting): a provider that asks for a day gets the cap,
and the retry after it finds out whether the day was meant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from streamproc.errors import LeadError, ProviderError, ProviderTimeout, RateLimited

__all__ = ["DEFAULT_RETRY_AFTER_MAX_S", "RetryPolicy"]

#: The default of ``provider_retry_after_max_s``, for policies built without settings.
DEFAULT_RETRY_AFTER_MAX_S = 60.0

# Exponents past this already exceed any sane max_s; clamping keeps 2**n from overflowing.
_MAX_EXPONENT = 62

# Only failures that a second try a moment later can plausibly fix are retried here.
# ProviderAuthError, ProviderCreditsExhausted and ProviderRejected are "retriable" for the
# DLQ replayer (hours later), never within one call.
_RETRIED_IN_PROCESS: tuple[type[LeadError], ...] = (ProviderError, ProviderTimeout, RateLimited)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter.

    ``max_retries`` counts retries, so a call is made at most ``max_retries + 1`` times.
    ``base_s`` is the first backoff ceiling and ``max_s`` caps every later one (seconds).
    ``retry_after_max_s`` is the longest ``Retry-After`` honoured (seconds).
    """

    max_retries: int
    base_s: float
    max_s: float
    retry_after_max_s: float = DEFAULT_RETRY_AFTER_MAX_S

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not (math.isfinite(self.base_s) and self.base_s >= 0):
            raise ValueError("base_s must be a finite number >= 0")
        if not (math.isfinite(self.max_s) and self.max_s >= self.base_s):
            raise ValueError("max_s must be a finite number >= base_s")
        if not (math.isfinite(self.retry_after_max_s) and self.retry_after_max_s >= 0):
            raise ValueError("retry_after_max_s must be a finite number >= 0")

    def backoff_ceiling_s(self, attempt: int) -> float:
        """The upper bound of the jittered delay before retry number ``attempt`` (1-based)."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        return min(self.max_s, self.base_s * 2.0**exponent)

    def delay_s(
        self,
        attempt: int,
        rng: Callable[[], float],
        retry_after_s: float | None = None,
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry).

        ``rng`` returns a float in ``[0, 1)`` (``random.random``); out-of-range values are
        clamped. The result is in ``[0, max_s]`` without ``retry_after_s``; with it, at least
        ``min(retry_after_s, retry_after_max_s)`` and at most ``max(max_s,
        retry_after_max_s)``. A negative or NaN ``retry_after_s`` is ignored; ``+inf`` means
        "as long as we allow".
        """
        draw = rng()
        if not math.isfinite(draw):
            draw = 0.0
        jittered = min(max(draw, 0.0), 1.0) * self.backoff_ceiling_s(attempt)
        if retry_after_s is None or math.isnan(retry_after_s) or retry_after_s < 0:
            return jittered
        return max(jittered, min(retry_after_s, self.retry_after_max_s))

    def should_retry(self, exc: LeadError, retries_done: int) -> bool:
        """Whether to call again after ``exc``, having already retried ``retries_done`` times.

        True only for provider errors, timeouts and 429s, and only while retries remain.
        """
        return retries_done < self.max_retries and isinstance(exc, _RETRIED_IN_PROCESS)
