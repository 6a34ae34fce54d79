"""The user's-mistake check shared by the settings tests: `config show` with ``env`` fails
with exit 2 and one line on stderr (never a traceback); that line is returned."""

from __future__ import annotations

import pytest

from streamproc.cli import main


def config_show_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> str:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(["config", "show"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    return err
