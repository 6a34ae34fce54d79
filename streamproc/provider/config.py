"""What a provider is given: :class:`ProviderConfig`, its own settings and nothing else.

A provider (a third-party package's above all) is handed this, never the whole
:class:`~streamproc.settings.Settings`: those hold the Kafka credentials, Clay's webhook
URLs and callback secret, the registry's password and the console's tokens, none of which
a provider has any business reading. It gets its own table (``options``: the
``[streamproc.provider_options]`` table, or ``provider_declarative`` for the declarative
provider), its own URL and API key, and what any provider legitimately needs to size and
bound its calls: the timeout, the retry policy, the batch size asked for, the calls in
flight and the HTTP transport.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pydantic import SecretStr

from streamproc.errors import ConfigError
from streamproc.provider.retry import RetryPolicy
from streamproc.settings import Settings

__all__ = ["ProviderConfig", "retry_policy"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: The keys of a waterfall's provider instance table read for any provider type.
#: ``max_credits_per_day`` and ``budget_share`` are the waterfall's credit cap
#: (streamproc.waterfall.caps), not the provider's.
_MEMBER_KEYS = frozenset(
    {"type", "rate_per_s", "rate_per_min", "rate_burst", "max_credits_per_day", "budget_share"}
)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The policy the ``provider_max_retries``, ``provider_backoff_*`` and
    ``provider_retry_after_max_s`` settings describe (the pipeline's, and Clay's)."""
    return RetryPolicy(
        max_retries=settings.provider_max_retries,
        base_s=settings.provider_backoff_base_s,
        max_s=settings.provider_backoff_max_s,
        retry_after_max_s=settings.provider_retry_after_max_s,
    )


