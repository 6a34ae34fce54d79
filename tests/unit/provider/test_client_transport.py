"""ProviderClient against httpx.MockTransport: what it sends, how it retries, what it hides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from streamproc.errors import (
    InvalidPayload,
    LeadError,
    ProviderAuthError,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RateLimited,
)
from streamproc.provider.api import idempotency_key
from streamproc.provider.client import ProviderClient, pool_limits
from streamproc.settings import Settings

API_KEY = "sk-live-very-secret-123"
URL = "http://provider.test/enrich"
LEAD = {"lead_id": "lead-1", "email": "jane@acme.com", "domain": "acme.com", "extra": [1, 2]}
KEY = idempotency_key("lead-1", LEAD)
OK = {"data": {"company": "Acme"}, "credits": 5}

Handler = Callable[[httpx.Request], httpx.Response]


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "provider_url": URL,
        "provider_api_key": API_KEY,
        "provider_max_retries": 3,
        "provider_backoff_base_s": 0.1,
        "provider_backoff_max_s": 1.0,
        "provider_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class FakeTime:
    """A clock that only the injected sleep advances, so latencies are exact."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler that gives the answers in order (the last one repeats) and records requests."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(answers)
    last: list[httpx.Response | Exception] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(queue, None)
        if answer is None:
            answer = last[0]
        else:
            last[:] = [answer]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def client_for(
    handler: Handler,
    fake: FakeTime | None = None,
    statuses: list[int | None] | None = None,
    **settings: object,
) -> ProviderClient:
    fake = fake or FakeTime()
    return ProviderClient(
        make_settings(**settings),
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        rng=lambda: 0.5,
        clock=fake.clock,
        on_attempt=None if statuses is None else (lambda status, _s: statuses.append(status)),
    )


async def test_sends_lead_json_with_idempotency_key_and_bearer_auth() -> None:
    """The POST carries the lead as JSON, the lead's idempotency key and Bearer auth."""
    handler, seen = scripted(httpx.Response(200, json=OK))
    async with client_for(handler) as client:
        result = await client.enrich(LEAD, "lead-1")
    assert result.data == {"company": "Acme"}
    assert result.credits == 5
    assert result.attempts == 1
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Idempotency-Key"] == KEY
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert orjson.loads(request.content) == LEAD


async def test_custom_auth_header_gets_the_raw_key() -> None:
    """A non-Authorization auth header carries the key without a Bearer prefix."""
    handler, seen = scripted(httpx.Response(200, json=OK))
    async with client_for(handler, provider_auth_header="X-Api-Key") as client:
        await client.enrich(LEAD, "lead-1")
    assert seen[0].headers["X-Api-Key"] == API_KEY
    assert "Authorization" not in seen[0].headers


async def test_without_api_key_no_auth_header_is_sent() -> None:
    """With no key configured, no credential header goes out at all."""
    handler, seen = scripted(httpx.Response(200, json=OK))
    async with client_for(handler, provider_api_key=None) as client:
        await client.enrich(LEAD, "lead-1")
    assert "Authorization" not in seen[0].headers


@pytest.mark.parametrize("lead_id", ["lead-é", "a\r\nX-Injected: 1", "tab\there"])
async def test_any_lead_id_travels_as_a_hex_key_never_in_a_header(lead_id: str) -> None:
    """A lead_id outside ASCII or with control characters is sent: the header carries only
    its hex key, so nothing of the id can break or inject a header."""
    handler, seen = scripted(httpx.Response(200, json=OK))
    async with client_for(handler) as client:
        await client.enrich(LEAD, lead_id)
    assert dict(seen[0].headers.raw)[b"Idempotency-Key"] == idempotency_key(lead_id, LEAD).encode()
    assert "X-Injected" not in seen[0].headers


async def test_unencodable_lead_is_invalid_payload() -> None:
    """A lead holding a value JSON cannot carry is InvalidPayload, not a crash."""
    handler, seen = scripted(httpx.Response(200, json=OK))
    async with client_for(handler) as client:
        with pytest.raises(InvalidPayload):
            await client.enrich({"lead_id": "x", "domain": object()}, "x")
    assert seen == []


