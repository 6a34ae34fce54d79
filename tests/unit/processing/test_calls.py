"""ProviderCalls: leads grouped into calls, retried as a batch, failures per lead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

import pytest

from streamproc.errors import (
    InternalError,
    LeadError,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from streamproc.processing.calls import ProviderCalls
from streamproc.processing.config import GuardConfig
from streamproc.processing.pacing import Pacer
from streamproc.provider.api import Answer, Enrichment, LeadIn
from streamproc.provider.driver import RetryDriver
from streamproc.provider.retry import RetryPolicy
from streamproc.resilience.token_bucket import TokenBucket


class _Bulk:
    """A provider that answers by lead id: ``rej-*`` rejected, ``rl-*`` a per-lead 429 once,
    and the whole call 429 once when ``throttle`` is set."""

    batch_size = 10

    def __init__(self, *, throttle: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.throttle = throttle
        self.limited: set[str] = set()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        self.calls.append([one.lead_id for one in leads])
        if self.throttle:
            self.throttle = False
            raise RateLimited("429", retry_after_s=0)
        out: list[Answer] = []
        for one in leads:
            if one.lead_id.startswith("rej"):
                out.append(ProviderRejected("no"))
            elif one.lead_id.startswith("rl") and one.lead_id not in self.limited:
                self.limited.add(one.lead_id)
                out.append(RateLimited("slow down", retry_after_s=0))
            else:
                out.append(Enrichment({"id": one.lead_id}, 2))
        return out


def _calls(provider: _Bulk, size: int) -> ProviderCalls:
    async def no_sleep(_: float) -> None: ...

    driver = RetryDriver(RetryPolicy(3, 0.0, 0.0), peer="provider", timeout_s=5, sleep=no_sleep)
    return ProviderCalls(provider, driver, batch_size=size, linger_s=0.05, timeout_s=5)


async def _enrich_all(calls: ProviderCalls, ids: list[str]) -> list[object]:
    async def one(lead_id: str) -> object:
        try:
            return await calls.enrich({"lead_id": lead_id}, lead_id)
        except LeadError as exc:
            return exc

    return await asyncio.gather(*(one(i) for i in ids))


async def test_leads_are_grouped_into_calls_of_the_batch_size() -> None:
    """25 leads with a batch size of 10 take three calls: 10, 10 and the 5 left by the linger."""
    provider = _Bulk()
    results = await _enrich_all(_calls(provider, 10), [f"ok-{i}" for i in range(25)])
    assert [len(c) for c in provider.calls] == [10, 10, 5]
    assert all(getattr(r, "credits", None) == 2 for r in results)


async def test_the_setting_never_exceeds_the_providers_own_bulk_limit() -> None:
    """A batch size above the provider's is capped by it."""
    assert _calls(_Bulk(), 500).batch_size == 10


async def test_a_rejected_lead_fails_alone_and_a_rate_limited_batch_is_retried() -> None:
    """A 429 for the whole call retries the batch; a lead rejected in the answer fails
    alone; a lead rate-limited in the answer is retried by itself."""
    provider = _Bulk(throttle=True)
    ids = ["ok-1", "rej-1", "rl-1", "ok-2"]
    results = dict(zip(ids, await _enrich_all(_calls(provider, 4), ids), strict=True))
    assert provider.calls == [ids, ids, ["rl-1"]]
    assert isinstance(results["rej-1"], ProviderRejected)
    assert {k: getattr(v, "attempts", None) for k, v in results.items() if k != "rej-1"} == {
        "ok-1": 2,
        "ok-2": 2,
        "rl-1": 3,
    }


async def test_a_failed_call_counts_once() -> None:
    """Of a call's failure, one lead gets it counting and the others a shared copy."""

    class _Down(_Bulk):
        async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
            raise ProviderError("503")

    calls = _calls(_Down(), 3)
    results = await _enrich_all(calls, ["a", "b", "c"])
    assert all(isinstance(r, ProviderError) for r in results)
    assert sorted(getattr(r, "shares_call", None) for r in results) == [False, True, True]


async def test_a_wrong_number_of_answers_fails_the_call() -> None:
    """An answer list of the wrong length is the provider's error, retried then failed."""

    class _Short(_Bulk):
        async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
            return []

    (result,) = await _enrich_all(_calls(_Short(), 1), ["a"])
    assert isinstance(result, ProviderError)


async def test_a_cancelled_lead_leaves_its_batch() -> None:
    """A lead cancelled while its batch fills is not sent."""
    provider = _Bulk()
    calls = _calls(provider, 5)
    task = asyncio.ensure_future(calls.enrich({"lead_id": "gone"}, "gone"))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await _enrich_all(calls, ["kept"])
    assert provider.calls == [["kept"]]


async def test_a_provider_bug_is_internal_and_counts_once_at_most() -> None:
    """A provider raising a non-LeadError fails its batch as internal (not a provider
    failure: the breaker does not count it), the first lead with it, the others with a
    shared copy; it may have gone out, so it counts as possibly billed."""

    class _Buggy(_Bulk):
        async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
            raise ValueError("Forbidden control character detected in headers")

    results = await _enrich_all(_calls(_Buggy(), 3), ["a", "b", "c"])
    assert all(isinstance(r, InternalError) for r in results)
    assert not any(getattr(r, "counts_against_breaker", True) for r in results)
    assert sorted(getattr(r, "shares_call", None) for r in results) == [False, True, True]
    assert all(getattr(r, "maybe_charged", None) for r in results)