def _rate(table: Mapping[str, Any], name: str, key: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"providers.{name}.{key} must be a number above 0, not {value!r}")
    if key == "rate_burst" and not float(value).is_integer():
        raise ConfigError(f"providers.{name}.rate_burst must be a whole number, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider's configuration (frozen). ``options`` is its own settings table, as
    written (an empty mapping when there is none)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    #: ``provider_url``: the endpoint of the ``http`` provider (others may use it too).
    url: str | None = None
    #: ``provider_api_key`` and the header it goes in (``provider_auth_header``).
    api_key: SecretStr | None = None
    auth_header: str = "Authorization"
    #: Each attempt is bounded by this (``provider_timeout_s``); streamproc enforces it.
    timeout_s: float = 10.0
    #: The pipeline's retries (``provider_max_retries``, ``provider_backoff_*``).
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(3, 0.2, 10.0))
    #: Credits reserved per lead before a call (``credits_per_lead``): a provider that
    #: cannot tell what a lead cost may answer this.
    credits_per_lead: int = 6
    #: Most leads per call asked for (``provider_batch_size``); the provider's own
    #: ``batch_size`` caps it.
    batch_size: int = 1
    #: Calls in flight at once at most (``max_in_flight``): size a connection pool to it.
    max_in_flight: int = 256
    #: ``provider_http_transport``, for providers built on httpx.
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    #: The API's rate limit, shared by the group (``provider_rate_per_s``,
    #: ``provider_rate_per_min``; ``None``: not paced), and its burst: the pipeline paces
    #: this provider's calls (docs/provider.md, "Rate limit").
    rate_per_s: float | None = None
    rate_per_min: float | None = None
    rate_burst: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, name: str | None = None) -> ProviderConfig:
        """The configuration of the provider ``name`` (default: the one the settings
        choose), taken from ``settings``; nothing else of them is kept."""
        name = name or settings.provider_name
        table = (
            settings.provider_declarative if name == "declarative" else settings.provider_options
        )
        return cls(
            name=name,
            options=copy.deepcopy(table or {}),
            url=None if settings.provider_url is None else str(settings.provider_url),
            api_key=settings.provider_api_key,
            auth_header=settings.provider_auth_header,
            timeout_s=settings.provider_timeout_s,
            retry=retry_policy(settings),
            credits_per_lead=settings.credits_per_lead,
            batch_size=settings.provider_batch_size,
            max_in_flight=settings.max_in_flight,
            http_transport=settings.provider_http_transport,
            rate_per_s=settings.provider_rate_per_s,
            rate_per_min=settings.provider_rate_per_min,
            rate_burst=settings.provider_rate_burst,
        )

    @classmethod
    def members(cls, settings: Settings, names: Iterable[str]) -> dict[str, ProviderConfig]:
        """The configuration of each of a waterfall's instances ``names``; a name with no
        ``[streamproc.providers.<name>]`` table is one ConfigError saying which exist."""
        tables = settings.providers or {}
        members: dict[str, ProviderConfig] = {}
        for name in names:
            table = tables.get(name)
            if table is None:
                raise ConfigError(
                    f"waterfall provider {name!r} has no [streamproc.providers.{name}] table "
                    f"(configured: {', '.join(sorted(tables)) or 'none'})"
                )
            members[name] = cls.member(settings, name, table)
        return members

    @classmethod
    def member(cls, settings: Settings, name: str, table: Mapping[str, Any]) -> ProviderConfig:
        """The configuration of the waterfall's provider instance ``name``, from its
        ``[streamproc.providers.<name>]`` table: ``type`` (default ``declarative``) picks
        the provider; a declarative one's table is the rest, as ``provider_declarative``
        is; any other's reads ``url``, ``api_key``, ``auth_header`` and ``options``. Any
        type's ``rate_per_s``, ``rate_per_min`` and ``rate_burst`` are this API's plan
        limit (unset: not paced; the ``provider_rate_*`` settings are the one provider's).
        The timeout, retry policy and sizes are the pipeline's, as for one provider. The
        returned ``name`` is the entry point's, as providers expect."""
        rest = {key: value for key, value in table.items() if key not in _MEMBER_KEYS}
        kind = table.get("type", "declarative")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"providers.{name}.type must be a provider's name")
        base = dataclasses.replace(
            cls.from_settings(settings, kind),
            rate_per_s=_rate(table, name, "rate_per_s"),
            rate_per_min=_rate(table, name, "rate_per_min"),
            rate_burst=int(_rate(table, name, "rate_burst") or 1),
        )
        if kind == "declarative":
            return dataclasses.replace(base, options=copy.deepcopy(rest), url=None, api_key=None)
        unknown = set(rest) - {"url", "api_key", "auth_header", "options"}
        if unknown:
            raise ConfigError(
                f"providers.{name}: unknown keys {sorted(unknown)} for a {kind!r} provider "
                "(url, api_key, auth_header, options)"
            )
        key = rest.get("api_key")
        return dataclasses.replace(
            base,
            options=copy.deepcopy(rest.get("options") or {}),
            url=None if rest.get("url") is None else str(rest["url"]),
            api_key=None if key is None else SecretStr(str(key)),
            auth_header=str(rest.get("auth_header", base.auth_header)),
        )

    def __post_init__(self) -> None:
        # Read-only, whoever built it: a provider cannot change what another part reads.
        if not isinstance(self.options, MappingProxyType):
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def rate_limit_per_s(self) -> float | None:
        """The group's pace, requests per second: the lower of the two limits, or ``None``."""
        rates = [
            r
            for r in (
                self.rate_per_s,
                None if self.rate_per_min is None else self.rate_per_min / 60,
            )
            if r is not None
        ]
        return min(rates) if rates else None

    def require_url(self) -> str:
        """The provider URL, or a ConfigError saying how to set it."""
        if self.url is None:
            raise ConfigError(
                "provider_url is not set: set STREAMPROC_PROVIDER_URL or --provider-url "
                "(e.g. http://127.0.0.1:8099/enrich from `streamproc mock-provider`)"
            )
        return self.url
