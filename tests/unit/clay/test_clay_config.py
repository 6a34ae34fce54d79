"""Clay mode's narrow configuration: every field from its setting, and the only parts of
streamproc/clay that see the whole settings are the ones that build it or Kafka clients."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from streamproc.clay.config import ClayConfig
from streamproc.kafka.config import KafkaConnection
from streamproc.provider.config import retry_policy
from streamproc.settings import CallbackAuth, Settings

CLAY = Path(__file__).resolve().parents[3] / "streamproc" / "clay"
#: ClayConfig fields whose setting is not ``clay_<field>``.
NOT_CLAY = {
    "topic_enriched": "topic_enriched",
    "topic_dlq": "topic_dlq",
    "credits_per_lead": "credits_per_lead",
    "timeout_s": "provider_timeout_s",
    "group_id": "group_id",
}


def test_every_field_comes_from_its_setting() -> None:
    """With every Clay setting away from its default, each field holds its setting's value;
    the retries are the provider_* retry settings."""
    settings = Settings.model_validate(
        {
            "provider_mode": "clay",
            "clay_webhook_urls": "https://a.example/h/1,https://a.example/h/2",
            "clay_webhook_auth_token": "token-7f3a",
            "clay_webhook_row_limit": 777,
            "clay_webhook_headroom_rows": 7,
            "clay_webhook_alert_ratio": 0.5,
            "clay_rate_per_s": 3.5,
            "clay_burst": 4,
            "clay_submit_concurrency": 9,
            "clay_deadline_s": 123,
            "clay_callback_auth": "hmac",
            "clay_callback_secret": "secret-9b2c",
            "clay_callback_auth_header": "x-mine",
            "clay_callback_max_bytes": 4096,
            "clay_callback_wait_s": 0.25,
            "clay_orphan_grace_s": 33,
            "clay_sweep_interval_s": 2,
            "topic_enriched": "out",
            "topic_dlq": "dead",
            "credits_per_lead": 11,
            "provider_timeout_s": 4,
            "provider_max_retries": 5,
            "group_id": "enrich-clay",
            "sasl_password": "saslpass-4d5e",
        }
    )
    config = ClayConfig.from_settings(settings)
    for field in dataclasses.fields(ClayConfig):
        if field.name in ("webhook_urls", "retry", "kafka"):
            continue
        setting = NOT_CLAY.get(field.name, f"clay_{field.name}")
        assert getattr(config, field.name) == getattr(settings, setting), field.name
    assert config.webhook_urls == ("https://a.example/h/1", "https://a.example/h/2")
    assert config.retry == retry_policy(settings)
    assert config.retry.max_retries == 5
    assert config.kafka == KafkaConnection.from_settings(settings)
    assert config.callback_auth is CallbackAuth.HMAC
    assert "token-7f3a" not in repr(config) and "secret-9b2c" not in repr(config)
    assert "saslpass-4d5e" not in repr(config)


def test_only_the_config_imports_the_settings_model() -> None:
    """Every other module of streamproc/clay reads a ClayConfig (or its own arguments, a
    KafkaConnection for the finisher's clients), never Settings."""
    readers = set()
    for path in sorted(CLAY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "streamproc.settings"
                and any(alias.name == "Settings" for alias in node.names)
            ):
                readers.add(path.stem)
    assert readers == {"config"}
