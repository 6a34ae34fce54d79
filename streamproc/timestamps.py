"""UTC timestamps as streamproc writes them: ISO 8601 ending in ``Z``.

DLQ headers, ``dlq stats``, replay filters, ``/status`` and error messages all use this one
form (``2026-11-26T03:00:00.123Z``), so the same moment reads the same everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["Timespec", "epoch_iso", "utc_iso"]

#: How much of the time is written (as :meth:`datetime.isoformat`'s ``timespec``).
Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]


def utc_iso(moment: datetime, timespec: Timespec = "seconds") -> str:
    """``moment`` (timezone-aware) in UTC: ``2026-11-26T03:00:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def epoch_iso(epoch_s: float, timespec: Timespec = "seconds") -> str:
    """Epoch seconds in UTC: ``2026-11-26T03:00:00Z``."""
    return utc_iso(datetime.fromtimestamp(epoch_s, UTC), timespec)
