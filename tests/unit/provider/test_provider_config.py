"""A provider is given its own configuration, never the settings and their secrets."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from streamproc import app as app_module
from streamproc.errors import ConfigError
from streamproc.processing.config import provider_price
from streamproc.provider.api import Answer, LeadIn, ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.provider.retry import RetryPolicy
from streamproc.settings import Settings

FOREIGN = {
    "sasl_password": "kafka-pw-91c2e",
    "schema_registry_password": "registry-pw-7d1f",
    "console_token": "console-op-55aa",
    "console_read_token": "console-rd-66bb",
    "ssl_key_password": "tls-key-pw-01",
}
API_KEY = "provider-key-3e8a"


class _Recorder:
    given: list[Any] = []
    batch_size = 10

    def __init__(self, config: Any) -> None:
        _Recorder.given.append(config)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        return []


def _texts(value: Any) -> list[str]:
    """Every text reachable from a value, secrets revealed."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in _texts(getattr(value, f.name))]
    if isinstance(value, dict) or hasattr(value, "items"):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return [str(value)]


def test_a_plugin_receives_only_its_own_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed provider is built from a ProviderConfig: its own table, URL, key,
    timeout and retry policy; no Kafka, registry, console or TLS secret reaches it."""
    _Recorder.given = []
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    settings = Settings(
        provider="acme",
        provider_url="https://api.acme.example/v2/enrich",
        provider_api_key=API_KEY,
        provider_timeout_s=4.5,
        provider_max_retries=5,
        provider_options={"region": "eu", "fields": ["title", "phone"]},
        security_protocol="SASL_PLAINTEXT",
        sasl_username="svc",
        sasl_password=FOREIGN["sasl_password"],
        schema_registry_password=FOREIGN["schema_registry_password"],
        console_token=FOREIGN["console_token"],
        console_read_token=FOREIGN["console_read_token"],
        ssl_key_password=FOREIGN["ssl_key_password"],
    )
    app_module.App(settings)
    [config] = _Recorder.given
    assert isinstance(config, ProviderConfig)
    assert not isinstance(config, Settings)
    assert config.name == "acme"
    assert dict(config.options) == {"region": "eu", "fields": ["title", "phone"]}
    assert config.url == "https://api.acme.example/v2/enrich"
    assert config.api_key is not None and config.api_key.get_secret_value() == API_KEY
    assert config.timeout_s == 4.5
    assert config.retry.max_retries == 5
    texts = " ".join(_texts(config))
    for name, secret in FOREIGN.items():
        assert secret not in texts, name
    assert not hasattr(config, "sasl_password")
    with pytest.raises(TypeError):
        config.options["region"] = "us"  # type: ignore[index]


def test_the_declarative_provider_reads_its_table_from_options() -> None:
    """The declarative provider is built from a ProviderConfig whose options are its table."""
    config = ProviderConfig(
        name="declarative",
        options={"url": "https://api.example/match", "credits_per_match": 2},
        timeout_s=3.0,
        retry=RetryPolicy(1, 0.1, 1.0),
    )
    provider = DeclarativeProvider(config)
    assert provider.config.url == "https://api.example/match"
    assert provider.config.credits_per_match == 2


def test_a_rate_limited_provider_is_paced_at_its_groups_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rate settings reach the provider's config, and the app paces its calls at the
    lower limit, told its share of the input partitions on every rebalance."""
    _Recorder.given = []
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    settings = Settings(
        provider="acme", provider_rate_per_s=3.0, provider_rate_per_min=120, provider_rate_burst=4
    )
    app = app_module.App(settings)
    [config] = _Recorder.given
    assert (config.rate_per_s, config.rate_per_min, config.rate_burst) == (3.0, 120, 4)
    assert app.provider is not None and app.provider.pacer is not None
    pacer = app.provider.pacer
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (2.0, 4)
    app.processor._on_assignment(1, 4)  # type: ignore[misc]
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (0.5, 1)


