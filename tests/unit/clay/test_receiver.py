"""The callback endpoint over real HTTP (aiohttp test server) with a fake sink: status codes
and metric results for every kind of request."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamproc.clay.callback import Callback, sign
from streamproc.clay.finisher import FinishUnavailable
from streamproc.clay.receiver import CallbackReceiver, CallbackResult
from streamproc.settings import CallbackAuth

SECRET = "s3cret"
HEADER = "X-Streamproc-Signature"


class _Sink:
    def __init__(self) -> None:
        self.ready = True
        self.calls: list[Callback] = []
        self.answer: CallbackResult | Exception = CallbackResult.ENRICHED

    async def complete(self, callback: Callback) -> CallbackResult:
        self.calls.append(callback)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
async def served() -> AsyncIterator[
    tuple[TestClient[web.Request, web.Application], _Sink, Counter[str]]
]:
    sink = _Sink()
    results: Counter[str] = Counter()
    receiver = CallbackReceiver(
        sink,
        mode=CallbackAuth.HMAC,
        secret=SECRET,
        auth_header=HEADER,
        max_bytes=1_024,
        on_result=lambda r: results.update([r]),
    )
    app = web.Application()
    app.router.add_post("/cb", receiver.handle)
    async with TestClient(TestServer(app)) as client:
        yield client, sink, results


def _signed(payload: object) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, {HEADER: sign(SECRET, body)}


Served = tuple[TestClient[web.Request, web.Application], _Sink, Counter[str]]


async def test_a_signed_callback_is_handed_over_and_answered_published(served: Served) -> None:
    """A correctly signed data callback reaches the sink and is answered 200 published."""
    client, sink, results = served
    body, headers = _signed({"lead_id": "L1", "correlation_id": "c1", "data": {"a": 1}})
    response = await client.post("/cb", data=body, headers=headers)
    assert response.status == 200
    assert await response.json() == {"status": "published", "outcome": "enriched"}
    assert [c.lead_id for c in sink.calls] == ["L1"]
    assert results == {"enriched": 1}


@pytest.mark.parametrize(
    "headers",
    [{}, {HEADER: sign("wrong", b"{}")}, {HEADER: SECRET}],
    ids=["unsigned", "wrong-key", "bare-secret"],
)
async def test_forged_callbacks_are_401_and_never_reach_the_sink(
    served: Served, headers: dict[str, str]
) -> None:
    """Without the right signature: 401, counted as unauthorized, nothing handed over."""
    client, sink, results = served
    body = orjson.dumps({"lead_id": "L1", "data": {"forged": True}})
    response = await client.post("/cb", data=body, headers=headers)
    assert response.status == 401
    assert sink.calls == []
    assert results == {"unauthorized": 1}


async def test_a_signature_of_another_body_is_refused(served: Served) -> None:
    """A valid signature copied onto a changed body does not verify."""
    client, sink, results = served
    _, headers = _signed({"lead_id": "L1", "correlation_id": "c1", "data": {"a": 1}})
    forged = orjson.dumps({"lead_id": "L1", "data": {"a": 2}})
    response = await client.post("/cb", data=forged, headers=headers)
    assert response.status == 401
    assert sink.calls == []
    assert results == {"unauthorized": 1}


async def test_an_oversized_body_is_413_before_anything_else(served: Served) -> None:
    """A body over max_bytes is refused with 413, signed or not."""
    client, sink, results = served
    body, headers = _signed({"lead_id": "L1", "data": {"x": "y" * 2_000}})
    response = await client.post("/cb", data=body, headers=headers)
    assert response.status == 413
    assert results == {"too_large": 1}
    assert sink.calls == []


async def test_an_oversized_chunked_body_is_413_too(served: Served) -> None:
    """Without Content-Length the size is checked while reading."""
    client, _, results = served

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 500

    response = await client.post("/cb", data=chunks(), headers={HEADER: "sha256=00"})
    assert response.status == 413
    assert results == {"too_large": 1}


@pytest.mark.parametrize("payload", [b"{nope", b"[1]", orjson.dumps({"data": {}})])
async def test_signed_garbage_is_400(served: Served, payload: bytes) -> None:
    """A signed body that is not a callback is 400 bad_request."""
    client, sink, results = served
    response = await client.post("/cb", data=payload, headers={HEADER: sign(SECRET, payload)})
    assert response.status == 400
    assert "error" in await response.json()
    assert results == {"bad_request": 1}
    assert sink.calls == []


@pytest.mark.parametrize(
    ("answer", "status", "result"),
    [
        (CallbackResult.UNKNOWN_LEAD, 404, "unknown_lead"),
        (CallbackResult.DUPLICATE, 200, "duplicate"),
        (CallbackResult.ERROR_ROW, 200, "error_row"),
        (CallbackResult.CORRELATION_MISMATCH, 409, "correlation_mismatch"),
        (FinishUnavailable("kafka down"), 503, "unavailable"),
    ],
)
async def test_the_sinks_answer_decides_the_status(
    served: Served, answer: CallbackResult | Exception, status: int, result: str
) -> None:
    """Unknown lead 404, duplicate 200, error row 200, a correlation id of no pending
    submission 409, Kafka trouble 503; each counted."""
    client, sink, results = served
    sink.answer = answer
    body, headers = _signed({"lead_id": "L1", "correlation_id": "c1", "data": {"a": 1}})
    response = await client.post("/cb", data=body, headers=headers)
    assert response.status == status
    assert results == {result: 1}


async def test_not_ready_is_503(served: Served) -> None:
    """Before the state is restored (or while stopping) callbacks are 503."""
    client, sink, results = served
    sink.ready = False
    body, headers = _signed({"lead_id": "L1", "correlation_id": "c1", "data": {"a": 1}})
    response = await client.post("/cb", data=body, headers=headers)
    assert response.status == 503
    assert results == {"unavailable": 1}
