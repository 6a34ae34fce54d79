"""The console's narrow configuration: every field from its setting, no secret shown, and
the bind address its listener takes."""

from __future__ import annotations

from streamproc.console.api import console_bind_host
from streamproc.console.config import ConsoleConfig
from streamproc.replay.config import ReplayConfig
from streamproc.settings import Settings

#: ConsoleConfig fields read from the setting of the same name.
SAME_NAME = (
    "console_host",
    "console_port",
    "http_port",
    "console_allowed_hosts",
    "console_token",
    "console_read_token",
)


def test_every_field_comes_from_its_setting() -> None:
    """With every setting it reads away from its default, each field holds its setting's
    value, the DLQ part is the replay's own, and no token shows in its repr."""
    settings = Settings.model_validate(
        {
            "console_host": "10.0.0.7",
            "console_port": 8181,
            "http_port": 9191,
            "console_allowed_hosts": "console.example",
            "console_token": "op-tok-1a2b",
            "console_read_token": "read-tok-3c4d",
            "group_id": "enrich-eu",
            "waterfall": {
                "adaptive": {"window_days": 9},
                "providers": {"p": {"url": "https://p.example/x"}},
                "steps": [{"provider": "p"}],
            },
        }
    )
    defaults = Settings()
    config = ConsoleConfig.from_settings(settings)
    for name in SAME_NAME:
        assert getattr(config, name) == getattr(settings, name), name
        assert getattr(settings, name) != getattr(defaults, name), name
    assert config.window_days == 9
    assert ConsoleConfig.from_settings(defaults).window_days != 9
    assert config.replay == ReplayConfig.from_settings(settings)
    assert "op-tok-1a2b" not in repr(config)
    assert "read-tok-3c4d" not in repr(config)


def test_the_console_binds_its_own_host_only_with_its_own_port() -> None:
    """console_host with console_port; the ops server's http_host without it."""
    own = ConsoleConfig.from_settings(Settings(console_host="10.1.1.1", console_port=8181))
    shared = ConsoleConfig.from_settings(Settings(console_host="10.1.1.1", http_host="10.2.2.2"))
    assert console_bind_host(own) == "10.1.1.1"
    assert console_bind_host(shared) == "10.2.2.2"
