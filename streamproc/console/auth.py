"""Who may change something from the console: the holder of the operator token.

Pure. Reading the DLQ, the state and a dry run are open to whoever reaches the ops port
(like ``/status``); a replay that moves records needs ``console_token`` in an
``Authorization: Bearer <token>`` header. Without a configured token the console is
read-only for everyone. The token is compared in constant time and never echoed; a header,
not a URL, carries it, so it stays out of access logs, browser history and referrers.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = ["Verdict", "check_token"]

_SCHEME = "bearer"


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed``, or the HTTP status to refuse with (401: no or wrong token; 403: the
    console is read-only) and a line for the page."""

    allowed: bool
    status: int = 200
    reason: str = ""


def check_token(configured: SecretStr | None, authorization: str | None) -> Verdict:
    """Whether an ``Authorization`` header carries the operator token."""
    token = "" if configured is None else configured.get_secret_value()
    if not token:
        return Verdict(
            False,
            403,
            "the console is read-only: set STREAMPROC_CONSOLE_TOKEN (or "
            "STREAMPROC_CONSOLE_TOKEN_FILE) on the server to allow replays from the page",
        )
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != _SCHEME or not given.strip():
        return Verdict(False, 401, "a replay needs the operator token: enter it and confirm again")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Verdict(False, 401, "the operator token is wrong: nothing was replayed")
    return Verdict(True)
