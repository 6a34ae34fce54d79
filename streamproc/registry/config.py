"""What the lead codecs and the registry client read of the settings, taken once:
:class:`CodecConfig` and :class:`RegistryConnection`.

The codecs get these small frozen objects from ``app.py``, not the whole
:class:`~streamproc.settings.Settings` (the providers' keys and the Kafka password
included): a reader sees what decoding and encoding a lead depend on, and a test builds
one without the 100 other fields. The settings stay the one flat environment surface;
each field is the setting of the same name (``schema_registry_`` dropped in
:class:`RegistryConnection`), whose description is its documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import SecretStr

from streamproc.settings import RecordFormat, Settings

__all__ = ["CodecConfig", "RegistryConnection"]


@dataclass(frozen=True, slots=True)
class RegistryConnection:
    """Where the schema registry is, the basic-auth credentials, one request's bound."""

    url: str
    username: str | None
    password: SecretStr | None
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConnection | None:
        """The registry client's part of ``settings``; None without a registry URL."""
        if settings.schema_registry_url is None:
            return None
        return cls(
            url=str(settings.schema_registry_url),
            username=settings.schema_registry_username,
            password=settings.schema_registry_password,
            timeout_s=settings.schema_registry_timeout_s,
        )


@dataclass(frozen=True, slots=True)
class CodecConfig:
    """The record formats in and out, the lead field mapping, the size bound, the topics
    whose ``-value`` subjects the registry codec uses, and the registry itself."""

    input_format: RecordFormat
    output_format: RecordFormat
    #: ``lead_fields``: a lead field's path in the user's record (read-only).
    lead_fields: Mapping[str, str]
    max_lead_bytes: int
    topic_raw: str
    topic_enriched: str
    #: None without ``schema_registry_url``.
    registry: RegistryConnection | None

    @classmethod
    def from_settings(cls, settings: Settings) -> CodecConfig:
        """The codecs' part of ``settings``."""
        return cls(
            input_format=settings.input_format,
            output_format=settings.output_format,
            lead_fields=MappingProxyType(dict(settings.lead_fields)),
            max_lead_bytes=settings.max_lead_bytes,
            topic_raw=settings.topic_raw,
            topic_enriched=settings.topic_enriched,
            registry=RegistryConnection.from_settings(settings),
        )
