"""`streamproc run` on a port that is taken: one line naming the setting, not a traceback."""

from __future__ import annotations

import socket

import pytest

from streamproc.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_a_taken_port_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `run` on the same host finds the ops port taken: one line, exit 2, before
    Kafka is contacted."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("STREAMPROC_HTTP_HOST", "127.0.0.1")
        monkeypatch.setenv("STREAMPROC_HTTP_PORT", str(port))
        monkeypatch.setenv("STREAMPROC_PROVIDER_URL", "http://127.0.0.1:9/enrich")
        monkeypatch.setenv("STREAMPROC_BOOTSTRAP_SERVERS", "127.0.0.1:9")
        assert main(["run"]) == 2
    assert _one_line_error(capsys) == (
        f"streamproc: http_port: port {port} on 127.0.0.1 is in use (a second streamproc run "
        "on this host?): give each process its own STREAMPROC_HTTP_PORT / --http-port, or 0 "
        "for any free port"
    )
