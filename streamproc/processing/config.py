"""What the processor, the lead handler and the resilience guard read of the settings,
taken once by ``app.py``: :class:`ProcessorConfig`, :class:`HandlerConfig`,
:class:`GuardConfig`.

They get these small frozen objects, not the whole
:class:`~streamproc.settings.Settings` (the providers' keys, the Kafka password and the
console's tokens included): a reader sees what a lead's path depends on, and a test builds
one without the 100 other fields. The settings stay the one flat environment surface;
each field is the setting of the same name, whose description is its documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.kafka.config import KafkaConnection
from streamproc.settings import BreakerPolicy, BudgetPolicy, Settings
from streamproc.state.config import StateConfig

__all__ = [
    "GuardConfig",
    "HandlerConfig",
    "LeaseConfig",
    "PacingConfig",
    "ProcessorConfig",
    "provider_price",
]


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """The Kafka connection, the group and its topics, the in-flight windows, the commit
    interval, and the timeouts and graces of lanes, rebalances and shutdown."""

    kafka: KafkaConnection
    group_id: str
    topic_raw: str
    topic_enriched: str
    topic_dlq: str
    topic_parked: str
    topic_state: str
    #: The pacing's deferral topics, read in the same group as ``topic_raw``.
    deferral_topics: tuple[str, ...]
    deferral_window: int
    start_offset: str
    max_in_flight: int
    max_in_flight_per_partition: int
    commit_interval_ms: int
    lane_open_timeout_s: float
    lane_retry_initial_s: float
    lane_retry_max_s: float
    stall_after_s: float
    revoke_grace_s: float
    shutdown_grace_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessorConfig:
        """The processor's part of ``settings``."""
        return cls(
            kafka=KafkaConnection.from_settings(settings),
            group_id=settings.group_id,
            topic_raw=settings.topic_raw,
            topic_enriched=settings.topic_enriched,
            topic_dlq=settings.topic_dlq,
            topic_parked=settings.topic_parked,
            topic_state=settings.topic_state,
            deferral_topics=settings.deferral_topics,
            deferral_window=settings.deferral_window,
            start_offset=settings.start_offset,
            max_in_flight=settings.max_in_flight,
            max_in_flight_per_partition=settings.max_in_flight_per_partition,
            commit_interval_ms=settings.commit_interval_ms,
            lane_open_timeout_s=settings.lane_open_timeout_s,
            lane_retry_initial_s=settings.lane_retry_initial_s,
            lane_retry_max_s=settings.lane_retry_max_s,
            stall_after_s=settings.stall_after_s,
            revoke_grace_s=settings.revoke_grace_s,
            shutdown_grace_s=settings.shutdown_grace_s,
        )


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """The output topics, the cap on a lead's size, and how long a lead may wait."""

    topic_enriched: str
    topic_dlq: str
    max_lead_bytes: int
    #: Also bounds a lead's wait for the schema registry to answer again.
    hold_max_age_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HandlerConfig:
        """The handler's part of ``settings``."""
        return cls(
            topic_enriched=settings.topic_enriched,
            topic_dlq=settings.topic_dlq,
            max_lead_bytes=settings.max_lead_bytes,
            hold_max_age_s=settings.hold_max_age_s,
        )


@dataclass(frozen=True, slots=True)
class PacingConfig:
    """What the handler's priority and pacing object reads: the score of a lead the
    expression fails on, the score bands and their deferral topics, the price a lead
    reserves, and how long a lead may stay deferred."""

    priority_default_score: float
    pacing_band_edges: tuple[float, ...]
    #: One per band, lowest first (none unless pacing is enabled).
    deferral_topics: tuple[str, ...]
    credits_per_lead: int
    deferral_max_age_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PacingConfig:
        """The pacing's part of ``settings``."""
        return cls(
            priority_default_score=settings.priority_default_score,
            pacing_band_edges=settings.pacing_band_edges,
            deferral_topics=settings.deferral_topics,
            credits_per_lead=settings.credits_per_lead,
            deferral_max_age_s=settings.deferral_max_age_s,
        )


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """The claimant's own settings: credits per call, the day's limit, lease sizes."""

    estimate: int
    daily_limit: int
    timezone: str
    leads_per_lease: int
    max_share: float
    max_age_s: float
    #: False (Clay): a closed lease is settled once idle too; its claim goes to the lead.
    settle_when_closed: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> LeaseConfig:
        clay = settings.provider_mode == "clay"
        price = provider_price(settings)
        return cls(
            estimate=settings.credits_per_lead if price is None else price,
            daily_limit=settings.budget_daily_credits,
            timezone=settings.budget_timezone,
            # Clay keeps each lead's claim with its pending record: one lead per claim there.
            leads_per_lease=1 if clay else settings.budget_claim_leads,
            max_share=settings.budget_lease_max_share,
            max_age_s=settings.budget_claim_max_age_s,
            settle_when_closed=not clay,
        )


def provider_price(settings: Settings) -> int | None:
    """The provider's own fixed price per lead, when its configuration says it: the
    declarative provider's ``credits_per_match`` (unless a ``credits`` expression reads the
    charge from each answer). None: only ``credits_per_lead``'s estimate is known."""
    if settings.waterfall:
        # A waterfall lead reserves credits_per_lead once for all its providers (the
        # ceiling): a lead cut short books all of it, never one provider's average.
        return settings.credits_per_lead
    table = settings.provider_declarative
    if settings.provider != "declarative" or not table or table.get("credits") is not None:
        return None
    price = table.get("credits_per_match")
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        return None
    return price


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """What the guard does when the breaker is open or the budget spent, how long a lead
    may be held, the health window, the claimant's lease sizes and the provider's price."""

    on_breaker_open: BreakerPolicy
    on_budget_exhausted: BudgetPolicy
    hold_max_age_s: float
    fallback_enabled: bool
    health_window_s: float
    lease: LeaseConfig
    #: The provider's own fixed price per lead, if known (``claimant.provider_price``).
    price: int | None
    #: The group's state the guard folds and drives (breaker, budget, cache, receipts).
    state: StateConfig

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardConfig:
        """The guard's part of ``settings``."""
        return cls(
            on_breaker_open=settings.on_breaker_open,
            on_budget_exhausted=settings.on_budget_exhausted,
            hold_max_age_s=settings.hold_max_age_s,
            fallback_enabled=settings.fallback_enabled,
            health_window_s=settings.health_window_s,
            lease=LeaseConfig.from_settings(settings),
            price=provider_price(settings),
            state=StateConfig.from_settings(settings),
        )
