"""The DLQ commands' narrow configuration: every field from its setting, no secret shown."""

from __future__ import annotations

import dataclasses

from streamproc.kafka.config import KafkaConnection
from streamproc.replay.config import ReplayConfig
from streamproc.replay.replayer import replayer_group, replayer_transactional_id
from streamproc.settings import Settings


def test_every_field_comes_from_its_setting() -> None:
    """With every setting it reads away from its default, each field holds its setting's
    value, the Kafka part is the clients' own, and no secret shows in its repr."""
    values = {
        "group_id": "enrich-eu",
        "topic_raw": "eu.raw",
        "topic_parked": "eu.parked",
        "topic_dlq": "eu.dlq",
        "credits_per_lead": 7,
        "http_host": "10.0.0.5",
    }
    settings = Settings.model_validate(
        {**values, "sasl_password": "saslpass-9a8b", "console_token": "tok-7c6d"}
    )
    defaults = Settings()
    config = ReplayConfig.from_settings(settings)
    read = {f.name for f in dataclasses.fields(ReplayConfig)} - {"kafka", "open_state"}
    assert read == set(values)
    for name in read:
        assert getattr(config, name) == getattr(settings, name), name
        assert getattr(settings, name) != getattr(defaults, name), name
    assert config.kafka == KafkaConnection.from_settings(settings)
    assert "saslpass-9a8b" not in repr(config)
    assert "tok-7c6d" not in repr(config)


def test_the_replayer_group_and_transactional_id_come_from_the_config() -> None:
    """``<group>-replayer``, and one transactional id per DLQ topic."""
    config = ReplayConfig.from_settings(Settings(group_id="g1", topic_dlq="t.dlq"))
    assert replayer_group(config) == "g1-replayer"
    assert replayer_transactional_id(config) == "g1-replayer.t.dlq"
