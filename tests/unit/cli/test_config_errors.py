"""Bad configuration is one clear line and exit 2; config show masks secrets."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streamproc.cli import main
from tests.unit.config_errors import config_show_error


@pytest.mark.parametrize(
    ("env", "setting", "says"),
    [
        ({"STREAMPROC_PROVIDER_URL": "not a url"}, "provider_url", "URL"),
        ({"STREAMPROC_BUDGET_DAILY_CREDITS": "-5"}, "budget_daily_credits", "greater than"),
        ({"STREAMPROC_ON_BREAKER_OPEN": "panic"}, "on_breaker_open", "'hold' or 'dlq'"),
        ({"STREAMPROC_SSL_CAFILE": "/nonexistent/ca.pem"}, "ssl_cafile", "cannot read"),
        ({"STREAMPROC_BUDGET_TIMEZONE": "Mars/Olympus"}, "budget_timezone", "IANA"),
        ({"STREAMPROC_START_OFFSET": "beginning"}, "start_offset", "`earliest`, `latest`"),
        ({"STREAMPROC_START_OFFSET": "2026-12-01T00:00:00"}, "start_offset", "its zone"),
        ({"STREAMPROC_TOPIC_REPLICATION_FACTOR": "0"}, "replication", "-1 for the broker"),
        # A rule between two settings: said as such, never "invalid setting settings".
        (
            {"STREAMPROC_PROVIDER_BACKOFF_BASE_S": "5", "STREAMPROC_PROVIDER_BACKOFF_MAX_S": "1"},
            "settings do not fit together",
            "provider_backoff_max_s must be >= provider_backoff_base_s",
        ),
        (
            {
                "STREAMPROC_CREDITS_PER_LEAD": "2",
                "STREAMPROC_WATERFALL": '{"max_credits_per_lead": 3}',
            },
            "settings do not fit together",
            "credits_per_lead (2) must be at least the waterfall's max_credits_per_lead (3)",
        ),
        ({"STREAMPROC_MAX_IN_FLIGHT": "many"}, "max_in_flight", "integer"),
        ({"STREAMPROC_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL", "SASL_USERNAME"),
    ],
)
def test_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    setting: str,
    says: str,
) -> None:
    """Each invalid value names the setting and what it accepts, without a traceback."""
    err = config_show_error(monkeypatch, capsys, env)
    assert setting in err
    assert says in err
    assert "Traceback" not in err


def test_flag_wins_over_env_and_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Precedence: flag over environment over TOML file over default."""
    config = tmp_path / "streamproc.toml"
    config.write_text('max_in_flight = 10\ngroup_id = "from-file"\ncommit_interval_ms = 300\n')
    monkeypatch.setenv("STREAMPROC_MAX_IN_FLIGHT", "20")
    monkeypatch.setenv("STREAMPROC_GROUP_ID", "from-env")
    code = main(["config", "show", "--json", "--config", str(config), "--group-id", "from-flag"])
    shown = orjson.loads(capsys.readouterr().out)
    assert code == 0
    assert shown["group_id"] == "from-flag"
    assert shown["max_in_flight"] == 20
    assert shown["commit_interval_ms"] == 300


def test_unknown_key_in_config_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A typo in the TOML file is named, not silently ignored."""
    config = tmp_path / "streamproc.toml"
    config.write_text("max_in_flite = 10\n")
    assert main(["config", "show", "--config", str(config)]) == 2
    assert "max_in_flite" in capsys.readouterr().err


def test_config_show_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Secrets are printed as asterisks, never in clear."""
    monkeypatch.setenv("STREAMPROC_PROVIDER_API_KEY", "sk-very-secret")
    monkeypatch.setenv("STREAMPROC_SASL_PASSWORD", "hunter2")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "sk-very-secret" not in out
    assert "hunter2" not in out
    assert "**********" in out


def test_run_without_provider_url_says_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` without a provider URL explains which variable or flag to set."""
    monkeypatch.delenv("STREAMPROC_PROVIDER_URL", raising=False)
    assert main(["run"]) == 2
    assert "STREAMPROC_PROVIDER_URL" in capsys.readouterr().err


def test_a_revoke_grace_not_well_below_the_rebalance_timeout_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """revoke_grace_s above half of max_poll_interval_ms (the group's rebalance timeout) is
    one line naming both: a revoking member would be dropped from the group."""
    err = config_show_error(
        monkeypatch,
        capsys,
        {"STREAMPROC_REVOKE_GRACE_S": "10", "STREAMPROC_MAX_POLL_INTERVAL_MS": "15000"},
    )
    assert "revoke_grace_s" in err and "max_poll_interval_ms" in err
