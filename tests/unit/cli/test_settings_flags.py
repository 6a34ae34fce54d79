"""A CLI that explains itself: each flag's help from the settings model, choices shown,
yes/no flags, and secrets kept out of flags (a flag shows in `ps`)."""

from __future__ import annotations

import orjson
import pytest

from streamproc.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_help_explains_each_setting_with_default_and_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --help` shows each setting's description, its default and an enum's choices."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--max-in-flight N leads in flight per process (default 256)" in out
    assert "--on-breaker-open {hold,dlq}" in out
    assert "--fallback-enabled, --no-fallback-enabled" in out
    assert "resilience settings (budget, breaker, cache):" in out
    assert "--provider-api-key" not in out
    assert "STREAMPROC_PROVIDER_API_KEY" in out  # named in the note on secrets


@pytest.mark.parametrize(
    ("flag", "expected"), [("--fallback-enabled", True), ("--no-fallback-enabled", False)]
)
def test_booleans_are_yes_no_flags(
    flag: str, expected: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--flag sets a boolean, --no-flag clears it, without a value; the flag beats the env."""
    monkeypatch.setenv("STREAMPROC_FALLBACK_ENABLED", str(not expected).lower())
    assert main(["config", "show", "--json", flag]) == 0
    assert orjson.loads(capsys.readouterr().out)["fallback_enabled"] is expected


def test_a_secret_as_a_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--provider-api-key is refused in one line that says where a secret goes."""
    assert main(["config", "show", "--provider-api-key", "sk-live-123"]) == 2
    err = _one_line_error(capsys)
    assert err == (
        "streamproc: --provider-api-key: secrets are not flags (a flag shows in `ps`); set "
        "STREAMPROC_PROVIDER_API_KEY, or STREAMPROC_PROVIDER_API_KEY_FILE to a file that holds it"
    )
    assert "sk-live-123" not in err