def test_a_provider_without_a_rate_is_not_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rate setting: no pacer, and nothing to tell of a rebalance."""
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    app = app_module.App(Settings(provider="acme"))
    assert app.provider is not None and app.provider.pacer is None
    assert app.processor._on_assignment is None


def test_each_waterfall_instance_gets_its_own_table_url_and_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A waterfall builds one provider per ``[streamproc.providers.<name>]`` table: a
    declarative one gets the rest of its table as options, any other its own url, key and
    options; none gets the one-provider settings' key or another instance's."""
    _Recorder.given = []
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    settings = Settings(
        provider_api_key="single-provider-key",
        providers={
            "finder": {"type": "declarative", "url": "https://finder.example/v2", "x": 1},
            "people": {
                "type": "acme",
                "url": "https://people.example/match",
                "api_key": API_KEY,
                "options": {"region": "eu"},
            },
        },
        waterfall={"providers": [{"name": "finder"}, {"name": "people"}]},
    )
    app = app_module.App(settings)
    finder, people = _Recorder.given
    assert (finder.name, dict(finder.options), finder.api_key) == (
        "declarative",
        {"url": "https://finder.example/v2", "x": 1},
        None,
    )
    assert (people.name, dict(people.options), people.url) == (
        "acme",
        {"region": "eu"},
        "https://people.example/match",
    )
    assert people.api_key is not None and people.api_key.get_secret_value() == API_KEY
    assert list(getattr(app.provider, "members", {})) == ["finder", "people"]


def test_a_waterfall_with_no_ceiling_takes_the_leads_reservation_as_its_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No max_credits_per_lead: a lead reserves credits_per_lead once for its whole
    waterfall, so that is its ceiling and no lead spends past what it reserved; the
    budget's price of a lead cut short is the whole reservation."""
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    settings = Settings(
        credits_per_lead=3,
        providers={"finder": {"type": "acme", "url": "https://finder.example/v2"}},
        waterfall={"providers": [{"name": "finder", "credits_per_call": 1}]},
    )
    app = app_module.App(settings)
    assert app.provider._config.max_credits_per_lead == 3  # type: ignore[union-attr]
    assert provider_price(settings) == 3


@pytest.mark.parametrize(
    ("providers", "waterfall", "says"),
    [
        ({}, {"providers": [{"name": "finder"}]}, "no [streamproc.providers.finder] table"),
        ({"f": {"type": "acme", "path": "/x"}}, {"providers": [{"name": "f"}]}, "unknown keys"),
        ({}, {"providers": []}, "waterfall.providers"),
    ],
)
def test_a_waterfall_misconfigured_is_one_config_error(
    monkeypatch: pytest.MonkeyPatch, providers: Any, waterfall: Any, says: str
) -> None:
    """A waterfall naming an instance with no table, an instance with keys its type does
    not read, or an invalid waterfall table is one ConfigError naming it."""
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    settings = Settings(providers=providers, waterfall=waterfall)
    with pytest.raises(ConfigError, match=re.escape(says)):
        app_module.App(settings)


def test_a_waterfall_cannot_run_in_clay_mode() -> None:
    """A waterfall with provider_mode clay is refused when the settings are read (Clay
    would take the leads and the waterfall would never run)."""
    with pytest.raises(ValidationError, match="provider_mode clay"):
        Settings(
            provider_mode="clay",
            clay_webhook_urls="https://api.clay.example/hook/a",
            clay_callback_secret="s",
            waterfall={"providers": [{"name": "finder"}]},
        )


def test_each_waterfall_instance_is_paced_at_its_own_plan_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A waterfall instance's rate_per_s / rate_per_min pace that instance only (the
    provider_rate_* settings are the one provider's), and a rebalance tells every paced
    instance its share of the input partitions."""
    _Recorder.given = []
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Recorder)
    settings = Settings(
        provider_rate_per_s=100.0,
        providers={
            "finder": {"type": "acme", "rate_per_min": 120, "rate_burst": 2},
            "people": {"type": "acme"},
        },
        waterfall={"providers": [{"name": "finder"}, {"name": "people"}]},
    )
    app = app_module.App(settings)
    members = getattr(app.provider, "members", {})
    finder, people = members["finder"].calls.pacer, members["people"].calls.pacer
    assert people is None
    assert finder is not None and (finder.bucket.rate_per_s, finder.bucket.burst) == (2.0, 2)
    assert app.processor._on_assignment is not None
    app.processor._on_assignment(1, 4)
    assert finder.bucket.rate_per_s == 0.5


def test_a_waterfall_instances_rate_must_be_a_positive_number() -> None:
    """A rate of 0 (or text) in an instance's table is one ConfigError naming it."""
    with pytest.raises(ConfigError, match=re.escape("providers.finder.rate_per_s")):
        ProviderConfig.member(Settings(), "finder", {"rate_per_s": 0})
