"""The handler's and the guard's narrow configurations: every field from its setting."""

from __future__ import annotations

import dataclasses

from streamproc.kafka.config import KafkaConnection
from streamproc.processing.config import (
    GuardConfig,
    HandlerConfig,
    LeaseConfig,
    PacingConfig,
    ProcessorConfig,
)
from streamproc.processing.guard import ResilienceGuard
from streamproc.settings import BreakerPolicy, BudgetPolicy, Settings


def test_the_handler_reads_its_four_settings() -> None:
    """With each setting away from its default, each field holds its setting's value."""
    values = {
        "topic_enriched": "eu.enriched",
        "topic_dlq": "eu.dlq",
        "max_lead_bytes": 4096,
        "hold_max_age_s": 12.5,
    }
    settings = Settings.model_validate(values)
    config = HandlerConfig.from_settings(settings)
    assert dataclasses.asdict(config) == values
    defaults = dataclasses.asdict(HandlerConfig.from_settings(Settings()))
    assert all(defaults[name] != value for name, value in values.items())


def test_the_guard_reads_its_policies_its_lease_and_its_price() -> None:
    """Policies, hold age, fallback and health window from their settings; the lease and
    price as the claimant computes them; the state view built of the same settings."""
    settings = Settings.model_validate(
        {
            "on_breaker_open": "dlq",
            "on_budget_exhausted": "dlq",
            "hold_max_age_s": 12.5,
            "fallback_enabled": True,
            "health_window_s": 33.0,
            "budget_daily_credits": 777,
            "provider": "declarative",
            "provider_declarative": {"credits_per_match": 2},
        }
    )
    config = GuardConfig.from_settings(settings)
    assert config.on_breaker_open is BreakerPolicy.DLQ
    assert config.on_budget_exhausted is BudgetPolicy.DLQ
    assert (config.hold_max_age_s, config.fallback_enabled) == (12.5, True)
    assert config.health_window_s == 33.0
    assert config.lease == LeaseConfig.from_settings(settings)
    assert config.price == 2
    guard = ResilienceGuard(config, clock=lambda: 1_764_158_400.0, owner="unit")
    assert guard.status().to_dict()["budget"]["limit"] == 777


def test_the_processor_reads_its_settings_and_the_clients_connection() -> None:
    """Each ProcessorConfig field holds the setting of its name; the Kafka part is the
    clients' own."""
    settings = Settings.model_validate(
        {
            "group_id": "enrich-eu",
            "max_in_flight": 64,
            "max_in_flight_per_partition": 8,
            "commit_interval_ms": 250,
            "lane_open_timeout_s": 7.0,
            "lane_retry_initial_s": 0.5,
            "lane_retry_max_s": 9.0,
            "stall_after_s": 45.0,
            "revoke_grace_s": 3.0,
            "shutdown_grace_s": 11.0,
            "start_offset": "earliest",
            "deferral_window": 5,
        }
    )
    config = ProcessorConfig.from_settings(settings)
    for field in dataclasses.fields(ProcessorConfig):
        if field.name == "kafka":
            assert config.kafka == KafkaConnection.from_settings(settings)
        else:
            assert getattr(config, field.name) == getattr(settings, field.name), field.name


def test_the_pacing_reads_its_bands_price_and_deferral_age() -> None:
    """Each PacingConfig field holds the setting of its name, the deferral topics one per
    band when pacing is on."""
    settings = Settings.model_validate(
        {
            "pacing_enabled": True,
            "priority_default_score": 4.0,
            "pacing_band_edges": (5.0, 50.0),
            "credits_per_lead": 3,
            "deferral_max_age_s": 900.0,
        }
    )
    config = PacingConfig.from_settings(settings)
    for field in dataclasses.fields(PacingConfig):
        assert getattr(config, field.name) == getattr(settings, field.name), field.name
    assert len(config.deferral_topics) == 3
