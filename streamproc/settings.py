"""One typed, frozen settings model: env vars ``STREAMPROC_*``, an optional TOML file, CLI flags.

Precedence (highest first): CLI flags, environment, ``--config`` TOML file, defaults.
A bad value is reported as one line naming the setting (see :func:`load_settings`).
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamproc.errors import ConfigError

__all__ = ["BreakerPolicy", "BudgetPolicy", "SecurityProtocol", "Settings", "load_settings"]


class BreakerPolicy(StrEnum):
    HOLD = "hold"
    DLQ = "dlq"


class BudgetPolicy(StrEnum):
    DLQ = "dlq"
    HOLD = "hold"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class Settings(BaseSettings):
    """Everything streamproc can be told. Names carry their units (``_s``, ``_ms``, ``_bytes``)."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMPROC_", frozen=True, extra="forbid", validate_default=True
    )

    # --- Kafka ---------------------------------------------------------------------------
    bootstrap_servers: str = "localhost:9092"
    group_id: str = Field("streamproc", min_length=1)
    topic_raw: str = Field("leads.raw", min_length=1)
    topic_enriched: str = Field("leads.enriched", min_length=1)
    topic_dlq: str = Field("leads.dlq", min_length=1)
    topic_parked: str = Field("leads.parked", min_length=1)
    topic_state: str = Field("streamproc.state", min_length=1)
    #: Partitions `topics create` gives the lead topics; the state topic gets as many.
    topic_partitions: int = Field(6, ge=1, le=10_000)
    topic_replication_factor: int = Field(1, ge=1, le=32)
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    sasl_mechanism: SaslMechanism = SaslMechanism.PLAIN
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: How long start-up waits for Kafka to answer before failing with a clear message.
    kafka_connect_timeout_s: float = Field(10.0, gt=0, le=600)
    #: Kafka's transaction timeout; a batch not committed by then is aborted by the broker.
    transaction_timeout_ms: int = Field(60_000, ge=1_000, le=900_000)

    # --- provider ------------------------------------------------------------------------
    provider_url: AnyHttpUrl | None = None
    provider_api_key: SecretStr | None = None
    #: Header that carries the API key; ``Authorization`` gets a ``Bearer`` prefix.
    provider_auth_header: str = "Authorization"
    provider_timeout_s: float = Field(10.0, gt=0, le=600)
    provider_max_retries: int = Field(3, ge=0, le=20)
    #: First backoff step; doubles per retry, with full jitter, capped at the max.
    provider_backoff_base_s: float = Field(0.2, ge=0, le=60)
    provider_backoff_max_s: float = Field(10.0, ge=0, le=600)
    credits_per_lead: int = Field(6, ge=0, le=1_000_000)

    # --- resilience ----------------------------------------------------------------------
    budget_daily_credits: int = Field(500, ge=0)
    #: IANA zone whose midnight resets the budget.
    budget_timezone: str = "UTC"
    breaker_failure_threshold: int = Field(5, ge=1, le=10_000)
    breaker_window_s: float = Field(60.0, gt=0)
    breaker_cooldown_s: float = Field(900.0, ge=0)
    breaker_half_open_probes: int = Field(1, ge=1, le=1_000)
    on_breaker_open: BreakerPolicy = BreakerPolicy.HOLD
    on_budget_exhausted: BudgetPolicy = BudgetPolicy.DLQ
    health_window_s: float = Field(300.0, gt=0)
    cache_ttl_s: float = Field(7 * 24 * 3600.0, ge=0)
    fallback_enabled: bool = False

    # --- processing ----------------------------------------------------------------------
    max_in_flight: int = Field(256, ge=1, le=100_000)
    max_in_flight_per_partition: int = Field(256, ge=1, le=100_000)
    commit_interval_ms: int = Field(200, ge=10, le=60_000)
    #: Leads over this size are `invalid_payload`; 1 MiB is Kafka's default message cap.
    max_lead_bytes: int = Field(1_048_576, ge=64)
    shutdown_grace_s: float = Field(30.0, ge=0)
    #: How long a revoked partition's leads in flight may finish before the rebalance goes
    #: on; leads still running then are cancelled and read again by the next owner.
    revoke_grace_s: float = Field(10.0, ge=0, le=300)

    # --- operations ----------------------------------------------------------------------
    http_host: str = "0.0.0.0"
    http_port: int = Field(8080, ge=0, le=65_535)
    log_level: str = "INFO"
    #: ``json``, ``console`` or ``auto`` (console on a TTY).
    log_format: str = "auto"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in {"json", "console", "auto"}:
            raise ValueError("must be json, console or auto")
        return value

    @field_validator("budget_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as UTC or Europe/Berlin") from None
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not (value.is_file() and _readable(value)):
            raise ValueError(f"cannot read file {value}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.provider_backoff_max_s < self.provider_backoff_base_s:
            raise ValueError("provider_backoff_max_s must be >= provider_backoff_base_s")
        sasl = self.security_protocol in (
            SecurityProtocol.SASL_SSL,
            SecurityProtocol.SASL_PLAINTEXT,
        )
        if sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                "security_protocol SASL_* needs STREAMPROC_SASL_USERNAME and "
                "STREAMPROC_SASL_PASSWORD"
            )
        return self

    def require_provider(self) -> AnyHttpUrl:
        """The provider URL, or a ConfigError saying how to set it."""
        if self.provider_url is None:
            raise ConfigError(
                "provider_url is not set: set STREAMPROC_PROVIDER_URL or --provider-url "
                "(e.g. http://127.0.0.1:8099/enrich from `streamproc mock-provider`)"
            )
        return self.provider_url


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, turning any validation error into one ``ConfigError`` line.

    ``overrides`` are CLI flags (``None`` means "not given"); they win over the environment,
    which wins over the TOML file.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"--config: cannot read {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {config_file} is not valid TOML: {exc}") from None
        file_values = file_values.get("streamproc", file_values)
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        env_and_defaults = Settings()
        merged: dict[str, Any] = {}
        merged.update(file_values)
        # Values that came from the environment win over the file.
        merged.update({k: getattr(env_and_defaults, k) for k in env_and_defaults.model_fields_set})
        merged.update(given)
        return Settings.model_validate(merged) if (file_values or given) else env_and_defaults
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"]) or "settings"
    msg = str(err["msg"]).removeprefix("Value error, ")
    env = f"STREAMPROC_{loc.upper()}" if err["loc"] else "settings"
    if err["type"] == "extra_forbidden":
        return f"unknown setting {loc!r}: see `streamproc config show` for the known ones"
    return f"invalid setting {loc} ({env}): {msg}"
