"""The HTTP endpoint Clay's HTTP API column calls back: ``POST <clay_callback_path>``.

Mounted on the process's ops server (same port as ``/metrics``). Per request, in order:

=============================================  ======  ==========================
what                                           status  ``result`` label (metric)
=============================================  ======  ==========================
not started, stopping, or Kafka did not take   503     ``unavailable``
body over ``clay_callback_max_bytes``          413     ``too_large``
body not received within 10 s                  408     ``bad_request``
auth header missing or wrong                   401     ``unauthorized``
not JSON, not a callback, no correlation id    400     ``bad_request``
no such submission (after                      404     ``unknown_lead``
``clay_callback_wait_s``), nor any of the lead
correlation id of no pending submission of a   409     ``correlation_mismatch``
lead that has others pending (logged)
submission finished before (a duplicate, a     200     ``duplicate``
replay, or late)
submission published now                       200     ``enriched`` / ``error_row``
=============================================  ======  ==========================

The size is checked before anything is read (``Content-Length``) and while reading, so an
oversized body is never buffered; authentication comes before parsing, so nothing of an
unauthenticated body is interpreted. A 200 is answered only once the lead's output is
committed to Kafka: a callback that got 200 is never lost. Bodies of answers are small JSON
objects: ``{"status": "published"|"duplicate", "outcome": ...}`` or ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import orjson
from aiohttp import web

from streamproc.clay.callback import BadCallback, Callback, authenticate, parse_callback
from streamproc.clay.finisher import FinishUnavailable
from streamproc.logs import get_logger
from streamproc.settings import CallbackAuth

__all__ = ["CallbackReceiver", "CallbackResult", "CallbackSink", "Refusal"]

log = get_logger(__name__)

_READ_CHUNK = 65_536
#: A client trickling its body must not hold a handler (and its memory) for long.
_BODY_TIMEOUT_S = 10.0


class CallbackResult(StrEnum):
    """What the sink made of a valid, authenticated callback; its value is the answer's
    ``clay_callbacks`` metric label (and, for a published one, the body's ``outcome``)."""

    ENRICHED = "enriched"
    ERROR_ROW = "error_row"
    DUPLICATE = "duplicate"
    UNKNOWN_LEAD = "unknown_lead"
    CORRELATION_MISMATCH = "correlation_mismatch"


class Refusal(StrEnum):
    """A callback the receiver answered itself, before the sink; its value is the answer's
    ``clay_callbacks`` metric label."""

    UNAUTHORIZED = "unauthorized"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"


class CallbackSink(Protocol):
    """What the receiver hands a valid, authenticated callback to."""

    @property
    def ready(self) -> bool: ...

    async def complete(self, callback: Callback) -> CallbackResult: ...


class CallbackReceiver:
    def __init__(
        self,
        sink: CallbackSink,
        *,
        mode: CallbackAuth,
        secret: str,
        auth_header: str,
        max_bytes: int,
        on_result: Callable[[CallbackResult | Refusal], None] | None = None,
    ) -> None:
        self._sink = sink
        self._mode = mode
        self._secret = secret
        self._header = auth_header
        self._max_bytes = max_bytes
        self._on_result = on_result or (lambda _: None)

    async def handle(self, request: web.Request) -> web.Response:
        if not self._sink.ready:
            return self._answer(Refusal.UNAVAILABLE, 503, {"error": "not ready"})
        length = request.content_length
        if length is not None and length > self._max_bytes:
            return self._answer(Refusal.TOO_LARGE, 413, {"error": "body too large"})
        try:
            async with asyncio.timeout(_BODY_TIMEOUT_S):
                body = await _read_limited(request, self._max_bytes)
        except TimeoutError:
            return self._answer(Refusal.BAD_REQUEST, 408, {"error": "body too slow"})
        if body is None:
            return self._answer(Refusal.TOO_LARGE, 413, {"error": "body too large"})
        if not authenticate(self._mode, self._secret, request.headers.get(self._header), body):
            log.warning("clay.callback_unauthorized", remote=request.remote, mode=self._mode.value)
            return self._answer(Refusal.UNAUTHORIZED, 401, {"error": "unauthorized"})
        try:
            callback = parse_callback(body)
        except BadCallback as exc:
            return self._answer(Refusal.BAD_REQUEST, 400, {"error": str(exc)})
        try:
            result = await self._sink.complete(callback)
        except FinishUnavailable:
            return self._answer(Refusal.UNAVAILABLE, 503, {"error": "try again later"})
        if result is CallbackResult.UNKNOWN_LEAD:
            return self._answer(result, 404, {"error": "no such pending lead"})
        if result is CallbackResult.CORRELATION_MISMATCH:
            return self._answer(
                result, 409, {"error": "correlation_id matches no pending submission"}
            )
        if result is CallbackResult.DUPLICATE:
            return self._answer(result, 200, {"status": "duplicate"})
        return self._answer(result, 200, {"status": "published", "outcome": result.value})

    def _answer(
        self, result: CallbackResult | Refusal, status: int, payload: dict[str, str]
    ) -> web.Response:
        self._on_result(result)
        return web.Response(
            status=status, body=orjson.dumps(payload), content_type="application/json"
        )


async def _read_limited(request: web.Request, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``max_bytes`` (the rest is never buffered)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
