"""The codecs' narrow configuration: every field from its setting, no secret shown."""

from __future__ import annotations

import pytest

from streamproc.registry.config import CodecConfig, RegistryConnection
from streamproc.settings import RecordFormat, Settings


def test_every_field_comes_from_its_setting() -> None:
    """With every setting it reads away from its default, each field holds its setting's
    value, the mapping cannot be changed, and the registry password never shows."""
    settings = Settings.model_validate(
        {
            "input_format": "registry",
            "output_format": "registry",
            "lead_fields": {"lead_id": "/id"},
            "max_lead_bytes": 4096,
            "topic_raw": "r",
            "topic_enriched": "e",
            "schema_registry_url": "https://registry.example/v1",
            "schema_registry_username": "key-1",
            "schema_registry_password": "secret-9z8y",
            "schema_registry_timeout_s": 2.5,
        }
    )
    config = CodecConfig.from_settings(settings)
    assert (config.input_format, config.output_format) == (RecordFormat.REGISTRY,) * 2
    assert dict(config.lead_fields) == {"lead_id": "/id"}
    assert (config.max_lead_bytes, config.topic_raw, config.topic_enriched) == (4096, "r", "e")
    assert config.registry is not None
    assert config.registry.url == str(settings.schema_registry_url)
    assert config.registry.username == "key-1"
    assert config.registry.password is not None
    assert config.registry.password.get_secret_value() == "secret-9z8y"
    assert config.registry.timeout_s == 2.5
    assert "secret-9z8y" not in repr(config)
    with pytest.raises(TypeError):
        config.lead_fields["email"] = "/mail"  # type: ignore[index]


def test_no_registry_url_is_no_registry() -> None:
    """Without schema_registry_url there is no connection to build."""
    assert RegistryConnection.from_settings(Settings()) is None
    assert CodecConfig.from_settings(Settings()).registry is None