async def test_5xx_is_retried_then_succeeds_with_recorded_sleeps() -> None:
    """503, 503, 200: three calls, two jittered sleeps, latency equal to the time slept."""
    fake = FakeTime()
    statuses: list[int | None] = []
    handler, seen = scripted(httpx.Response(503), httpx.Response(503), httpx.Response(200, json=OK))
    async with client_for(handler, fake, statuses) as client:
        result = await client.enrich(LEAD, "lead-1")
    assert result.attempts == 3
    assert len(seen) == 3
    assert fake.sleeps == pytest.approx([0.05, 0.1])  # rng 0.5 x (0.1, 0.2)
    assert result.latency_s == pytest.approx(0.15)
    assert statuses == [503, 503, 200]
    assert {r.headers["Idempotency-Key"] for r in seen} == {KEY}


async def test_5xx_beyond_retries_raises_provider_error_after_max_retries_plus_one() -> None:
    """A provider that keeps failing gets max_retries + 1 calls, then ProviderError."""
    fake = FakeTime()
    handler, seen = scripted(httpx.Response(500))
    async with client_for(handler, fake, provider_max_retries=2) as client:
        with pytest.raises(ProviderError, match="provider answered 500") as info:
            await client.enrich(LEAD, "lead-1")
    assert len(seen) == 3
    assert len(fake.sleeps) == 2
    assert "gave up after 3 provider calls" in info.value.__notes__


async def test_429_waits_at_least_retry_after() -> None:
    """A 429 with Retry-After: 2 sleeps at least 2 s before the retry that succeeds."""
    fake = FakeTime()
    handler, _ = scripted(
        httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=OK)
    )
    async with client_for(handler, fake) as client:
        result = await client.enrich(LEAD, "lead-1")
    assert result.attempts == 2
    assert fake.sleeps == [2.0]


@pytest.mark.parametrize(
    ("retry_after", "cap", "slept"),
    [("86400", 300.0, 300.0), ("86400", 20.0, 20.0), ("15", 20.0, 15.0)],
)
async def test_429_retry_after_is_cut_to_provider_retry_after_max_s(
    retry_after: str, cap: float, slept: float
) -> None:
    """A Retry-After of a day waits provider_retry_after_max_s; a shorter one waits as asked."""
    fake = FakeTime()
    handler, _ = scripted(
        httpx.Response(429, headers={"Retry-After": retry_after}), httpx.Response(200, json=OK)
    )
    async with client_for(handler, fake, provider_retry_after_max_s=cap) as client:
        result = await client.enrich(LEAD, "lead-1")
    assert result.attempts == 2
    assert fake.sleeps == [slept]


async def test_429_beyond_retries_raises_rate_limited() -> None:
    """Persistent 429s end as RateLimited carrying the last Retry-After."""
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "1"}))
    async with client_for(handler, provider_max_retries=1) as client:
        with pytest.raises(RateLimited) as info:
            await client.enrich(LEAD, "lead-1")
    assert info.value.retry_after_s == 1.0
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (422, ProviderRejected),
        (400, ProviderRejected),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (402, ProviderCreditsExhausted),
    ],
)
async def test_non_retriable_answers_make_exactly_one_call(
    status: int, error: type[LeadError]
) -> None:
    """4xx, auth failures and 402 are raised after one call, with no backoff sleep."""
    fake = FakeTime()
    handler, seen = scripted(httpx.Response(status))
    async with client_for(handler, fake) as client:
        with pytest.raises(error):
            await client.enrich(LEAD, "lead-1")
    assert len(seen) == 1
    assert fake.sleeps == []


async def test_transport_timeout_becomes_provider_timeout_and_is_retried() -> None:
    """httpx's ReadTimeout is translated to ProviderTimeout (chained) and retried."""
    statuses: list[int | None] = []
    handler, seen = scripted(httpx.ReadTimeout("read timed out"))
    async with client_for(handler, None, statuses, provider_max_retries=1) as client:
        with pytest.raises(ProviderTimeout) as info:
            await client.enrich(LEAD, "lead-1")
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert len(seen) == 2
    assert statuses == [None, None]


