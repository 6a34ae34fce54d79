"""The Kafka clients' narrow configuration: every field from its setting (that the client
factories never name the whole settings: tests/unit/test_narrow_configs.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from streamproc.kafka.config import KafkaConnection
from streamproc.settings import SaslMechanism, SecurityProtocol, Settings

#: KafkaConnection fields whose setting has another name.
RENAMED = {"connect_timeout_s": "kafka_connect_timeout_s"}


def test_every_field_comes_from_its_setting(tmp_path: Path) -> None:
    """With every setting it reads away from its default, each field holds its setting's
    value, and no secret shows in its repr."""
    pem = tmp_path / "x.pem"
    pem.write_text("not read here")
    settings = Settings.model_validate(
        {
            "bootstrap_servers": "b1.example:9093,b2.example:9093",
            "security_protocol": "SASL_SSL",
            "ssl_cafile": pem,
            "ssl_certfile": pem,
            "ssl_keyfile": pem,
            "ssl_key_password": "keypass-1d2e",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "enricher",
            "sasl_password": "saslpass-3f4a",
            "sasl_oauthbearer_token_url": "https://idp.example/token",
            "sasl_oauthbearer_client_id": "streamproc",
            "sasl_oauthbearer_client_secret": "oidc-5b6c",
            "sasl_oauthbearer_scope": "kafka",
            "sasl_oauthbearer_extensions": "logicalCluster=lkc-1",
            "sasl_aws_region": "eu-west-1",
            "sasl_aws_profile": "prod",
            "sasl_aws_role_arn": None,
            "kafka_connect_timeout_s": 3.5,
            "transaction_timeout_ms": 42_000,
            "max_poll_interval_ms": 600_000,
            "max_lead_bytes": 2_000_000,
        }
    )
    defaults = Settings()
    connection = KafkaConnection.from_settings(settings)
    for field in dataclasses.fields(KafkaConnection):
        setting = RENAMED.get(field.name, field.name)
        assert getattr(connection, field.name) == getattr(settings, setting), field.name
        if setting != "sasl_aws_role_arn":  # exclusive with the profile: left unset
            assert getattr(settings, setting) != getattr(defaults, setting), setting
    assert connection.sasl_in_use is SaslMechanism.SCRAM_SHA_512
    assert connection.security_protocol is SecurityProtocol.SASL_SSL
    for secret in ("keypass-1d2e", "saslpass-3f4a", "oidc-5b6c"):
        assert secret not in repr(connection)


def test_no_sasl_mechanism_is_in_use_without_a_sasl_protocol() -> None:
    """Under SSL the SASL mechanism set is ignored, as the settings model says."""
    connection = KafkaConnection.from_settings(
        Settings(security_protocol="PLAINTEXT", sasl_mechanism="SCRAM-SHA-256")
    )
    assert connection.sasl_in_use is None
