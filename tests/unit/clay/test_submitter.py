"""The Clay webhook submitter over httpx.MockTransport: row, auth, 429, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest

from streamproc.clay.config import ClayConfig
from streamproc.clay.submitter import AUTH_HEADER, ClaySubmitter, webhook_row
from streamproc.errors import (
    LeadError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RateLimited,
)
from streamproc.settings import Settings

URL = "https://api.clay.example/hook/a"


def _config(**changes: Any) -> ClayConfig:
    settings = Settings.model_validate(
        {
            "clay_webhook_auth_token": "tok",
            "provider_max_retries": 2,
            "clay_rate_per_s": 1000,
            **changes,
        }
    )
    return ClayConfig.from_settings(settings)


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _submitter(
    answers: list[httpx.Response], seen: list[httpx.Request], **changes: Any
) -> tuple[ClaySubmitter, _Clock]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    clock = _Clock()
    submitter = ClaySubmitter(
        _config(**changes),
        transport=httpx.MockTransport(handler),
        clock=clock,
        sleep=clock.sleep,
        rng=lambda: 0.0,
    )
    return submitter, clock


async def test_a_row_carries_the_lead_its_ids_and_the_webhook_auth() -> None:
    """The POST body is the lead plus lead_id and correlation_id; x-clay-webhook-auth is set."""
    seen: list[httpx.Request] = []
    submitter, _ = _submitter([httpx.Response(200, json={})], seen)
    await submitter.start()
    row = webhook_row({"lead_id": "L1", "domain": "acme.example", "x": [1]}, "L1", "c-1")
    result = await submitter.submit(URL, row)
    await submitter.close()
    assert result.attempts == 1
    (request,) = seen
    assert request.headers[AUTH_HEADER] == "tok"
    assert orjson.loads(request.content) == {
        "lead_id": "L1",
        "domain": "acme.example",
        "x": [1],
        "correlation_id": "c-1",
    }


async def test_a_429_pauses_submissions_for_its_retry_after_and_retries() -> None:
    """429 with Retry-After: 3 pauses the pacer 3 s, then the row is accepted."""
    seen: list[httpx.Request] = []
    answers = [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(202)]
    submitter, clock = _submitter(answers, seen)
    await submitter.start()
    result = await submitter.submit(URL, b"{}")
    await submitter.close()
    assert result.attempts == 2
    assert result.status == 202
    assert clock.t >= 3.0
    assert submitter.pacer.bucket.blocked_until == pytest.approx(3.0)


@pytest.mark.parametrize(
    "retry_after",
    ["86400", format_datetime(datetime.now(UTC) + timedelta(days=1), usegmt=True)],
    ids=["seconds", "http-date"],
)
async def test_a_retry_after_of_a_day_pauses_only_up_to_the_cap(retry_after: str) -> None:
    """Retry-After of a day (seconds or a date) pauses submissions for
    provider_retry_after_max_s (120 s here), not a day; the row is then accepted."""
    seen: list[httpx.Request] = []
    answers = [httpx.Response(429, headers={"Retry-After": retry_after}), httpx.Response(200)]
    submitter, clock = _submitter(answers, seen, provider_retry_after_max_s=120)
    await submitter.start()
    result = await submitter.submit(URL, b"{}")
    await submitter.close()
    assert result.attempts == 2
    assert submitter.pacer.bucket.blocked_until == pytest.approx(120.0)
    assert clock.t == pytest.approx(120.0)


async def test_429s_beyond_the_retries_are_rate_limited() -> None:
    """Three 429s with two retries allowed end in RateLimited."""
    seen: list[httpx.Request] = []
    answers = [httpx.Response(429, headers={"Retry-After": "0"}) for _ in range(3)]
    submitter, _ = _submitter(answers, seen)
    await submitter.start()
    with pytest.raises(RateLimited):
        await submitter.submit(URL, b"{}")
    await submitter.close()
    assert len(seen) == 3


async def test_a_rejected_row_is_not_retried() -> None:
    """422 is provider_rejected at once, one call."""
    seen: list[httpx.Request] = []
    submitter, _ = _submitter([httpx.Response(422)], seen)
    await submitter.start()
    with pytest.raises(ProviderRejected):
        await submitter.submit(URL, b"{}")
    await submitter.close()
    assert len(seen) == 1


async def test_server_errors_are_retried_and_the_breaker_can_stop_the_retries() -> None:
    """A 500 is retried while keep_trying says so; the breaker saying no ends it."""
    seen: list[httpx.Request] = []
    submitter, _ = _submitter([httpx.Response(500), httpx.Response(500)], seen)
    told: list[Exception] = []

    async def keep_trying(exc: Exception) -> bool:
        told.append(exc)
        return len(told) < 2

    await submitter.start()
    with pytest.raises(ProviderError):
        await submitter.submit(URL, b"{}", keep_trying=keep_trying)
    await submitter.close()
    assert len(seen) == 2
    assert len(told) == 2


async def test_attempt_results_are_reported() -> None:
    """The on_attempt hook hears rate_limited then accepted."""
    seen: list[httpx.Request] = []
    answers = [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)]
    submitter, _ = _submitter(answers, seen)
    results: list[str] = []
    submitter.on_attempt = results.append
    await submitter.start()
    await submitter.submit(URL, b"{}")
    await submitter.close()
    assert results == ["rate_limited", "accepted"]


@pytest.mark.parametrize(
    ("raised", "maybe_charged"),
    [
        (httpx.ConnectTimeout("connect timed out"), True),
        (httpx.ReadTimeout("read timed out"), True),
        (httpx.ConnectError("refused"), False),
        (httpx.RemoteProtocolError("dropped after send"), True),
    ],
)
async def test_failures_without_an_answer_say_whether_clay_may_have_the_row(
    raised: Exception, maybe_charged: bool
) -> None:
    """As for the provider, only a refused connection is known not taken: every timeout,
    a connect timeout too, may have added the row."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    submitter = ClaySubmitter(
        _config(provider_max_retries=0), transport=httpx.MockTransport(handler)
    )
    await submitter.start()
    with pytest.raises((ProviderError, ProviderTimeout)) as info:
        await submitter.submit(URL, b"{}")
    await submitter.close()
    assert info.value.maybe_charged is maybe_charged
    assert info.value.__cause__ is raised


async def test_a_connect_timeout_is_retried_and_told_to_the_breaker_as_maybe_billed() -> None:
    """A ConnectTimeout then 200: two calls, and keep_trying heard a maybe-billed
    ProviderTimeout (so the service counts another row on the webhook)."""
    seen: list[httpx.Request] = []
    answers: list[httpx.Response | Exception] = [httpx.ConnectTimeout("slow"), httpx.Response(200)]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    told: list[LeadError] = []

    async def keep_trying(exc: LeadError) -> bool:
        told.append(exc)
        return True

    submitter = ClaySubmitter(
        _config(), transport=httpx.MockTransport(handler), sleep=_Clock().sleep
    )
    await submitter.start()
    result = await submitter.submit(URL, b"{}", keep_trying=keep_trying)
    await submitter.close()
    assert (result.attempts, len(seen)) == (2, 2)
    (timeout,) = told
    assert isinstance(timeout, ProviderTimeout)
    assert timeout.maybe_charged is True