async def test_slow_answer_is_cut_at_the_per_call_timeout() -> None:
    """A provider slower than provider_timeout_s yields ProviderTimeout, not a hang."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=OK)

    client = ProviderClient(
        make_settings(provider_timeout_s=0.05, provider_max_retries=0),
        transport=httpx.MockTransport(slow),
    )
    async with client:
        with pytest.raises(ProviderTimeout, match=r"within 0\.05s"):
            await asyncio.wait_for(client.enrich(LEAD, "lead-1"), timeout=2)


async def test_connection_error_becomes_provider_error() -> None:
    """A refused connection is a retriable ProviderError chained to the httpx error, not
    billed, and reported as an attempt without an answer."""
    statuses: list[int | None] = []
    handler, _ = scripted(httpx.ConnectError("connection refused"))
    async with client_for(handler, None, statuses, provider_max_retries=0) as client:
        with pytest.raises(ProviderError, match="provider unreachable: ConnectError") as info:
            await client.enrich(LEAD, "lead-1")
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert not info.value.maybe_charged
    assert statuses == [None]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, text=f"bad key {API_KEY}"),
        httpx.Response(500, text=f"boom {API_KEY}"),
        httpx.Response(200, text=f"garbage {API_KEY}"),
        httpx.Response(429, text=API_KEY, headers={"Retry-After": API_KEY}),
        httpx.ConnectError(f"cannot reach http://u:{API_KEY}@provider.test"),
        httpx.ReadTimeout(f"timed out sending Bearer {API_KEY}"),
    ],
)
async def test_api_key_never_appears_in_error_messages(
    answer: httpx.Response | Exception,
) -> None:
    """Whatever the failure, the API key is in no message, repr or note of the error."""
    handler, _ = scripted(answer)
    async with client_for(handler, provider_max_retries=1) as client:
        with pytest.raises(LeadError) as info:
            await client.enrich(LEAD, "lead-1")
    exc = info.value
    shown = [str(exc), repr(exc), exc.message, *getattr(exc, "__notes__", [])]
    assert all(API_KEY not in text for text in shown)


async def test_enrich_before_start_is_a_programming_error() -> None:
    """Calling enrich on a client that was never started fails loudly, not with a LeadError."""
    handler, _ = scripted(httpx.Response(200, json=OK))
    client = client_for(handler)
    with pytest.raises(RuntimeError, match="start"):
        await client.enrich(LEAD, "lead-1")


async def test_close_is_idempotent_and_start_reopens() -> None:
    """close() twice is harmless, and a closed client can be started again."""
    handler, _ = scripted(httpx.Response(200, json=OK))
    client = client_for(handler)
    await client.start()
    await client.close()
    await client.close()
    await client.start()
    try:
        assert (await client.enrich(LEAD, "lead-1")).credits == 5
    finally:
        await client.close()


def test_pool_is_sized_to_max_in_flight() -> None:
    """One pooled connection per lead in flight, kept alive."""
    limits = pool_limits(make_settings(max_in_flight=17))
    assert limits.max_connections == 17
    assert limits.max_keepalive_connections == 17


@pytest.mark.parametrize(
    ("raised", "maybe_charged"),
    [
        (httpx.ReadTimeout("slow"), True),
        (httpx.ConnectTimeout("disconnect reported as connect timeout"), True),
        (httpx.ConnectError("refused"), False),
        (httpx.RemoteProtocolError("dropped after send"), True),
    ],
)
async def test_failures_without_an_answer_say_whether_they_may_be_billed(
    raised: Exception, maybe_charged: bool
) -> None:
    """Only a refused connection is known unbilled; every other unanswered call may be."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    async with client_for(handler, provider_max_retries=0) as client:
        with pytest.raises((ProviderError, ProviderTimeout)) as info:
            await client.enrich({"lead_id": "l1", "domain": "a.example"}, "l1")
    assert info.value.maybe_charged is maybe_charged
