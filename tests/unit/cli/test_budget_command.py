"""`streamproc budget`: a bad lever is one line on stderr and exit 2, before any connection."""

from __future__ import annotations

import pytest

from streamproc.cli import main

#: Nothing listens here: a command that tried to connect would fail differently (exit 1).
_NOWHERE = ["--bootstrap-servers", "127.0.0.1:1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set-limit", "ten", "--reason", "r"], "set-limit ten: expected a whole number"),
        (["set-limit", "-5", "--reason", "r"], "set-limit -5: expected a whole number"),
        (["pause", "--reason", "  "], "--reason must be a non-empty text"),
        (["resume", "--reason", "r", "--by", ""], "--by must be a non-empty text"),
    ],
)
def test_a_bad_lever_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input: exit 2 and one line naming it, no traceback, no broker asked."""
    assert main(["budget", *argv, *_NOWHERE]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"streamproc: {message}" or (err.startswith("streamproc: ") and message in err)
    assert "\n" not in err


def test_a_lever_without_a_reason_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--reason is required: every change says why."""
    with pytest.raises(SystemExit) as info:
        main(["budget", "pause", *_NOWHERE])
    assert info.value.code == 2
    assert "--reason" in capsys.readouterr().err
