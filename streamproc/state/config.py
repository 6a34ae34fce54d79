"""What the group's state reads of the settings, taken once: :class:`StateConfig`.

The state fold (:class:`~streamproc.state.group_state.GroupState`), the state view and
``state show`` get this small frozen object, not the whole
:class:`~streamproc.settings.Settings` (the providers' keys and the console's tokens
included): the guard, the replayer's safety check, the console and ``spending`` all build
their reader of the state topic from it. The settings stay the one flat environment
surface; each field is the setting of the same name, whose description is its
documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamproc.kafka.config import KafkaConnection
from streamproc.resilience.breaker import BreakerConfig
from streamproc.resilience.cache import CacheConfig
from streamproc.settings import Settings
from streamproc.waterfall.config import Adaptive

__all__ = ["StateConfig", "window_days"]


@dataclass(frozen=True, slots=True)
class StateConfig:
    """The Kafka connection and the state topic; the breaker, cache, budget and receipt
    rules the fold applies; the days the waterfall's answer counts cover."""

    kafka: KafkaConnection
    topic_state: str
    breaker: BreakerConfig
    cache: CacheConfig
    budget_daily_credits: int
    budget_timezone: str
    receipt_ttl_s: float
    receipt_max_entries: int
    #: The waterfall's ``adaptive.window_days``: the days ``state show``'s counts cover.
    window_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StateConfig:
        """The state's part of ``settings``."""
        return cls(
            kafka=KafkaConnection.from_settings(settings),
            topic_state=settings.topic_state,
            breaker=BreakerConfig.from_settings(settings),
            cache=CacheConfig.from_settings(settings),
            budget_daily_credits=settings.budget_daily_credits,
            budget_timezone=settings.budget_timezone,
            receipt_ttl_s=settings.receipt_ttl_s,
            receipt_max_entries=settings.receipt_max_entries,
            window_days=window_days(settings.waterfall),
        )


def window_days(waterfall: dict[str, Any] | None) -> int:
    """The days the waterfall's order counts answers over (its ``adaptive.window_days``)."""
    adaptive = (waterfall or {}).get("adaptive")
    days = adaptive.get("window_days") if isinstance(adaptive, dict) else None
    if isinstance(days, int) and not isinstance(days, bool) and days >= 1:
        return days
    return Adaptive().window_days
