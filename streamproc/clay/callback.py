"""Clay's callback, as pure functions: who may send it (:func:`authenticate`) and what it
says (:func:`parse_callback`). The HTTP handler is :mod:`streamproc.clay.receiver`.

Authentication, by ``clay_callback_auth``:

* ``header``: the header ``clay_callback_auth_header`` carries the shared secret itself
  (what a Clay HTTP API column can do with a static header);
* ``hmac``: the header carries ``sha256=<hex>`` (or the bare hex), the HMAC-SHA256 of the
  *raw* body keyed with the secret: the secret never travels, and a body changed on the
  way does not verify.

Both compare in constant time. Anything else (no header, wrong value, wrong signature) is
refused; the receiver answers 401 and counts it.

The body is a JSON object, the row Clay's HTTP API column sends::

    {"lead_id": "L1", "correlation_id": "…", "data": {…}, "credits": 6}
    {"lead_id": "L1", "correlation_id": "…", "error": "no email found"}

``lead_id`` and ``correlation_id`` (the value sent with the row) are required: the
correlation id names the one submission the callback is about, so a callback captured on
the way cannot be replayed against a later submission of the same lead (see
:mod:`streamproc.clay.completer`). ``error`` (a non-empty string) makes it an *error row*. Otherwise
``data`` is the enrichment when it is an object; when it is absent, every other column is
the enrichment (a Clay table maps its columns into the body one by one). ``credits`` is
optional (a whole number >= 0): what Clay charged, else the configured estimate.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.provider.classify import whole_credits
from streamproc.settings import CallbackAuth

__all__ = ["BadCallback", "Callback", "authenticate", "parse_callback", "sign"]

_RESERVED = frozenset({"lead_id", "correlation_id", "credits", "error", "data"})
#: Longest lead id accepted (the Lead model's limit).
_MAX_LEAD_ID = 256
#: Longest correlation id accepted: ours are 32 hex characters; room for other formats.
_MAX_CORRELATION_ID = 128


class BadCallback(ValueError):
    """The callback body is not one we can use; the message is safe to send back."""


@dataclass(frozen=True, slots=True)
class Callback:
    lead_id: str
    correlation_id: str
    data: dict[str, Any] | None
    error: str | None
    credits: int | None


def sign(secret: str, body: bytes) -> str:
    """The ``hmac`` mode header value for ``body``: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def authenticate(mode: CallbackAuth, secret: str, header: str | None, body: bytes) -> bool:
    """Whether the callback's auth header proves knowledge of ``secret``."""
    if not header or not secret:
        return False
    if mode is CallbackAuth.HEADER:
        return hmac.compare_digest(header.encode(), secret.encode())
    presented = header.strip()
    if presented.lower().startswith("sha256="):
        presented = presented[len("sha256=") :]
    expected = sign(secret, body)[len("sha256=") :]
    return hmac.compare_digest(presented.lower().encode(), expected.encode())


def parse_callback(body: bytes) -> Callback:
    """The callback in ``body``, or :class:`BadCallback` saying what is wrong with it."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadCallback("body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadCallback("body must be a JSON object")
    lead_id = payload.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id or len(lead_id) > _MAX_LEAD_ID:
        raise BadCallback("lead_id must be a non-empty string")
    correlation = payload.get("correlation_id")
    if (
        not isinstance(correlation, str)
        or not correlation
        or len(correlation) > _MAX_CORRELATION_ID
    ):
        raise BadCallback("correlation_id must be the non-empty string sent with the row")
    credits = payload.get("credits")
    if credits is not None:
        # Any JSON number counts (6.0 is 6; a fraction rounds up), as for the sync provider.
        credits = whole_credits(credits)
        if credits is None:
            raise BadCallback("credits must be a number >= 0")
    error = payload.get("error")
    if error is not None and error != "":
        if not isinstance(error, str):
            raise BadCallback("error must be a string")
        return Callback(lead_id, correlation, None, error, credits)
    data = _data(payload)
    return Callback(lead_id, correlation, data, None, credits)


def _data(payload: Mapping[str, Any]) -> dict[str, Any]:
    if "data" in payload:
        data = payload["data"]
        if not isinstance(data, dict):
            raise BadCallback("data must be a JSON object")
        return data
    columns = {k: v for k, v in payload.items() if k not in _RESERVED}
    if not columns:
        raise BadCallback("callback carries neither data nor error")
    return columns
