"""One typed, frozen settings model: env vars ``STREAMPROC_*``, an optional TOML file, CLI flags.

Precedence (highest first): CLI flags, environment, ``--config`` TOML file, defaults.
A bad value is reported as one line naming the setting (see :func:`load_settings`).
"""

from __future__ import annotations

import json
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streamproc.errors import ConfigError

__all__ = [
    "DEFAULT_CACHE_FIELDS",
    "DEFAULT_FREEMAIL_DOMAINS",
    "BreakerPolicy",
    "BudgetPolicy",
    "CacheKey",
    "CallbackAuth",
    "ProviderMode",
    "SecurityProtocol",
    "Settings",
    "load_settings",
]


class BreakerPolicy(StrEnum):
    HOLD = "hold"
    DLQ = "dlq"


class BudgetPolicy(StrEnum):
    DLQ = "dlq"
    HOLD = "hold"


class ProviderMode(StrEnum):
    """``sync``: request/response provider (``provider_url``); ``clay``: Clay's webhook +
    callback protocol (``clay_*`` settings, :mod:`streamproc.clay`)."""

    SYNC = "sync"
    CLAY = "clay"


class CallbackAuth(StrEnum):
    """How a Clay callback proves it is Clay's: the shared secret itself in a header, or
    an HMAC-SHA256 of the raw body keyed with it (the secret never travels)."""

    HEADER = "header"
    HMAC = "hmac"


class CacheKey(StrEnum):
    """What leads share a cached answer: a company's (``domain``), a person's (``email``)."""

    DOMAIN = "domain"
    EMAIL = "email"
    OFF = "off"


#: Company-level fields under the names enrichment providers commonly use (the mock's
#: ``company``, ``domain``, ``employees``, ``industry`` among them): what every person of
#: one company has in common. Nothing here describes a person.
DEFAULT_CACHE_FIELDS: tuple[str, ...] = (
    "company",
    "company_name",
    "domain",
    "website",
    "industry",
    "employees",
    "employee_count",
    "company_size",
    "revenue",
    "annual_revenue",
    "country",
    "hq_country",
    "hq_city",
    "founded_year",
    "technologies",
)

