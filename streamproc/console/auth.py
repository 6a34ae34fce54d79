"""Who may read leads, and who may change something, from the console.

Pure. The overview (counts, breaker, budget, lag) and a dry run are open to whoever reaches
the console (like ``/status``). What holds leads (the DLQ's list and a record whole:
e-mails, names, original headers) needs a token: the read token (``console_read_token``)
or the operator token (``console_token``), in an ``Authorization: Bearer <token>`` header;
with neither configured no record is shown to anyone. A replay that moves records needs
the operator token, and so does a change of spending (pause, resume, today's limit).
Tokens are compared in constant time and never echoed; a header, not a URL, carries them,
so they stay out of access logs, browser history and referrers.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = ["Verdict", "check_reader", "check_token"]

_SCHEME = "bearer"


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed``, or the HTTP status to refuse with (401: no or wrong token; 403: the
    console is read-only, or shows no records) and a line for the page."""

    allowed: bool
    status: int = 200
    reason: str = ""


def _value(token: SecretStr | None) -> str:
    return "" if token is None else token.get_secret_value()


def _bearer(authorization: str | None) -> str | None:
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != _SCHEME or not given.strip():
        return None
    return given.strip()


def _matches(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def check_token(
    configured: SecretStr | None,
    authorization: str | None,
    *,
    action: str = "a replay",
    actions: str = "replays",
    refused: str = "nothing was replayed",
) -> Verdict:
    """Whether an ``Authorization`` header carries the operator token; the refusal names
    the ``action`` asked for (a replay, a spending change)."""
    token = _value(configured)
    if not token:
        return Verdict(
            False,
            403,
            "the console is read-only: set STREAMPROC_CONSOLE_TOKEN (or "
            f"STREAMPROC_CONSOLE_TOKEN_FILE) on the server to allow {actions} from the page",
        )
    given = _bearer(authorization)
    if given is None:
        return Verdict(False, 401, f"{action} needs the operator token: enter it and confirm again")
    if not _matches(given, token):
        return Verdict(False, 401, f"the operator token is wrong: {refused}")
    return Verdict(True)


def check_reader(
    operator: SecretStr | None, reader: SecretStr | None, authorization: str | None
) -> Verdict:
    """Whether an ``Authorization`` header carries a token that may read DLQ records: the
    read token or the operator token."""
    tokens = [t for t in (_value(reader), _value(operator)) if t]
    if not tokens:
        return Verdict(
            False,
            403,
            "DLQ records hold leads and are not shown: set STREAMPROC_CONSOLE_READ_TOKEN (or "
            "STREAMPROC_CONSOLE_TOKEN) on the server, then enter it on the page",
        )
    given = _bearer(authorization)
    if given is None:
        return Verdict(False, 401, "DLQ records hold leads: enter the read token to see them")
    # Both compared, whichever matches: the time taken says nothing of which one it was.
    matched = [_matches(given, token) for token in tokens]
    if not any(matched):
        return Verdict(False, 401, "the token is wrong: no record is shown")
    return Verdict(True)
