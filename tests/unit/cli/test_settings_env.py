"""The environment: secrets from `_FILE` variables, and a misspelt `STREAMPROC_*` variable
(or TOML key) refused in one line that names the nearest setting."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streamproc.cli import main
from streamproc.settings import load_settings


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_a_secret_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A _FILE variable gives the secret (trailing newline dropped); config show masks it."""
    key = tmp_path / "key"
    key.write_text("sk-from-file\n")
    monkeypatch.setenv("STREAMPROC_PROVIDER_API_KEY_FILE", str(key))
    settings = load_settings()
    assert settings.provider_api_key is not None
    assert settings.provider_api_key.get_secret_value() == "sk-from-file"
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert "sk-from-file" not in out
    assert orjson.loads(out)["provider_api_key"] == "**********"


@pytest.mark.parametrize(
    ("content", "both", "says"),
    [
        (None, False, "STREAMPROC_SASL_PASSWORD_FILE: cannot read"),
        ("\n", False, "STREAMPROC_SASL_PASSWORD_FILE: "),
        ("hunter2", True, "are both set: give the secret one way"),
    ],
)
def test_a_bad_secret_file_is_one_line(
    content: str | None,
    both: bool,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing or empty file, or the secret given twice, is one line and exit 2."""
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("STREAMPROC_SASL_PASSWORD_FILE", str(path))
    if both:
        monkeypatch.setenv("STREAMPROC_SASL_PASSWORD", "other")
    assert main(["config", "show"]) == 2
    err = _one_line_error(capsys)
    assert says in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("variable", "says"),
    [
        (
            "STREAMPROC_MAX_INFLIGHT",
            "unknown environment variable STREAMPROC_MAX_INFLIGHT: did you mean "
            "STREAMPROC_MAX_IN_FLIGHT?",
        ),
        ("STREAMPROC_PROVIDER_APIKEY_FILE", "did you mean STREAMPROC_PROVIDER_API_KEY_FILE?"),
        ("STREAMPROC_GROUP_ID_FILE", "only secrets are read from a file; set STREAMPROC_GROUP_ID"),
        ("STREAMPROC_ZZZ", "no setting has that name"),
    ],
)
def test_an_unknown_variable_suggests_the_nearest(
    variable: str, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A STREAMPROC_* variable that is no setting is one line naming the closest setting."""
    monkeypatch.setenv(variable, "64")
    assert main(["config", "show"]) == 2
    assert says in _one_line_error(capsys)


def test_the_test_suites_variables_are_not_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """STREAMPROC_TEST_BOOTSTRAP (CI exports it) is not mistaken for a misspelt setting."""
    monkeypatch.setenv("STREAMPROC_TEST_BOOTSTRAP", "127.0.0.1:9092")
    assert main(["config", "show"]) == 0


def test_a_misspelt_key_in_the_config_file_suggests_the_nearest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in the TOML file is named with the setting it is closest to."""
    config = tmp_path / "streamproc.toml"
    config.write_text("max_in_flite = 10\n")
    assert main(["config", "show", "--config", str(config)]) == 2
    assert "unknown setting 'max_in_flite': did you mean max_in_flight?" in _one_line_error(capsys)
