"""Providers by entry point name, and the provider setting."""

from __future__ import annotations

import pytest

from streamproc.clay import ClayService
from streamproc.errors import ConfigError
from streamproc.provider.api import Provider
from streamproc.provider.client import ProviderClient
from streamproc.provider.config import ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.provider.registry import installed_providers, load_provider_factory
from streamproc.settings import ProviderMode, Settings


def test_the_built_in_providers_are_entry_points() -> None:
    """http, clay and declarative are registered under streamproc.providers."""
    assert {"http", "clay", "declarative"} <= set(installed_providers())
    assert load_provider_factory("http") is ProviderClient
    assert load_provider_factory("clay") is ClayService
    assert load_provider_factory("declarative") is DeclarativeProvider


def test_the_http_provider_is_a_provider() -> None:
    """Today's contract client implements the public interface."""
    assert isinstance(
        ProviderClient(
            ProviderConfig.from_settings(Settings(provider_url="http://x/enrich"), "http")
        ),
        Provider,
    )


def test_an_unknown_name_lists_the_installed_ones() -> None:
    """One line naming what is installed."""
    with pytest.raises(ConfigError, match=r"'nope' is not installed \(installed: .*http"):
        load_provider_factory("nope")


def test_the_default_follows_provider_mode() -> None:
    """Unset, the provider is http, or clay in Clay mode."""
    assert Settings().provider_name == "http"
    clay = {"clay_webhook_urls": "http://c/hook", "clay_callback_secret": "s"}
    assert Settings.model_validate({**clay, "provider_mode": "clay"}).provider_name == "clay"


def test_provider_clay_is_clay_mode() -> None:
    """provider = clay selects Clay's mode, with its checks."""
    clay = {"clay_webhook_urls": "http://c/hook", "clay_callback_secret": "s"}
    settings = Settings.model_validate({**clay, "provider": "clay"})
    assert settings.provider_mode is ProviderMode.CLAY
    with pytest.raises(ValueError, match="clay needs STREAMPROC_CLAY_WEBHOOK_URLS"):
        Settings(provider="clay")
    with pytest.raises(ValueError, match="disagree"):
        Settings.model_validate({**clay, "provider_mode": "clay", "provider": "http"})
