"""Log lines of every format never carry a secret, a traceback's locals or a lead's PII."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from streamproc.logs import configure_logging, get_logger

API_KEY = "sk-live-SECRET-9f8e7d"
EMAIL = "jane.doe@acme.example"
PHONE = "+1-555-0100-77"
NAME = "Janet Secretperson"
FORMATS = ["json", "console"]


class _Lead(BaseModel):
    lead_id: str


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test configures logging itself; the default configuration is restored after."""
    yield
    configure_logging("INFO", "json")


def _call_provider(lead: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": lead["lead_id"]}
    body = repr(lead).encode()
    # The locals above (the key in a header, the lead) are what a traceback must not show.
    raise ConnectionError(f"provider unreachable after {len(body)} bytes, {len(headers)} headers")


def _lead() -> dict[str, Any]:
    return {"lead_id": "l-1", "email": EMAIL, "phone": PHONE, "name": NAME}


@pytest.mark.parametrize("fmt", FORMATS)
def test_traceback_locals_are_never_printed(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An exception logged with its traceback shows where and what, never the frames'
    locals: no API key from the headers, no e-mail, phone or name from the lead."""
    configure_logging("INFO", fmt)
    lead = _lead()
    try:
        _call_provider(lead)
    except ConnectionError:
        get_logger("test").exception("lead.failed", lead_id=lead["lead_id"])
    out = capsys.readouterr().err
    for secret in (API_KEY, EMAIL, PHONE, NAME):
        assert secret not in out
    assert "lead.failed" in out
    assert "ConnectionError: provider unreachable" in out
    assert "_call_provider" in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_configured_secrets_are_masked_wherever_they_appear(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A configured secret is masked in event values, nested values, exception messages and
    chained causes, in both formats."""
    configure_logging("INFO", fmt, secrets=[API_KEY])
    log = get_logger("test")
    log.info("start", url=f"https://provider.example/enrich?api_key={API_KEY}")
    log.info("nested", headers={"authorization": [f"Bearer {API_KEY}"]})
    try:
        try:
            raise KeyError(f"header Authorization: Bearer {API_KEY}")
        except KeyError as exc:
            raise RuntimeError(f"request failed with key {API_KEY}") from exc
    except RuntimeError:
        log.exception("failed")
    out = capsys.readouterr().err
    assert API_KEY not in out
    assert out.count("**********") >= 4
    assert "RuntimeError: request failed with key **********" in out


def test_secret_is_masked_in_its_json_escaped_form(capsys: pytest.CaptureFixture[str]) -> None:
    """A secret with a quote or a backslash is found in the JSON line, where it is escaped."""
    secret = 'pa"ss\\word-123'
    configure_logging("INFO", "json", secrets=[secret])
    get_logger("test").info("login", password_hint=secret)
    out = capsys.readouterr().err
    assert 'pa\\"ss\\\\word-123' not in out
    assert "**********" in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_pydantic_input_values_and_emails_in_exceptions_are_masked(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A validation error quoting the lead, and an e-mail in any exception text, are masked."""
    configure_logging("INFO", fmt)
    try:
        _Lead.model_validate({"lead_id": 7, "email": EMAIL, "name": NAME})
    except ValidationError:
        get_logger("test").exception("invalid")
    try:
        raise ValueError(f"no domain in {EMAIL}")
    except ValueError:
        get_logger("test").exception("unreadable")
    out = capsys.readouterr().err
    assert "ValidationError" in out
    assert "input_value=**********" in out
    assert "j***@acme.example" in out
    assert EMAIL not in out
    assert NAME not in out


def test_console_traceback_cannot_forge_a_line_with_a_carriage_return(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CR in an exception message is escaped in the console traceback."""
    configure_logging("INFO", "console")
    try:
        raise ValueError("bad lead_id x\rINFO forged")
    except ValueError:
        get_logger("test").exception("invalid")
    out = capsys.readouterr().err
    assert "\r" not in out
    assert "x\\rINFO forged" in out


def test_standard_library_lines_are_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    """aiokafka's and asyncio's lines (the standard library's logging) mask secrets and e-mails."""
    root = logging.getLogger()
    others, root.handlers = root.handlers, []
    level = root.level
    try:
        configure_logging("INFO", "json", secrets=[API_KEY])
        logging.getLogger("aiokafka.conn").error("sasl failed for %s with %s", EMAIL, API_KEY)
    finally:
        for handler in root.handlers:
            root.removeHandler(handler)
        root.handlers = others
        root.setLevel(level)
    out = capsys.readouterr().err
    assert "sasl failed for j***@acme.example with **********" in out
    assert API_KEY not in out


def test_a_second_configuration_replaces_the_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """configure_logging called again masks the new secrets (the CLI configures twice)."""
    configure_logging("INFO", "json", secrets=["first-secret"])
    configure_logging("INFO", "json", secrets=["second-secret"])
    get_logger("test").info("both", a="first-secret", b="second-secret")
    out = capsys.readouterr().err
    assert "second-secret" not in out
    assert "first-secret" in out


def test_the_coordinator_election_transient_is_not_an_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """aiokafka's ERROR "GroupCoordinatorNotAvailable" while a fresh broker elects the
    coordinator is dropped at INFO (the demo's first screen showed it); other aiokafka
    errors still print."""
    import logging

    from streamproc import logs

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        logs.configure_logging("INFO", "json")
        coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
        coordinator.error(
            "Group Coordinator Request failed: %s", "[Error 15] GroupCoordinatorNotAvailableError"
        )
        coordinator.error(
            "Group Coordinator Request failed: %s", "[Error 30] GroupAuthorizationFailed"
        )
    finally:
        for handler in root.handlers:
            root.removeHandler(handler)
        root.handlers = saved
    err = capsys.readouterr().err
    assert "GroupCoordinatorNotAvailable" not in err
    assert "GroupAuthorizationFailed" in err


@pytest.mark.parametrize(("no_color", "escapes"), [("1", False), ("", True)])
def test_no_color_turns_off_the_console_formats_colours(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_color: str,
    escapes: bool,
) -> None:
    """NO_COLOR (any non-empty value, no-color.org) makes the console format plain text."""
    monkeypatch.setenv("NO_COLOR", no_color)
    configure_logging("INFO", "console")
    get_logger("t").info("lead.committed", lead_id="x-1")
    err = capsys.readouterr().err
    assert "lead.committed" in err
    assert ("\x1b[" in err) is escapes
