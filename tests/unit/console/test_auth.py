"""The operator token: who may move records from the console."""

from __future__ import annotations

from pydantic import SecretStr

from streamproc.console.auth import check_reader, check_token
from streamproc.console.config import ConsoleConfig

TOKEN = SecretStr("s3cret-token")


def test_no_token_configured_is_read_only_for_everyone() -> None:
    """Unset (or empty), every replay is 403, whatever the header says."""
    for configured in (None, SecretStr("")):
        verdict = check_token(configured, "Bearer s3cret-token")
        assert (verdict.allowed, verdict.status) == (False, 403)
        assert "STREAMPROC_CONSOLE_TOKEN" in verdict.reason


def test_the_right_bearer_token_is_allowed() -> None:
    """``Bearer <token>`` (any case of the scheme, spaces around) is let through."""
    assert check_token(TOKEN, "Bearer s3cret-token").allowed
    assert check_token(TOKEN, "  bearer   s3cret-token ").allowed


def test_a_missing_or_wrong_token_is_401_and_never_echoed() -> None:
    """No header, another scheme, an empty or a wrong token: 401, the token not in the line."""
    for header in (None, "", "Basic czNjcmV0", "Bearer", "Bearer s3cret-tokenX", "s3cret-token"):
        verdict = check_token(TOKEN, header)
        assert (verdict.allowed, verdict.status) == (False, 401), header
        assert "s3cret" not in verdict.reason


def test_the_console_mounts_on_an_ops_server_before_it_starts() -> None:
    """``OpsServer.mount`` hands the console the server's application: its routes are there."""
    from streamproc.console import Console
    from streamproc.ops.http import OpsServer
    from streamproc.ops.metrics import Metrics
    from streamproc.settings import Settings

    ops = OpsServer("127.0.0.1", 0, Metrics(), lambda: {}, lambda: (True, []))
    console = Console(
        ConsoleConfig.from_settings(Settings()), state=lambda: {}, restored=lambda: True
    )
    ops.mount(console.install)
    paths = {getattr(r.resource, "canonical", None) for r in ops.app.router.routes()}
    assert {
        "/console/",
        "/console/api/overview",
        "/console/api/dlq",
        "/console/api/replay",
    } <= paths
    assert "/metrics" in paths


def test_records_are_hidden_from_everyone_without_a_configured_token() -> None:
    """Neither the read nor the operator token set: no header shows a record (403)."""
    for header in (None, "Bearer anything", "Bearer "):
        verdict = check_reader(None, SecretStr(""), header)
        assert (verdict.allowed, verdict.status) == (False, 403)
        assert "STREAMPROC_CONSOLE_READ_TOKEN" in verdict.reason


def test_the_read_token_or_the_operator_token_reads_records() -> None:
    """Either configured token, as a Bearer header, reads; nothing else does (401)."""
    read = SecretStr("r3ad-token")
    assert check_reader(TOKEN, read, "Bearer r3ad-token").allowed
    assert check_reader(TOKEN, read, "bearer s3cret-token").allowed
    assert check_reader(None, read, "Bearer r3ad-token").allowed
    assert check_reader(TOKEN, None, "Bearer s3cret-token").allowed
    for header in (None, "Bearer wrong", "Basic cjNhZC10b2tlbg==", "r3ad-token"):
        verdict = check_reader(TOKEN, read, header)
        assert (verdict.allowed, verdict.status) == (False, 401), header
        assert "r3ad-token" not in verdict.reason and "s3cret-token" not in verdict.reason


def test_the_read_token_does_not_replay() -> None:
    """A replay checks the operator token only: the read token is refused."""
    assert check_token(TOKEN, "Bearer r3ad-token").status == 401