#: Mailbox providers whose domain says nothing about a company (subdomains included).
#: Not exhaustive; ``cache_freemail_domains`` replaces it.
DEFAULT_FREEMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "ymail.com",
    "rocketmail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.de",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "mail.com",
    "zoho.com",
    "fastmail.com",
    "tutanota.com",
    "hey.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "rediffmail.com",
)


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
    #: How long the consumer may go without polling before the group drops it. The fetch
    #: loop keeps polling (with held partitions paused) through any hold, so this bounds a
    #: stuck event loop, not a long breaker cooldown or an exhausted budget.
    max_poll_interval_ms: int = Field(300_000, ge=1_000, le=3_600_000)

    # --- provider ------------------------------------------------------------------------
    provider_url: AnyHttpUrl | None = None
    provider_api_key: SecretStr | None = None
    #: Header that carries the API key; ``Authorization`` gets a ``Bearer`` prefix.
    provider_auth_header: str = "Authorization"
    provider_timeout_s: float = Field(10.0, gt=0, le=600)
    #: ``aiohttp`` (httpx-aiohttp's transport under httpx; the faster, see bench/) or
    #: ``httpx`` (httpx's own transport).
    provider_http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    provider_max_retries: int = Field(3, ge=0, le=20)
    #: First backoff step; doubles per retry, with full jitter, capped at the max.
    provider_backoff_base_s: float = Field(0.2, ge=0, le=60)
    provider_backoff_max_s: float = Field(10.0, ge=0, le=600)
    #: Longest wait a provider's ``Retry-After`` may ask for (sync provider and Clay
    #: submitter alike): a longer one is cut to this, so one ``Retry-After: 86400`` cannot
    #: pause every call for a day. A lead waiting out a Retry-After keeps its place in the
    #: window; 60 s is the wait the client capped it at before this setting existed.
    provider_retry_after_max_s: float = Field(60.0, ge=0, le=86_400)
    credits_per_lead: int = Field(6, ge=0, le=1_000_000)
    provider_mode: ProviderMode = ProviderMode.SYNC

    # --- Clay mode (provider_mode = clay; see streamproc.clay) -----------------------------
    #: Clay table webhooks, used in order; comma-separated in env and flags. The submitter
    #: moves to the next one before the current one reaches ``clay_webhook_row_limit``.
    clay_webhook_urls: Annotated[tuple[AnyHttpUrl, ...], NoDecode] = ()
    #: Sent as ``x-clay-webhook-auth`` on every webhook row.
    clay_webhook_auth_token: SecretStr | None = None
    #: Rows Clay accepts per webhook in its lifetime.
    clay_webhook_row_limit: int = Field(50_000, ge=1)
    #: A webhook is left this many rows before its limit: other instances' submissions in
    #: flight are not in our counts yet, and a crash may lose the last count update.
    clay_webhook_headroom_rows: int = Field(100, ge=0)
    #: Share of the last webhook's rows after which the capacity alert fires.
    clay_webhook_alert_ratio: float = Field(0.9, gt=0, le=1)
    #: Clay's documented pace: 10 rows/s sustained, bursts of 20.
    clay_rate_per_s: float = Field(10.0, gt=0, le=100_000)
    clay_burst: int = Field(20, ge=1, le=100_000)
    #: Leads between their webhook turn and their submission at once, in arrival order: a
    #: submitted lead's pending record commits within about this / clay_rate_per_s seconds.
    clay_submit_concurrency: int = Field(20, ge=1, le=10_000)
    #: How long a submitted lead waits for its callback before it is a provider_timeout.
    clay_deadline_s: float = Field(900.0, gt=0)
    clay_callback_path: str = "/clay/callback"
    #: ``header`` (the default) is what a Clay HTTP API column can send: a static header.
    #: ``hmac`` needs a signer in between (a proxy, or a Clay function) and never puts the
    #: secret on the wire.
    clay_callback_auth: CallbackAuth = CallbackAuth.HEADER
    clay_callback_secret: SecretStr | None = None
    #: Header with the secret (``header``) or the body's ``sha256=<hex>`` HMAC (``hmac``).
    clay_callback_auth_header: str = "X-Streamproc-Callback-Auth"
    #: Callbacks larger than this are refused with 413 before they are parsed.
    clay_callback_max_bytes: int = Field(262_144, ge=1_024, le=16_777_216)
    #: A callback may beat the commit of its lead's pending record (Clay can be fast):
    #: it waits this long for the lead to appear before it is answered 404.
    clay_callback_wait_s: float = Field(10.0, ge=0, le=300)
    #: A pending lead submitted by another (possibly dead) instance is swept this long after
    #: its deadline; the submitter's own sweep comes first and nobody races it.
    clay_orphan_grace_s: float = Field(60.0, ge=0)
    clay_sweep_interval_s: float = Field(1.0, gt=0, le=60)

    # --- resilience ----------------------------------------------------------------------
    #: The daily limit and the IANA zone whose midnight ends a budget day. They are the
    #: group's per day: the first instance to open a day records its own in the claims log
    #: and every instance follows them that day (a change takes effect the next day).
    budget_daily_credits: int = Field(500, ge=0)
    budget_timezone: str = "UTC"
    #: Leads' worth of credits a process claims from the group's budget at once (a lease;
    #: see streamproc.resilience.lease). 1 claims per lead: the exact, slow way.
    budget_claim_leads: int = Field(50, ge=1, le=100_000)
    #: A lease is also cut to this share of the day's limit (at least one lead): a process
    #: killed with its lease open strands that lease until the day ends, so 2% keeps a
    #: crash's cost small, and with a large budget a lease is still budget_claim_leads.
    budget_lease_max_share: float = Field(0.02, gt=0, le=1)
    #: A lease is closed after this long and its unused credits given back.
    budget_claim_max_age_s: float = Field(2.0, gt=0, le=3600)
    breaker_failure_threshold: int = Field(5, ge=1, le=10_000)
    breaker_window_s: float = Field(60.0, gt=0)
    breaker_cooldown_s: float = Field(900.0, ge=0)
    breaker_half_open_probes: int = Field(1, ge=1, le=1_000)
    on_breaker_open: BreakerPolicy = BreakerPolicy.HOLD
    on_budget_exhausted: BudgetPolicy = BudgetPolicy.DLQ
    health_window_s: float = Field(300.0, gt=0)
    #: 0 turns the cache off; expired entries are tombstoned in the state topic.
    cache_ttl_s: float = Field(7 * 24 * 3600.0, ge=0)
    #: Which leads share a cached answer: ``domain`` (a company's), ``email`` (a person's)
    #: or ``off``. See streamproc.processing.cache.
    cache_key: CacheKey = CacheKey.DOMAIN
    #: The top-level enrichment fields a cached answer may carry, comma-separated; ``*``
    #: is every field. The default is company-level only: a cached answer never carries
    #: another person's title, phone or LinkedIn URL.
    cache_fields: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CACHE_FIELDS
    #: Domains (and their subdomains) never cached by domain: their leads share a mailbox
    #: provider, not a company. Comma-separated; setting it replaces the built-in list.
    cache_freemail_domains: Annotated[tuple[str, ...], NoDecode] = DEFAULT_FREEMAIL_DOMAINS
    #: Cache entries kept in memory per process (least recently used go first); at a few
    #: hundred bytes each, the default stays in the tens of MB.
    cache_max_entries: int = Field(100_000, ge=0)
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

    @field_validator("clay_webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        """Comma-separated (or a JSON array, as a TOML-minded tool may write it)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return tuple(json.loads(text))
                except ValueError:
                    raise ValueError("must be comma-separated URLs or a JSON array") from None
            return tuple(part for part in text.replace("\n", ",").split(",") if part.strip())
        return value

    @field_validator("cache_fields", "cache_freemail_domains", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        """Comma-separated (or a JSON array); blanks dropped, each name stripped."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("must be comma-separated names or a JSON array") from None
            else:
                value = text.replace("\n", ",").split(",")
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(v.strip() for v in value if v.strip())
        return value

    @field_validator("cache_fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one field (cache_key=off turns the cache off)")
        if "*" in value and value != ("*",):
            raise ValueError("'*' (every field) stands alone")
        return tuple(dict.fromkeys(value))

    @field_validator("cache_freemail_domains")
    @classmethod
    def _domain_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(v.lower().rstrip(".") for v in value))
        bad = [n for n in names if not n or "@" in n or "/" in n or " " in n]
        if bad:
            raise ValueError(f"not a domain: {bad[0]!r} (e.g. gmail.com)")
        return names

    @field_validator("clay_callback_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/metrics", "/healthz", "/readyz", "/status"):
            raise ValueError(
                "must be an absolute path not used by the ops server, e.g. /clay/callback"
            )
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
        if self.provider_mode is ProviderMode.CLAY:
            if not self.clay_webhook_urls:
                raise ValueError(
                    "provider_mode clay needs STREAMPROC_CLAY_WEBHOOK_URLS (comma-separated)"
                )
            if len({str(url) for url in self.clay_webhook_urls}) != len(self.clay_webhook_urls):
                raise ValueError("clay_webhook_urls lists a webhook twice")
            if (
                self.clay_callback_secret is None
                or not self.clay_callback_secret.get_secret_value()
            ):
                raise ValueError(
                    "provider_mode clay needs STREAMPROC_CLAY_CALLBACK_SECRET: the callback "
                    "receiver never runs unauthenticated"
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
