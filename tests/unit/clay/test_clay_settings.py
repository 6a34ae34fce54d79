"""Clay mode settings: webhook lists from env and flags, and what clay mode refuses."""

from __future__ import annotations

import pytest

from streamproc.cli import main
from streamproc.errors import ConfigError
from streamproc.settings import ProviderMode, load_settings

URLS = "https://api.clay.example/hook/a, https://api.clay.example/hook/b"


def test_webhook_urls_are_comma_separated_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STREAMPROC_CLAY_WEBHOOK_URLS takes a comma-separated list, in order."""
    monkeypatch.setenv("STREAMPROC_PROVIDER_MODE", "clay")
    monkeypatch.setenv("STREAMPROC_CLAY_WEBHOOK_URLS", URLS)
    monkeypatch.setenv("STREAMPROC_CLAY_CALLBACK_SECRET", "s")
    settings = load_settings()
    assert settings.provider_mode is ProviderMode.CLAY
    assert [str(u) for u in settings.clay_webhook_urls] == [
        "https://api.clay.example/hook/a",
        "https://api.clay.example/hook/b",
    ]


def test_webhook_urls_may_also_be_a_json_array() -> None:
    """A JSON array of URLs is read as the list (what some tools write into env vars)."""
    settings = load_settings(clay_webhook_urls='["https://a.example/h1", "https://a.example/h2"]')
    assert [str(u) for u in settings.clay_webhook_urls] == [
        "https://a.example/h1",
        "https://a.example/h2",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clay_callback_secret": "s"}, "STREAMPROC_CLAY_WEBHOOK_URLS"),
        ({"clay_webhook_urls": URLS}, "STREAMPROC_CLAY_CALLBACK_SECRET"),
        (
            {
                "clay_webhook_urls": "https://a.example/h,https://a.example/h",
                "clay_callback_secret": "s",
            },
            "twice",
        ),
        (
            {
                "clay_webhook_urls": URLS,
                "clay_callback_secret": "s",
                "clay_callback_path": "/metrics",
            },
            "clay_callback_path",
        ),
    ],
)
def test_clay_mode_refuses_an_incomplete_configuration(
    monkeypatch: pytest.MonkeyPatch, changes: dict[str, str], message: str
) -> None:
    """No webhooks, no callback secret, a webhook twice or a taken path: one clear line."""
    for name in ("PROVIDER_MODE", "CLAY_WEBHOOK_URLS", "CLAY_CALLBACK_SECRET"):
        monkeypatch.delenv(f"STREAMPROC_{name}", raising=False)
    with pytest.raises(ConfigError, match=message):
        load_settings(provider_mode="clay", **changes)


def test_the_simulator_needs_a_callback_url(capsys: pytest.CaptureFixture[str]) -> None:
    """`mock-provider --mode clay` without --callback-url exits 2 with one line."""
    assert main(["mock-provider", "--mode", "clay"]) == 2
    assert "--callback-url" in capsys.readouterr().err


def test_the_simulator_refuses_impossible_rates(capsys: pytest.CaptureFixture[str]) -> None:
    """Missing plus error rate above 1 is refused before anything starts."""
    code = main(
        [
            "mock-provider",
            "--mode",
            "clay",
            "--callback-url",
            "http://127.0.0.1:1/cb",
            "--missing-rate",
            "0.7",
            "--error-rate",
            "0.6",
        ]
    )
    assert code == 2
    assert "must not exceed 1" in capsys.readouterr().err
