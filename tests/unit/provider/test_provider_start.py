"""A third-party provider that raises while built or started: one line, exit 2."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from streamproc import app as app_module
from streamproc.cli import main
from streamproc.errors import ConfigError
from streamproc.provider.api import Answer, LeadIn


class _Broken:
    def __init__(self, settings: object) -> None:
        raise RuntimeError("no SDK key\nsecond line")


class _WontStart:
    batch_size = 1

    def __init__(self, settings: object) -> None: ...

    async def start(self) -> None:
        raise OSError("socket refused")

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        return []


def test_a_factory_that_raises_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _Broken)
    monkeypatch.setenv("STREAMPROC_PROVIDER_URL", "http://127.0.0.1:9/enrich")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    want = "streamproc: provider http failed to start: RuntimeError: no SDK key second line\n"
    assert err == want


async def test_a_start_that_raises_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamproc.settings import Settings

    monkeypatch.setattr(app_module, "load_provider_factory", lambda name: _WontStart)
    app = app_module.App(Settings(provider_url="http://127.0.0.1:9/enrich"))
    assert app.provider is not None
    want = r"^provider http failed to start: OSError: socket refused$"
    with pytest.raises(ConfigError, match=want):
        await app._start_provider(app.provider)
