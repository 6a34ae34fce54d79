"""How long a partition waits before its failing commit (or lane opening) is tried again.

Pure: the clock is a parameter. A failure that does not go away by itself (a Write ACL
taken from an output topic, a producer clock far ahead, a DLQ refusing a record) must not
turn into a tight retry loop: each failure in a row doubles the wait, up to a cap, and the
first success forgets them all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Exponential backoff of one partition's retries: ``initial_s`` doubled per failure
    in a row, at most ``max_s``."""

    initial_s: float
    max_s: float
    #: Failures in a row since the last success.
    failures: int = 0
    #: When the next try is due (the caller's clock); 0 when nothing failed.
    retry_at: float = 0.0

    def failed(self, now: float) -> float:
        """Count one failure at ``now``; returns the wait (seconds) before the next try."""
        self.failures += 1
        # 2**n grows past any cap long before it overflows a float: bounded exponent.
        delay = min(self.initial_s * 2.0 ** min(self.failures - 1, 62), self.max_s)
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    def due(self, now: float) -> bool:
        """True when nothing failed, or the wait after the last failure is over."""
        return now >= self.retry_at

    def retry_in_s(self, now: float) -> float:
        return max(self.retry_at - now, 0.0) if self.failures else 0.0