async def test_a_rejected_bulk_call_is_bisected_down_to_the_culprit() -> None:
    """A 4xx for the whole call of several leads splits it in halves until only the lead
    that caused it is rejected; the others are enriched."""

    class _Strict(_Bulk):
        async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
            self.calls.append([one.lead_id for one in leads])
            if any(one.lead_id == "bad" for one in leads):
                raise ProviderRejected("provider answered 400")
            return [Enrichment({"id": one.lead_id}, 2) for one in leads]

    provider = _Strict()
    ids = ["a", "bad", "c", "d"]
    results = dict(zip(ids, await _enrich_all(_calls(provider, 4), ids), strict=True))
    assert isinstance(results["bad"], ProviderRejected)
    assert not results["bad"].shares_call
    assert {k: getattr(v, "credits", None) for k, v in results.items() if k != "bad"} == {
        "a": 2,
        "c": 2,
        "d": 2,
    }
    assert provider.calls == [ids, ["a", "bad"], ["c", "d"], ["a"], ["bad"]]
    assert getattr(results["a"], "attempts", None) == 3


async def test_a_bisected_call_settles_each_lead_at_its_own_charge() -> None:
    """Through the guard: the rejected bulk call charged nothing, each enriched lead its
    own 2 credits, the culprit 0; nothing stays reserved."""
    import functools

    from streamproc.processing.guard import ResilienceGuard
    from streamproc.records.lead import Lead
    from streamproc.settings import Settings
    from tests.unit.processing.fakes import Clock

    class _Strict(_Bulk):
        async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
            if any(one.lead_id == "bad" for one in leads):
                raise ProviderRejected("provider answered 400")
            return [Enrichment({"id": one.lead_id}, 2) for one in leads]

    guard = ResilienceGuard(
        GuardConfig.from_settings(Settings(budget_daily_credits=1000, cache_key="off")),
        clock=Clock(),
        owner="unit",
    )
    calls = _calls(_Strict(), 4)

    async def one(lead_id: str) -> None:
        admission = await guard.admit(Lead(lead_id=lead_id, domain=f"{lead_id}.example"))
        try:
            done = await calls.enrich(
                {"lead_id": lead_id},
                lead_id,
                keep_trying=functools.partial(guard.may_retry, admission),
            )
        except LeadError as exc:
            guard.settle(admission, None, exc)
        else:
            guard.settle(admission, done, None)

    await asyncio.gather(*(one(i) for i in ["a", "bad", "c", "d"]))
    await guard.flush()
    day = guard.status().budget.day
    assert (guard.ledger.spent(day), guard.ledger.outstanding(day)) == (6, 0)


class _Limited:
    """A single-lead API with a quota: tells ``on_headers`` the ``x-ratelimit-*`` headers
    given, and answers the first call a 429 with ``Retry-After: 5``."""

    batch_size = 1

    def __init__(self, clock: list[float], headers: Mapping[str, str]) -> None:
        self.clock = clock
        self.headers = headers
        self.on_headers: Callable[[Mapping[str, str]], None] | None = None
        self.sent_at: list[float] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        self.sent_at.append(self.clock[0])
        if self.on_headers is not None:
            self.on_headers(self.headers)
        if len(self.sent_at) == 1:
            raise RateLimited("429", retry_after_s=5.0)
        return [Enrichment({"id": leads[0].lead_id}, 1)]


async def _paced_pair(headers: Mapping[str, str]) -> tuple[_Limited, Pacer]:
    """Lead ``a`` (a 429, not retried), then lead ``b``, through a pacer of 100/s."""
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    provider = _Limited(clock, headers)
    pacer = Pacer(TokenBucket(100.0, 1), clock=lambda: clock[0], sleep=sleep)
    driver = RetryDriver(RetryPolicy(3, 0.0, 0.0), peer="provider", timeout_s=5, sleep=sleep)
    calls = ProviderCalls(provider, driver, timeout_s=5, pacer=pacer, wall_clock=lambda: 0.0)
    with pytest.raises(RateLimited):
        await calls.enrich({"lead_id": "a"}, "a", keep_trying=_never)
    done = await calls.enrich({"lead_id": "b"}, "b")
    assert done.data == {"id": "b"}
    return provider, pacer


async def test_a_429_holds_every_call_of_the_process_for_its_retry_after() -> None:
    """Lead b was not the one that got the 429, yet it waits out its Retry-After of 5 s."""
    provider, _ = await _paced_pair({"X-RateLimit-Remaining": "5000", "X-RateLimit-Reset": "9"})
    assert provider.sent_at[1] >= 5.0


async def test_a_paced_provider_learns_its_quota_from_its_answers() -> None:
    """10 left for 100 s (told through the provider's ``on_headers``) lowers the pace from
    100/s to 0.1/s."""
    provider, pacer = await _paced_pair({"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "100"})
    assert provider.on_headers is not None
    assert pacer.bucket.rate_per_s == pytest.approx(0.1)


async def _never(_: LeadError) -> bool:
    return False
