"""`streamproc replay` flags: validated before anything connects, one line, exit code 2."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamproc.cli import _build_parser, main
from streamproc.errors import ConfigError
from streamproc.replay.command import options_from_args
from streamproc.replay.replayer import ReplayOptions

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def _options(*argv: str) -> ReplayOptions:
    return options_from_args(_build_parser().parse_args(["replay", *argv]), now=NOW)


def test_defaults() -> None:
    """No flags: every record, max 3 attempts, no rate, no follow, no dry run."""
    options = _options()
    assert not options.filters.active
    assert (options.max_attempts, options.limit, options.rate_per_s) == (3, None, None)
    assert not (options.follow)
    assert not (options.dry_run)
    assert not options.force


def test_all_flags_parse() -> None:
    """Every filter and knob lands in the options."""
    options = _options(
        "--error-class", "rate_limited", "--error-class", "internal", "--since", "2h",
        "--until", "2026-11-26T02:30:00Z", "--key", "L1", "--limit", "5",
        "--max-attempts", "4", "--rate", "2.5", "--dry-run", "--force",
        "--retriable", "true", "--attempt", "1-2",
    )  # fmt: skip
    assert options.filters.error_classes == {"rate_limited", "internal"}
    assert options.filters.since == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert options.filters.retriable == {True}
    assert (options.filters.min_attempt, options.filters.max_attempt) == (1, 2)
    assert (options.limit, options.max_attempts, options.rate_per_s) == (5, 4, 2.5)
    assert options.dry_run
    assert options.force
    assert options.batch_size == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--limit", "0"], "--limit '0': expected a whole number >= 1"),
        (["--limit", "ten"], "--limit 'ten': expected a whole number >= 1"),
        (["--max-attempts", "0"], "--max-attempts '0'"),
        (["--rate", "-1"], "--rate '-1': expected records per second > 0"),
        (["--rate", "nan"], "--rate 'nan'"),
        (["--since", "last tuesday"], "--since 'last tuesday': expected an ISO-8601"),
        (["--error-class", "timeout"], "--error-class 'timeout' is not an error class"),
        (["--follow", "--key", "x"], "--follow cannot be combined"),
        (["--follow", "--attempt", "2"], "--follow cannot be combined"),
        (["--follow", "--dry-run"], "cannot --follow"),
    ],
)
def test_bad_flags_are_one_line_config_errors(argv: list[str], message: str) -> None:
    """Each bad input is a ConfigError whose one line names the flag."""
    with pytest.raises(ConfigError) as info:
        _options(*argv)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_exit_code_2_and_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """`streamproc replay --since garbage` exits 2 with one line on stderr, before connecting."""
    code = main(["replay", "--since", "garbage", "--bootstrap-servers", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("streamproc: --since 'garbage'")


def test_dlq_stats_bad_max_attempts_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`dlq stats --max-attempts 0` is refused as bad input."""
    assert main(["dlq", "stats", "--max-attempts", "0"]) == 2
    assert "--max-attempts '0'" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["http", "-1", "70000"])
def test_a_bad_metrics_port_is_one_line(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--metrics-port takes 0 to 65535; anything else is refused before connecting."""
    assert main(["replay", "--metrics-port", port, "--bootstrap-servers", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"streamproc: --metrics-port {port!r}") or err.startswith(
        f"streamproc: --metrics-port {port}:"
    )
