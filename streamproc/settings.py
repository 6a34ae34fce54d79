"""One typed, frozen settings model: env vars ``STREAMPROC_*``, an optional TOML file, CLI flags.

Precedence (highest first): CLI flags, environment, ``--config`` TOML file, defaults.
A bad value is reported as one line naming the setting (see :func:`load_settings`).
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import tomllib
from collections.abc import Mapping
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
from streamproc.fieldpaths import parse_path
from streamproc.timestamps import Clock

__all__ = [
    "DEFAULT_CACHE_FIELDS",
    "DEFAULT_FREEMAIL_DOMAINS",
    "ENV_PREFIX",
    "FILE_SUFFIX",
    "LEAD_FIELD_NAMES",
    "SECRET_FIELDS",
    "BreakerPolicy",
    "BudgetPolicy",
    "CacheKey",
    "CallbackAuth",
    "ProviderMode",
    "RecordFormat",
    "SaslMechanism",
    "SecurityProtocol",
    "Settings",
    "load_settings",
    "sasl_extensions",
]


#: Every setting is the environment variable ``STREAMPROC_<NAME>``.
ENV_PREFIX = "STREAMPROC_"
#: ``STREAMPROC_<SECRET>_FILE`` names a file that holds the secret (a container secret).
FILE_SUFFIX = "_FILE"
#: Variables of the test suite that share the prefix (CI exports
#: ``STREAMPROC_TEST_BOOTSTRAP``): not settings, and not a typo of one.
_NOT_SETTINGS = "STREAMPROC_TEST_"


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


class RecordFormat(StrEnum):
    """How records are written: plain JSON, or a schema registry's wire format (magic byte 0,
    4-byte schema id, an Avro or JSON Schema payload; docs/schema-registry.md)."""

    JSON = "json"
    REGISTRY = "registry"


#: The lead's fields, which ``lead_fields`` may map (``Lead`` in streamproc.records.lead;
#: a unit test keeps the two equal: settings may not import the records).
LEAD_FIELD_NAMES: tuple[str, ...] = (
    "lead_id",
    "email",
    "domain",
    "first_name",
    "last_name",
    "company",
    "title",
    "source",
    "created_at",
)


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
    #: A bearer token from an OIDC provider (client-credentials grant); docs/security.md.
    OAUTHBEARER = "OAUTHBEARER"
    #: Amazon MSK's IAM access control: OAUTHBEARER on the wire, the token a SigV4-signed
    #: request made by AWS's signer package (the `msk` extra).
    AWS_MSK_IAM = "AWS_MSK_IAM"


def start_offset_ms(value: str) -> int | None:
    """``start_offset`` as a time in epoch milliseconds; None for ``earliest``/``latest``."""
    if value in ("earliest", "latest"):
        return None
    from datetime import datetime

    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "must be `earliest`, `latest` or an ISO 8601 time with its zone, such as "
            "2026-12-01T00:00:00Z"
        ) from None
    if at.tzinfo is None:
        raise ValueError("a start time needs its zone, such as 2026-12-01T00:00:00Z")
    return int(at.timestamp() * 1000)


class Settings(BaseSettings):
    """Everything streamproc can be told. Names carry their units (``_s``, ``_ms``, ``_bytes``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    # --- Kafka ---------------------------------------------------------------------------
    bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka brokers to start from, comma-separated host:port"
    )
    group_id: str = Field(
        "streamproc",
        min_length=1,
        description="consumer group of `run`; the replayer's is `<group_id>-replayer`",
    )
    topic_raw: str = Field("leads.raw", min_length=1, description="the leads to enrich")
    topic_enriched: str = Field("leads.enriched", min_length=1, description="enriched leads")
    topic_dlq: str = Field(
        "leads.dlq", min_length=1, description="leads that failed, the error in their headers"
    )
    topic_parked: str = Field(
        "leads.parked",
        min_length=1,
        description="where `replay` puts records out of attempts or not retriable",
    )
    topic_state: str = Field(
        "streamproc.state",
        min_length=1,
        description="compacted topic of the group's breaker, budget and cache",
    )
    topic_deferred: str = Field(
        "leads.deferred",
        min_length=1,
        description="prefix of the deferral topics, one per score band: `<prefix>.b0` "
        "(lowest) .. `<prefix>.bN` (with `pacing_enabled`; `topics create` makes them)",
    )
    topic_partitions: int = Field(
        6,
        ge=1,
        le=10_000,
        description="partitions `topics create` gives the lead topics; the state topic gets "
        "as many",
    )
    topic_replication_factor: int = Field(
        1,
        ge=-1,
        le=32,
        description="replication factor `topics create` gives every topic; -1: the broker's "
        "`default.replication.factor`",
    )
    security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT,
        description="TLS (`SSL`), SASL, both (`SASL_SSL`) or neither to the brokers",
    )
    ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates"
    )
    ssl_certfile: Path | None = Field(None, description="client certificate (PEM), for mutual TLS")
    ssl_keyfile: Path | None = Field(None, description="client private key (PEM), for mutual TLS")
    ssl_key_password: SecretStr | None = Field(None, description="password of `ssl_keyfile`")
    sasl_mechanism: SaslMechanism = Field(
        SaslMechanism.PLAIN,
        description="SASL mechanism of `SASL_*` security protocols (`OAUTHBEARER`: an OIDC "
        "token, `sasl_oauthbearer_*`; `AWS_MSK_IAM`: Amazon MSK IAM, `sasl_aws_*`)",
    )
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    sasl_oauthbearer_token_url: AnyHttpUrl | None = Field(
        None,
        description="`OAUTHBEARER`: the OIDC provider's token endpoint (client-credentials grant)",
    )
    sasl_oauthbearer_client_id: str | None = Field(
        None, description="`OAUTHBEARER`: the client id the token is asked for"
    )
    sasl_oauthbearer_client_secret: SecretStr | None = Field(
        None, description="`OAUTHBEARER`: the client secret (sent with HTTP Basic)"
    )
    sasl_oauthbearer_scope: str | None = Field(
        None, description="`OAUTHBEARER`: scope to ask for, space-separated (none: the default)"
    )
    sasl_oauthbearer_extensions: str | None = Field(
        None,
        description="`OAUTHBEARER`: SASL extensions sent with the token, comma-separated "
        "key=value (Confluent Cloud: `logicalCluster=lkc-…,identityPoolId=pool-…`)",
    )
    sasl_aws_region: str | None = Field(
        None, description="`AWS_MSK_IAM`: the cluster's AWS region, e.g. eu-west-1"
    )
    sasl_aws_profile: str | None = Field(
        None,
        description="`AWS_MSK_IAM`: a named profile of the AWS config files (none: the "
        "default credential chain)",
    )
    sasl_aws_role_arn: str | None = Field(
        None, description="`AWS_MSK_IAM`: a role to assume for the token"
    )
    kafka_connect_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="how long start-up waits for Kafka to answer before failing with a clear "
        "message",
    )
    transaction_timeout_ms: int = Field(
        60_000,
        ge=1_000,
        le=900_000,
        description="Kafka's transaction timeout: a batch not committed by then is aborted by "
        "the broker, and a commit with no answer by then is cut short and tried again",
    )
    start_offset: str = Field(
        "latest",
        description="where a new group (no committed offset yet) starts reading `topic_raw`: "
        "`latest` (leads written from now on: pointing streamproc at a topic with history "
        "buys nothing until you choose), `earliest` (the whole retained history, every lead "
        "enriched and paid for), or a time such as 2026-12-01T00:00:00Z (the first lead "
        "written at or after it); decided once, at the group's first assignment",
    )
    max_poll_interval_ms: int = Field(
        300_000,
        ge=1_000,
        le=3_600_000,
        description="how long the consumer may go without polling before the group drops "
        "it; polling goes on (held partitions paused) through any hold, so this bounds a "
        "stuck event loop, not a breaker cooldown or a spent budget. Also the group's "
        "rebalance timeout: how long a rebalance waits for a revoking member to rejoin",
    )

    # --- provider ------------------------------------------------------------------------
    provider_url: AnyHttpUrl | None = Field(
        None, description="the enrichment endpoint of `sync` mode, e.g. http://host/enrich"
    )
    provider_api_key: SecretStr | None = Field(
        None, description="the provider's API key, sent in `provider_auth_header`"
    )
    provider_auth_header: str = Field(
        "Authorization",
        description="header that carries the API key; `Authorization` gets a `Bearer` prefix",
    )
    provider_timeout_s: float = Field(
        10.0, gt=0, le=600, description="per call (the whole call, not per phase)"
    )
    provider_http_transport: Literal["aiohttp", "httpx"] = Field(
        "aiohttp",
        description="`aiohttp`: httpx over aiohttp's pool (the faster, see bench/); `httpx`: "
        "httpx's own transport",
    )
    provider_max_retries: int = Field(
        3, ge=0, le=20, description="in-process retries of a 5xx, a timeout or a 429"
    )
    provider_backoff_base_s: float = Field(
        0.2,
        ge=0,
        le=60,
        description="first backoff step; doubles per retry, with full jitter, up to "
        "`provider_backoff_max_s`",
    )
    provider_backoff_max_s: float = Field(10.0, ge=0, le=600, description="longest backoff step")
    # 60 s: the wait the client capped a Retry-After at before this setting existed.
    provider_retry_after_max_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="longest `Retry-After` honoured (sync provider and Clay alike); a longer "
        "one waits this long, so one `Retry-After: 86400` cannot pause every call for a day",
    )
    provider_rate_per_s: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="the provider's rate limit, requests per second, shared by the group (each "
        "process paces at its share of the input partitions); also learns from `Retry-After` "
        "and `x-ratelimit-*` answers; unset (with `provider_rate_per_min`): no pacing",
    )
    provider_rate_per_min: float | None = Field(
        None,
        gt=0,
        le=6_000_000,
        description="the provider's plan limit, requests per minute, shared like "
        "`provider_rate_per_s` (the lower of the two is kept); set it a little below the plan",
    )
    provider_rate_burst: int = Field(
        1,
        ge=1,
        le=10_000,
        description="requests sent at once after a quiet period, on top of the paced rate "
        "(the group's; each process gets its share)",
    )
    credits_per_lead: int = Field(
        6, ge=0, le=1_000_000, description="credits reserved from the budget before a call"
    )
    provider_mode: ProviderMode = Field(
        ProviderMode.SYNC,
        description="`sync`: a request/response provider (`provider_url`); `clay`: Clay's "
        "webhook and callback protocol (`clay_*`)",
    )
    provider: str | None = Field(
        None,
        min_length=1,
        description="the provider, by its `streamproc.providers` entry point: `http` (the "
        "contract of docs/provider.md), `clay`, `declarative` (`provider_declarative`) or an "
        "installed package's; unset: `http`, or `clay` with `provider_mode` clay",
    )
    provider_batch_size: int = Field(
        1,
        ge=1,
        le=1_000,
        description="most admitted leads per provider call (capped by the provider's own "
        "bulk limit); 1: one lead per call",
    )
    provider_batch_linger_ms: float = Field(
        5.0,
        ge=0,
        le=10_000,
        description="longest a lead waits for its batch to fill before the call goes out",
    )
    provider_declarative: dict[str, Any] | None = Field(
        None,
        description="the declarative HTTP provider: the `[streamproc.provider_declarative]` "
        "table of the settings file (docs/provider.md), or its JSON",
    )
    provider_options: dict[str, Any] | None = Field(
        None,
        description="an installed provider's own settings: the `[streamproc.provider_options]` "
        "table of the settings file, or its JSON; handed to the provider, with its URL, key, "
        "timeout and retry policy, in place of the whole settings (docs/provider.md)",
    )
    providers: dict[str, dict[str, Any]] | None = Field(
        None,
        description="named provider instances for a waterfall: `[streamproc.providers.NAME]` "
        "tables, each with `type` (`declarative`, the default, `http` or an installed "
        "provider's name) and its own settings (docs/waterfall.md)",
    )
    waterfall: dict[str, Any] | None = Field(
        None,
        description="the waterfall over `providers`: the `[streamproc.waterfall]` table "
        "(docs/waterfall.md); unset: the one provider of `provider`",
    )

    # --- Clay mode (provider_mode = clay; see streamproc.clay) -----------------------------
    clay_webhook_urls: Annotated[tuple[AnyHttpUrl, ...], NoDecode] = Field(
        (),
        description="Clay table webhooks, comma-separated, used in order: the next one before "
        "the current one reaches `clay_webhook_row_limit`",
    )
    clay_webhook_auth_token: SecretStr | None = Field(
        None, description="sent as `x-clay-webhook-auth` with every webhook row"
    )
    clay_webhook_row_limit: int = Field(
        50_000, ge=1, description="rows Clay accepts per webhook in its lifetime"
    )
    clay_webhook_headroom_rows: int = Field(
        100,
        ge=0,
        description="rows left unused before a webhook's limit: other instances' rows in "
        "flight are not counted yet, and a crash may lose the last count",
    )
    clay_webhook_alert_ratio: float = Field(
        0.9, gt=0, le=1, description="share of the last webhook's rows that raises the alert"
    )
    clay_rate_per_s: float = Field(
        10.0,
        gt=0,
        le=100_000,
        description="webhook rows per second, sustained (Clay's documented pace)",
    )
    clay_burst: int = Field(
        20, ge=1, le=100_000, description="webhook rows at once after a pause (Clay's burst)"
    )
    clay_submit_concurrency: int = Field(
        20,
        ge=1,
        le=10_000,
        description="leads submitted at once, in arrival order: a submitted lead's pending "
        "record commits within about this / `clay_rate_per_s` seconds",
    )
    clay_deadline_s: float = Field(
        900.0,
        gt=0,
        description="how long a submitted lead waits for its callback before it is a "
        "`provider_timeout`",
    )
    clay_callback_path: str = Field(
        "/clay/callback", description="path of the callback receiver on the ops server"
    )
    clay_callback_auth: CallbackAuth = Field(
        CallbackAuth.HEADER,
        description="how a callback proves it is Clay's: `header` (the secret itself, what a "
        "Clay HTTP API column can send) or `hmac` (a signature of the body; needs a signer "
        "in between, and the secret never travels)",
    )
    clay_callback_secret: SecretStr | None = Field(
        None, description="the callbacks' shared secret (required in Clay mode)"
    )
    clay_callback_auth_header: str = Field(
        "X-Streamproc-Callback-Auth",
        description="header with the secret (`header`) or the body's `sha256=<hex>` HMAC (`hmac`)",
    )
    clay_callback_max_bytes: int = Field(
        262_144,
        ge=1_024,
        le=16_777_216,
        description="larger callbacks are refused with 413 before they are parsed",
    )
    clay_callback_wait_s: float = Field(
        10.0,
        ge=0,
        le=300,
        description="how long a callback that beat its lead's commit waits for the lead "
        "before it is answered 404",
    )
    clay_orphan_grace_s: float = Field(
        60.0,
        ge=0,
        description="a lead submitted by another (maybe dead) instance is swept this long "
        "after its deadline; its own submitter's sweep comes first",
    )
    clay_sweep_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often deadlines are checked"
    )

    # --- resilience ----------------------------------------------------------------------
    budget_daily_credits: int = Field(
        500,
        ge=0,
        description="the group's daily credit limit; the day's first instance records its "
        "own and every instance follows it that day (a change takes effect the next day)",
    )
    budget_timezone: str = Field(
        "UTC", description="IANA zone whose midnight ends a budget day (the group's, likewise)"
    )
    budget_claim_leads: int = Field(
        50,
        ge=1,
        le=100_000,
        description="leads' worth of credits a process claims from the budget at once (a "
        "lease); 1: a claim per lead, the exact, slow way",
    )
    # 2 % keeps a crash's cost small; with a large budget a lease is still
    # budget_claim_leads.
    budget_lease_max_share: float = Field(
        0.02,
        gt=0,
        le=1,
        description="a lease is also at most this share of the day's limit (at least one "
        "lead): a process killed with a lease open strands it until the day ends",
    )
    budget_claim_max_age_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="a lease is closed after this long and its unused credits given back",
    )
    breaker_failure_threshold: int = Field(
        5, ge=1, le=10_000, description="failed calls within `breaker_window_s` that open it"
    )
    breaker_window_s: float = Field(60.0, gt=0, description="the breaker's sliding window")
    breaker_cooldown_s: float = Field(
        900.0, ge=0, description="open → half-open: how long the breaker stays open"
    )
    breaker_half_open_probes: int = Field(
        1, ge=1, le=1_000, description="calls let through while half-open"
    )
    on_breaker_open: BreakerPolicy = Field(
        BreakerPolicy.HOLD,
        description="leads while the breaker is open: `hold` them (partitions paused) or "
        "send them to the DLQ",
    )
    on_budget_exhausted: BudgetPolicy = Field(
        BudgetPolicy.DLQ,
        description="leads once the day's budget is spent: to the DLQ, or `hold` them until "
        "the next day",
    )
    hold_max_age_s: float = Field(
        3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="the longest a lead waits in a hold (breaker, schema registry down or "
        "refusing); a budget hold counts from the day's reset. Then it is dead-lettered, "
        "retriable, as `hold_expired`, and its partition moves on",
    )
    priority_score: str | None = Field(
        None,
        description="a lead's priority score: a CEL expression over the lead as `lead`, "
        "e.g. `lead.company_size >= 200 ? 50.0 : 10.0` (none: no score, no floor)",
    )
    priority_floor: float | None = Field(
        None,
        description="a lead scoring under this goes to the DLQ as `below_floor`, not "
        "retriable (none: no floor)",
    )
    priority_default_score: float = Field(
        0.0, description="the score of a lead the expression fails on (a missing field)"
    )
    priority_halflife_s: float | None = Field(
        None, gt=0, description="a lead's worth halves every this long it waits (none: no decay)"
    )
    pacing_enabled: bool = Field(
        False,
        description="spread the day's budget over the day (docs/budget.md): a lead is "
        "admitted when its score clears the controller's threshold, else deferred to the "
        "deferral topic of its score band",
    )
    # Three edges, four bands: enough to drain best-first without many topics.
    pacing_band_edges: Annotated[tuple[float, ...], NoDecode] = Field(
        (10.0, 30.0, 100.0),
        description="scores where the deferral bands begin, ascending, comma-separated: "
        "band 0 below the first, band N from the last",
    )
    pacing_step_s: float = Field(
        60.0, gt=0, le=3600, description="how often the pacing controller moves its threshold"
    )
    pacing_history_days: int = Field(
        28,
        ge=0,
        le=90,
        description="past days of `topic_raw` whose hourly arrivals shape the day's spend "
        "plan, counted from offsets by time at start and once a day (0: a straight line)",
    )
    # A bench hook (python -m bench.day --e2e): the budget day in minutes of wall time.
    bench_clock: str | None = Field(
        None,
        description="bench and test hook, never in production: `RATE@ORIGIN_S@WALL_ORIGIN_S` "
        "runs the budget day, the plan, the pacing controller, deferral ages and the "
        "breaker and budget on a clock `RATE` times as fast as the wall clock, reading "
        "`ORIGIN_S` at wall time `WALL_ORIGIN_S` (epoch seconds)",
    )
    deferral_max_age_s: float = Field(
        8 * 3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="a deferred lead waiting longer goes to the DLQ, retriable, as "
        "`deferral_expired`",
    )
    # Deferred leads wait in memory for their turn: a small window per deferral partition
    # keeps them from taking the process's whole max_in_flight from new leads.
    deferral_window: int = Field(
        8, ge=1, le=10_000, description="deferred leads waiting in memory per deferral partition"
    )
    health_window_s: float = Field(
        300.0,
        gt=0,
        description="window of the provider's success rate (healthy, degraded, unhealthy in "
        "/status and metrics)",
    )
    cache_ttl_s: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        description="how long a cached answer serves (0: no cache); then tombstoned in the "
        "state topic",
    )
    cache_key: CacheKey = Field(
        CacheKey.DOMAIN,
        description="which leads share a cached answer: a company's (`domain`), a person's "
        "(`email`), or none (`off`)",
    )
    cache_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_CACHE_FIELDS,
        description="enrichment fields a cached answer may carry, comma-separated; `*`: "
        "every field. The default is company-level only: never another person's title, "
        "phone or LinkedIn URL",
    )
    cache_freemail_domains: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_FREEMAIL_DOMAINS,
        description="domains (subdomains included) never cached by domain: their leads share "
        "a mailbox provider, not a company; comma-separated, replaces the built-in list",
    )
    # At a few hundred bytes an entry, the default stays in the tens of MB.
    cache_max_entries: int = Field(
        100_000,
        ge=0,
        description="cache entries kept in memory per process, least recently used dropped "
        "first (a few hundred bytes each)",
    )
    # A receipt lives from a lead's answer to its commit; these bound the ones whose
    # tombstone never came (a lead dead-lettered after its answer) in every instance.
    receipt_ttl_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="how long a paid answer's receipt (docs/guarantees.md) answers its lead "
        "again if the lead's output never committed; then tombstoned in the state topic",
    )
    receipt_max_entries: int = Field(
        50_000,
        ge=1,
        description="receipts kept in memory per process, oldest dropped first (the group's "
        "answers not yet committed; about an answer's size each)",
    )
    fallback_enabled: bool = Field(
        False,
        description="answer with a local guess (`source: fallback`) while the provider is "
        "unavailable",
    )

    # --- processing ----------------------------------------------------------------------
    max_in_flight: int = Field(256, ge=1, le=100_000, description="leads in flight per process")
    max_in_flight_per_partition: int = Field(
        256, ge=1, le=100_000, description="leads in flight per partition"
    )
    commit_interval_ms: int = Field(
        200, ge=10, le=60_000, description="one transaction per partition per interval"
    )
    # 1 MiB: Kafka's default message cap.
    max_lead_bytes: int = Field(
        1_048_576,
        ge=64,
        description="larger leads are `invalid_payload`",
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="on SIGTERM, how long leads in flight may finish"
    )
    revoke_grace_s: float = Field(
        10.0,
        ge=0,
        le=300,
        description="on a rebalance, how long a revoked partition's leads in a provider call "
        "may finish (held leads are released at once); then they are cancelled and read "
        "again by the next owner. At most half of `max_poll_interval_ms`",
    )
    lane_retry_initial_s: float = Field(
        1.0,
        gt=0,
        le=600,
        description="after a partition's commit or lane opening fails, the first wait before "
        "it is tried again; doubled on each failure in a row (finished leads are kept, never "
        "sent to the provider again)",
    )
    lane_retry_max_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="the longest wait between two tries of a partition's failing commit or "
        "lane opening",
    )
    lane_open_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="how long opening a partition's lane (its transactional producer and "
        "committed offset) may take before it is given up and tried again later",
    )
    stall_after_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="a partition with records behind, no lead in flight and a committed "
        "offset that has not moved for this long is reported stalled (log, `/status`, "
        "`/readyz`) and its fetching is restarted",
    )

    # --- record formats ------------------------------------------------------------------
    input_format: RecordFormat = Field(
        RecordFormat.JSON,
        description="how leads are written to `topic_raw`: `json` (plain JSON), or `registry` "
        "(a schema registry's wire format, Avro or JSON Schema, read through "
        "`schema_registry_url`)",
    )
    output_format: RecordFormat = Field(
        RecordFormat.JSON,
        description="how enriched leads are written: `json`, or `registry` (input_format "
        "registry only: the input's schema extended with the enrichment, registered under "
        "`<topic_enriched>-value`)",
    )
    schema_registry_url: AnyHttpUrl | None = Field(
        None,
        description="the registry's Confluent-compatible API, e.g. http://registry:8081 or "
        "Apicurio's http://registry:8080/apis/ccompat/v7",
    )
    schema_registry_username: str | None = Field(
        None, description="registry basic-auth user (Confluent Cloud: the API key)"
    )
    schema_registry_password: SecretStr | None = Field(
        None, description="registry basic-auth password (Confluent Cloud: the API secret)"
    )
    schema_registry_timeout_s: float = Field(
        5.0, gt=0, le=120, description="one registry request; longer counts as the registry down"
    )
    lead_fields: Annotated[dict[str, str], NoDecode] = Field(
        {},
        description="where each lead field is in your records: `lead_id=/id,email=contact.email` "
        "(JSON Pointer or dotted path; a JSON object works too); unmapped fields keep their "
        "own name",
    )

    # --- operations ----------------------------------------------------------------------
    http_host: str = Field(
        "0.0.0.0",
        description="address of the ops server (metrics, health, status, Clay callbacks)",
    )
    http_port: int = Field(
        8080,
        ge=0,
        le=65_535,
        description="port of the ops server, one per process (a second `run` on a host needs "
        "another); 0 picks a free one",
    )
    console_token: SecretStr | None = Field(
        None,
        description="operator token of the web console (`/console/`): a replay from the page "
        "needs it in an `Authorization: Bearer` header, and it shows DLQ records too; unset, "
        "the console is read-only",
    )
    console_read_token: SecretStr | None = Field(
        None,
        description="a token that lets the web console show DLQ records (the list and a "
        "record whole: e-mails, names, original headers) without allowing replays; neither "
        "it nor `console_token` set: no record is shown (the overview stays open)",
    )
    console_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="host names (comma-separated) the console answers under besides "
        "`localhost`, IP addresses, its bind address and this machine's name; a request "
        "with another `Host` gets 421 (DNS rebinding); `*` answers any",
    )
    console_host: str = Field(
        "127.0.0.1",
        description="address of the console's own listener (with `console_port`)",
    )
    console_port: int | None = Field(
        None,
        ge=0,
        le=65_535,
        description="port of the console's own listener, apart from the ops server and "
        "Clay's callbacks; unset: the console is served on `http_port`; 0 picks a free one",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="lowest level logged (any case)"
    )
    log_format: Literal["json", "console", "auto"] = Field(
        "auto", description="`auto`: `console` on a terminal, `json` otherwise"
    )

    # --- tracing (OpenTelemetry; docs/tracing.md) ---------------------------------------
    tracing_enabled: bool = Field(
        False,
        description="OpenTelemetry spans per lead (consume, provider call, commit) and the "
        "W3C `traceparent` carried from input to provider to output; needs `pip install "
        "'streamproc[tracing]'`",
    )
    tracing_exporter: Literal["otlp", "console"] = Field(
        "otlp",
        description="where spans go: an OTLP/HTTP collector, or stdout (`console`, to try it)",
    )
    tracing_otlp_endpoint: AnyHttpUrl | None = Field(
        None,
        description="the collector's traces URL, e.g. http://collector:4318/v1/traces; unset: "
        "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` or "
        "localhost:4318 (`OTEL_EXPORTER_OTLP_HEADERS` adds headers)",
    )
    tracing_service_name: str | None = Field(
        None,
        min_length=1,
        description="the spans' `service.name`; unset: `OTEL_SERVICE_NAME`, else `streamproc`",
    )
    tracing_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="share of leads without a `traceparent` that are traced (a lead with one "
        "follows its sampled flag); a commit is traced when one of its leads is",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("budget_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as UTC or Europe/Berlin") from None
        return value

    @field_validator("topic_replication_factor")
    @classmethod
    def _replication(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be 1 or more, or -1 for the broker's default")
        return value

    @field_validator("start_offset")
    @classmethod
    def _start_offset(cls, value: str) -> str:
        start_offset_ms(value)  # raises ValueError with the accepted forms
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

    @field_validator(
        "cache_fields", "cache_freemail_domains", "console_allowed_hosts", mode="before"
    )
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

    @field_validator("pacing_band_edges", mode="before")
    @classmethod
    def _split_numbers(cls, value: Any) -> Any:
        """Comma-separated numbers (or a JSON array)."""
        if isinstance(value, str):
            text = value.strip()
            try:
                return tuple(json.loads(text) if text.startswith("[") else text.split(","))
            except ValueError:
                raise ValueError("must be comma-separated numbers or a JSON array") from None
        return value

    @field_validator("pacing_band_edges")
    @classmethod
    def _ascending(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("must be strictly ascending")
        return value

    @field_validator("bench_clock")
    @classmethod
    def _clock_spec(cls, value: str | None) -> str | None:
        if value is not None:
            Clock.parse(value)
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

    @field_validator("lead_fields", mode="before")
    @classmethod
    def _split_mapping(cls, value: Any) -> Any:
        """``field=path,field=path`` (or a JSON object, as a TOML table or env JSON)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("must be field=path pairs or a JSON object") from None
            pairs = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
            mapping = {}
            for pair in pairs:
                field, sep, path = pair.partition("=")
                if not sep:
                    raise ValueError(f"{pair!r} is not field=path (e.g. email=contact.email)")
                mapping[field.strip()] = path.strip()
            return mapping
        return value

    @field_validator("lead_fields")
    @classmethod
    def _known_lead_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for field, path in value.items():
            if field not in LEAD_FIELD_NAMES:
                close = difflib.get_close_matches(field, LEAD_FIELD_NAMES, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                known = ", ".join(LEAD_FIELD_NAMES)
                raise ValueError(f"{field!r} is not a lead field{hint}; the fields: {known}")
            try:
                parse_path(path)
            except ValueError as exc:
                raise ValueError(f"{field}: {exc}") from None
        return value

    @field_validator("sasl_oauthbearer_extensions")
    @classmethod
    def _sasl_extensions(cls, value: str | None) -> str | None:
        if value is not None:
            sasl_extensions(value)
        return value

    @field_validator("clay_callback_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/metrics", "/healthz", "/readyz", "/status"):
            raise ValueError(
                "must be an absolute path not used by the ops server, e.g. /clay/callback"
            )
        return value

    @field_validator("provider_declarative", "provider_options", mode="before")
    @classmethod
    def _json_table(cls, value: Any) -> Any:
        """A table from the settings file, or its JSON from a flag."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("must be a table of the settings file, or JSON") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _clay_provider(cls, data: Any) -> Any:
        """``provider = "clay"`` is Clay's mode: the same checks, the same lease rules."""
        if isinstance(data, dict) and data.get("provider") == "clay":
            return {**data, "provider_mode": ProviderMode.CLAY}
        return data

    @property
    def sasl_in_use(self) -> SaslMechanism | None:
        """The SASL mechanism the Kafka clients speak; None when the protocol has no SASL
        (``sasl_mechanism`` is then ignored)."""
        if self.security_protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
            return self.sasl_mechanism
        return None

    @property
    def deferral_topics(self) -> tuple[str, ...]:
        """The deferral topics, lowest score band first (none unless pacing is enabled)."""
        if not self.pacing_enabled:
            return ()
        return tuple(
            f"{self.topic_deferred}.b{band}" for band in range(len(self.pacing_band_edges) + 1)
        )

    @property
    def provider_name(self) -> str:
        """The entry point name of the provider these settings choose."""
        if self.provider is not None:
            return self.provider
        return "clay" if self.provider_mode is ProviderMode.CLAY else "http"

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.provider_backoff_max_s < self.provider_backoff_base_s:
            raise ValueError("provider_backoff_max_s must be >= provider_backoff_base_s")
        if self.waterfall is not None and self.provider_mode is ProviderMode.CLAY:
            raise ValueError(
                "waterfall runs synchronous providers: it cannot run with provider_mode clay"
            )
        ceiling = (self.waterfall or {}).get("max_credits_per_lead")
        if isinstance(ceiling, int | float) and ceiling > self.credits_per_lead:
            # A lead reserves credits_per_lead once for its whole waterfall: a ceiling above
            # it lets a lead spend credits the budget never reserved.
            raise ValueError(
                f"credits_per_lead ({self.credits_per_lead}) must be at least the waterfall's "
                f"max_credits_per_lead ({ceiling:g}): each lead reserves credits_per_lead"
            )
        if self.revoke_grace_s * 2_000 > self.max_poll_interval_ms:
            # The revocation runs before the member rejoins: with the whole rebalance
            # timeout spent on it the member is evicted, and takes the partitions back from
            # the others in turn (issue 19).
            raise ValueError(
                "revoke_grace_s must be at most half of max_poll_interval_ms (the group's "
                "rebalance timeout), or a revoking member is dropped from the group"
            )
        mechanism = self.sasl_in_use
        if mechanism is SaslMechanism.OAUTHBEARER:
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name in (
                    "sasl_oauthbearer_token_url",
                    "sasl_oauthbearer_client_id",
                    "sasl_oauthbearer_client_secret",
                )
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"sasl_mechanism OAUTHBEARER needs {', '.join(missing)}")
        elif mechanism is SaslMechanism.AWS_MSK_IAM:
            if self.security_protocol is not SecurityProtocol.SASL_SSL:
                raise ValueError(
                    "sasl_mechanism AWS_MSK_IAM needs security_protocol SASL_SSL (MSK's IAM "
                    "listeners are TLS only)"
                )
            if not self.sasl_aws_region:
                raise ValueError(
                    f"sasl_mechanism AWS_MSK_IAM needs {ENV_PREFIX}SASL_AWS_REGION "
                    "(the cluster's region, e.g. eu-west-1)"
                )
            if self.sasl_aws_profile and self.sasl_aws_role_arn:
                raise ValueError("set sasl_aws_profile or sasl_aws_role_arn, not both")
        elif mechanism is not None and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                "security_protocol SASL_* needs STREAMPROC_SASL_USERNAME and "
                "STREAMPROC_SASL_PASSWORD"
            )
        if self.provider_mode is ProviderMode.CLAY and self.provider not in (None, "clay"):
            raise ValueError(f"provider_mode clay and provider {self.provider} disagree")
        if self.provider == "declarative" and not self.provider_declarative:
            raise ValueError(
                "provider declarative needs a [streamproc.provider_declarative] table in the "
                "settings file (docs/provider.md; examples/providers/)"
            )
        registry = RecordFormat.REGISTRY
        if registry in (self.input_format, self.output_format) and self.schema_registry_url is None:
            raise ValueError(
                "input_format/output_format registry needs STREAMPROC_SCHEMA_REGISTRY_URL"
            )
        if self.output_format is registry and self.input_format is not registry:
            raise ValueError(
                "output_format registry extends the input's schema: it needs input_format "
                "registry too"
            )
        if self.provider_mode is ProviderMode.CLAY and registry in (
            self.input_format,
            self.output_format,
        ):
            raise ValueError(
                "provider_mode clay reads and writes plain JSON: set the formats to json"
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


#: The ``SecretStr`` settings: never a flag, never printed; from the environment or a file.
SECRET_FIELDS: frozenset[str] = frozenset(
    name
    for name, info in Settings.model_fields.items()
    if info.annotation is SecretStr or SecretStr in getattr(info.annotation, "__args__", ())
)


def sasl_extensions(text: str) -> dict[str, str]:
    """``"a=1,b=2"`` → ``{"a": "1", "b": "2"}``; ``ValueError`` unless each key is letters
    (RFC 7628's ``key``), none is ``auth`` (the token's own), and no value holds a control
    character (``%x01`` separates them on the wire)."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isascii() or not key.isalpha() or key == "auth":
            raise ValueError(f"{item!r} is not key=value with a key of letters (not 'auth')")
        if not value.isprintable():
            raise ValueError(f"the value of {key!r} holds a control character")
        out[key] = value.strip()
    return out


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
    check_environment(os.environ)
    from_files: dict[str, Any] = secrets_from_files(os.environ)
    try:
        env_and_defaults = Settings(**from_files)
        merged: dict[str, Any] = {}
        merged.update(file_values)
        # Values that came from the environment win over the file.
        merged.update({k: getattr(env_and_defaults, k) for k in env_and_defaults.model_fields_set})
        merged.update(given)
        return Settings.model_validate(merged) if (file_values or given) else env_and_defaults
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _nearest(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a ``STREAMPROC_*`` variable that is no setting (a typo is otherwise silently
    ignored), in one line that suggests the nearest name."""
    names = [name.upper() for name in Settings.model_fields]
    files = [name.upper() + FILE_SUFFIX for name in SECRET_FIELDS]
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(_NOT_SETTINGS):
            continue
        name = upper.removeprefix(ENV_PREFIX)
        if name in names or name in files:
            continue
        base = name.removesuffix(FILE_SUFFIX)
        if base != name and base in names:
            raise ConfigError(
                f"{var}: only secrets are read from a file; set {ENV_PREFIX}{base} itself"
            )
        near = _nearest(name, names + files)
        hint = f"did you mean {ENV_PREFIX}{near}?" if near else "no setting has that name"
        raise ConfigError(
            f"unknown environment variable {var}: {hint} (`streamproc run --help` lists them)"
        )


def secrets_from_files(environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets named by ``STREAMPROC_<SECRET>_FILE`` variables, read from their files.

    A trailing line break is dropped (``echo key > file`` writes one). Setting both the
    secret and its ``_FILE`` variable is refused: which one wins would be a guess.
    """
    upper = {key.upper(): value for key, value in environ.items()}
    found: dict[str, str] = {}
    for name in sorted(SECRET_FIELDS):
        var = f"{ENV_PREFIX}{name.upper()}{FILE_SUFFIX}"
        path = upper.get(var)
        if path is None:
            continue
        if f"{ENV_PREFIX}{name.upper()}" in upper:
            raise ConfigError(
                f"{var} and {ENV_PREFIX}{name.upper()} are both set: give the secret one way"
            )
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{var}: cannot read {path} ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{var}: {path} is not UTF-8 text") from None
        if not value:
            raise ConfigError(f"{var}: {path} is empty")
        found[name] = value
    return found


def _one_line(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:
        # A rule between settings (the model's own check): its message names them.
        return f"settings do not fit together: {msg}"
    env = f"{ENV_PREFIX}{loc.upper()}"
    if err["type"] == "extra_forbidden":
        near = _nearest(loc, list(Settings.model_fields))
        hint = f"did you mean {near}?" if near else "`streamproc run --help` lists the settings"
        return f"unknown setting {loc!r}: {hint}"
    return f"invalid setting {loc} ({env}): {msg}"
