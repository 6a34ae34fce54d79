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

__all__ = ["StateConfig", "breaker_config", "cache_config", "window_days"]


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
            breaker=breaker_config(settings),
            cache=cache_config(settings),
            budget_daily_credits=settings.budget_daily_credits,
            budget_timezone=settings.budget_timezone,
            receipt_ttl_s=settings.receipt_ttl_s,
            receipt_max_entries=settings.receipt_max_entries,
            window_days=window_days(settings.waterfall),
        )


def breaker_config(settings: Settings) -> BreakerConfig:
    """The breaker thresholds from the ``STREAMPROC_BREAKER_*`` settings (also each
    waterfall member's own breaker)."""
    return BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
        half_open_probes=settings.breaker_half_open_probes,
    )


def cache_config(settings: Settings) -> CacheConfig:
    """The cache's rules from the ``STREAMPROC_CACHE_*`` settings (``*``: every field)."""
    fields = None if settings.cache_fields == ("*",) else frozenset(settings.cache_fields)
    return CacheConfig(
        key=settings.cache_key,
        fields=fields,
        freemail_domains=frozenset(settings.cache_freemail_domains),
        ttl_s=settings.cache_ttl_s,
        max_entries=settings.cache_max_entries,
    )


def window_days(waterfall: dict[str, Any] | None) -> int:
    """The days the waterfall's order counts answers over (its ``adaptive.window_days``)."""
    adaptive = (waterfall or {}).get("adaptive")
    days = adaptive.get("window_days") if isinstance(adaptive, dict) else None
    if isinstance(days, int) and not isinstance(days, bool) and days >= 1:
        return days
    return Adaptive().window_days
