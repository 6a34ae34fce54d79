"""The declarative provider's table: read from the settings file, one line when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.errors import ConfigError
from streamproc.provider.config import ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.settings import Settings, load_settings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "providers"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_every_example_loads_from_the_settings_file(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each example is a valid settings file whose table builds a provider."""
    for var in ("PERSON", "COMPANY", "EMAIL"):
        monkeypatch.setenv(f"{var}_API_URL", "http://127.0.0.1:1")
        monkeypatch.setenv(f"{var}_API_KEY", "k")
    monkeypatch.setenv("MOCK_PROVIDER_URL", "http://127.0.0.1:1")
    settings = load_settings(EXAMPLES / name)
    assert settings.provider_name == "declarative"
    assert (
        DeclarativeProvider(ProviderConfig.from_settings(settings, "declarative")).batch_size >= 1
    )


def _provider(**table: object) -> ProviderConfig:
    """The declarative provider's configuration with ``table`` (and a URL)."""
    settings = Settings(provider="declarative", provider_declarative={"url": "http://x", **table})
    return ProviderConfig.from_settings(settings, "declarative")


def test_a_secret_missing_from_the_environment_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ${NAME} not set names the variable and where it is used."""
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"headers: environment variable NO_SUCH_KEY"):
        DeclarativeProvider(_provider(headers={"x-api-key": "${NO_SUCH_KEY}"}))


def test_an_expression_that_is_not_jmespath_is_one_line() -> None:
    """A bad JMESPath names its key."""
    with pytest.raises(ConfigError, match=r"provider_declarative.result: .* is not JMESPath"):
        DeclarativeProvider(_provider(result="data[?"))


def test_an_unknown_key_is_one_line() -> None:
    """A typo in the table is refused, naming the key."""
    with pytest.raises(ConfigError, match=r"provider_declarative.reslt"):
        DeclarativeProvider(_provider(reslt="data"))


def test_a_batch_without_its_endpoint_is_refused() -> None:
    """batch_size > 1 needs batch_url, batch_body and items."""
    with pytest.raises(ConfigError, match="batch_url and batch_body"):
        DeclarativeProvider(_provider(batch_size=10))


def test_the_declarative_provider_needs_its_table() -> None:
    """provider = declarative without the table is one line at validation."""
    with pytest.raises(ValueError, match="provider_declarative"):
        Settings(provider="declarative")


def test_a_fixed_header_or_url_that_cannot_be_sent_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The config's own header values and URLs are checked at start-up, not per lead."""
    monkeypatch.setenv("KEY_WITH_NEWLINE", "secret\n")
    with pytest.raises(ConfigError, match=r"headers: header x-api-key is not a valid"):
        DeclarativeProvider(_provider(headers={"x-api-key": "${KEY_WITH_NEWLINE}"}))
    with pytest.raises(ConfigError, match=r"provider_declarative.url: not an absolute"):
        DeclarativeProvider(
            ProviderConfig.from_settings(
                Settings(provider_declarative={"url": "api.example/match"}), "declarative"
            )
        )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"http_statuses": {"200": "no_match"}}, r"http_statuses: '200' is not a non-2xx"),
        ({"http_statuses": {"404": "gone"}}, r"http_statuses\.404"),
        (
            {"credits_header": "x-call-credits-spent", "batch_credits": "credits_consumed"},
            r"credits_header and batch_credits",
        ),
        ({"auth": {"type": "digest"}}, r"auth"),
        (
            {"auth": {"type": "oauth2_client_credentials", "token_url": "ftp://x",
                      "client_id": "a", "client_secret": "b"}},
            r"auth\.token_url: not an absolute http\(s\) URL",
        ),
    ],
)  # fmt: skip
def test_a_wrong_status_map_charge_or_auth_is_one_line(
    table: dict[str, object], message: str
) -> None:
    """The new keys are checked at start-up: one ConfigError naming the key."""
    with pytest.raises(ConfigError, match=message):
        DeclarativeProvider(_provider(**table))


def test_the_auth_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client secret in ``${ENV}`` that is not set names the variable and the key."""
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    auth = {"type": "basic", "username": "u", "password": "${NO_SUCH_SECRET}"}
    with pytest.raises(ConfigError, match=r"auth\.password: environment variable NO_SUCH_SEC"):
        DeclarativeProvider(_provider(auth=auth))


def test_only_the_http_provider_asks_for_provider_url() -> None:
    """`run` asks the chosen provider: the http one needs provider_url, the declarative one
    and a provider that says nothing do not."""
    from streamproc.provider.registry import load_provider_factory, needs_provider_url

    assert needs_provider_url(load_provider_factory("http"))
    assert not needs_provider_url(load_provider_factory("declarative"))
    assert not needs_provider_url(object)
