"""The state's narrow configuration: every field from its setting, no secret shown."""

from __future__ import annotations

import dataclasses

from streamproc.kafka.config import KafkaConnection
from streamproc.resilience.breaker import BreakerConfig
from streamproc.settings import DEFAULT_CACHE_FIELDS, CacheKey, Settings
from streamproc.state.config import StateConfig, breaker_config, cache_config
from streamproc.state.group_state import GroupState

#: StateConfig fields read from the setting of the same name.
SAME_NAME = {
    "topic_state": "eu.state",
    "budget_daily_credits": 1234,
    "budget_timezone": "Europe/Paris",
    "receipt_ttl_s": 77.0,
    "receipt_max_entries": 4321,
}


def test_every_field_comes_from_its_setting() -> None:
    """With every setting it reads away from its default, each field holds its setting's
    value, the breaker, cache and Kafka parts are their own configs', and no secret shows
    in its repr."""
    settings = Settings.model_validate(
        {
            **SAME_NAME,
            "breaker_failure_threshold": 9,
            "cache_ttl_s": 99.0,
            "waterfall": {
                "adaptive": {"window_days": 11},
                "providers": {"p": {"url": "https://p.example/x"}},
                "steps": [{"provider": "p"}],
            },
            "sasl_password": "saslpass-5e6f",
            "console_token": "tok-7a8b",
        }
    )
    defaults = Settings()
    config = StateConfig.from_settings(settings)
    assert {f.name for f in dataclasses.fields(StateConfig)} - set(SAME_NAME) == {
        "kafka",
        "breaker",
        "cache",
        "window_days",
    }
    for name in SAME_NAME:
        assert getattr(config, name) == getattr(settings, name), name
        assert getattr(settings, name) != getattr(defaults, name), name
    assert config.kafka == KafkaConnection.from_settings(settings)
    assert config.breaker == breaker_config(settings)
    assert config.breaker.failure_threshold == 9
    assert config.cache == cache_config(settings)
    assert config.cache.ttl_s == 99.0
    assert config.window_days == 11
    assert StateConfig.from_settings(defaults).window_days != 11
    assert "saslpass-5e6f" not in repr(config)
    assert "tok-7a8b" not in repr(config)


def test_the_fold_takes_its_limits_from_the_config() -> None:
    """A reader built from the config has the config's daily limit, time zone and receipt
    bounds."""
    settings = Settings.model_validate(SAME_NAME)
    view = GroupState.reader(StateConfig.from_settings(settings), clock=lambda: 1_796_640_000.0)
    budget = view.status().budget
    assert (budget.limit, budget.timezone) == (1234, "Europe/Paris")
    assert view.cache.config == cache_config(settings)
    assert view.breaker.config == breaker_config(settings)


def test_the_cache_rules_come_from_the_cache_settings() -> None:
    """Settings map onto the cache's own config; '*' means every field."""
    config = cache_config(
        Settings(cache_key="email", cache_fields="*", cache_freemail_domains="corp.example")
    )
    assert config.key is CacheKey.EMAIL
    assert config.fields is None
    assert config.freemail_domains == frozenset({"corp.example"})
    default = cache_config(Settings())
    assert default.key is CacheKey.DOMAIN
    assert default.fields == frozenset(DEFAULT_CACHE_FIELDS)
    assert "gmail.com" in default.freemail_domains


def test_the_breaker_reads_the_breaker_settings() -> None:
    """The breaker reads the documented STREAMPROC_BREAKER_* settings."""
    config = breaker_config(
        Settings(
            breaker_failure_threshold=7,
            breaker_window_s=30.0,
            breaker_cooldown_s=120.0,
            breaker_half_open_probes=3,
        )
    )
    assert config == BreakerConfig(7, 30.0, 120.0, 3)
