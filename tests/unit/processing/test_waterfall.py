"""The waterfall as the handler's Enricher: members asked in order, each under its own
breaker; misses, failures and open breakers pass the lead on; the hit tallies."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from streamproc.errors import NoMatch, ProviderError
from streamproc.processing.calls import ProviderCalls
from streamproc.processing.waterfall import (
    STEPS_PREFIX,
    Member,
    WaterfallDone,
    WaterfallEnricher,
)
from streamproc.provider.api import Answer, Enrichment, LeadIn
from streamproc.provider.driver import RetryDriver
from streamproc.provider.retry import RetryPolicy
from streamproc.resilience.breaker import BreakerConfig, BreakerState, CircuitBreaker
from streamproc.waterfall.caps import CreditCap
from streamproc.waterfall.config import WaterfallConfig
from streamproc.waterfall.ledger import tally_key
from tests.unit.processing.fakes import Clock


class _Api:
    """Finds leads whose domain ends with ``finds``; ``down`` answers every call 503."""

    batch_size = 1

    def __init__(self, finds: str, *, credits: int = 1) -> None:
        self.finds = finds
        self.credits = credits
        self.down = False
        self.asked: list[str] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        self.asked.append(leads[0].lead_id)
        if self.down:
            raise ProviderError("503")
        domain = str(leads[0].lead["domain"])
        if domain.endswith(self.finds):
            return [Enrichment({"email": f"pat@{domain}", "by": self.finds}, self.credits)]
        return [NoMatch("nothing")]


def _member(name: str, api: _Api, threshold: int = 2) -> Member:
    async def no_sleep(_: float) -> None: ...

    driver = RetryDriver(RetryPolicy(1, 0.0, 0.0), peer=name, timeout_s=5, sleep=no_sleep)
    calls = ProviderCalls(api, driver, timeout_s=5)
    return Member(name, calls, CircuitBreaker(BreakerConfig(threshold, 60.0, 30.0, 1)))


def _config(**changes: object) -> WaterfallConfig:
    return WaterfallConfig.model_validate(
        {
            "providers": [
                {"name": "a", "credits_per_hit": 1},
                {"name": "b", "credits_per_hit": 1},
            ],
            "stop_when": ["email"],
            "adaptive": {"mode": "off"},
            **changes,
        }
    )


def _waterfall(
    a: _Api, b: _Api, clock: Clock, **changes: object
) -> tuple[WaterfallEnricher, dict[str, Member]]:
    members = {"a": _member("a", a), "b": _member("b", b)}
    enricher = WaterfallEnricher(
        _config(**changes), members, instance="me", clock=clock, rng=random.Random(1)
    )
    return enricher, members


async def test_a_miss_goes_to_the_next_provider_and_the_steps_say_what_each_cost() -> None:
    """A lead the first provider misses is found by the second; the steps list both, the
    credits are the second's charge."""
    a, b = _Api(".small", credits=1), _Api(".big", credits=3)
    enricher, _ = _waterfall(a, b, Clock())
    done = await enricher.enrich({"domain": "x.big"}, "l1")
    assert isinstance(done, WaterfallDone)
    assert done.data == {"email": "pat@x.big", "by": ".big"}
    assert done.credits == 3
    assert done.steps == [
        {"provider": "a", "outcome": "missed", "credits": 0},
        {"provider": "b", "outcome": "found", "credits": 3},
    ]
    assert (a.asked, b.asked) == (["l1"], ["l1"])


async def test_a_find_that_meets_the_stop_rule_asks_no_one_else() -> None:
    """The first provider's e-mail stops the waterfall: the second is never asked."""
    a, b = _Api(".small"), _Api(".small")
    enricher, _ = _waterfall(a, b, Clock())
    await enricher.enrich({"domain": "x.small"}, "l1")
    assert b.asked == []


async def test_nothing_found_by_anyone_is_a_no_match() -> None:
    """Every provider missed: NoMatch (the DLQ's no_match), not a provider failure."""
    enricher, _ = _waterfall(_Api(".small"), _Api(".big"), Clock())
    with pytest.raises(NoMatch):
        await enricher.enrich({"domain": "x.none"}, "l1")


async def test_a_provider_down_passes_its_leads_on_and_its_open_breaker_skips_it() -> None:
    """A provider answering 503 fails its leads over to the next; once its own breaker is
    open it is not asked at all (``unavailable``), and the lead still finds its answer."""
    a, b = _Api(".any"), _Api(".any")
    a.down = True
    enricher, members = _waterfall(a, b, Clock())
    first = await enricher.enrich({"domain": "x.any"}, "l1")
    assert [s["outcome"] for s in first.steps] == ["failed", "found"]
    assert members["a"].breaker.state(Clock().t) is BreakerState.OPEN
    asked = len(a.asked)
    second = await enricher.enrich({"domain": "y.any"}, "l2")
    assert [s["outcome"] for s in second.steps] == ["unavailable", "found"]
    assert len(a.asked) == asked, "a provider whose breaker is open was asked"


async def test_nothing_found_while_a_provider_failed_is_a_provider_error() -> None:
    """A lead nobody found while one provider could not answer is a failure of the
    waterfall (the group breaker's policy holds or dead-letters it), not a no_match."""
    a, b = _Api(".small"), _Api(".big")
    b.down = True
    enricher, _ = _waterfall(a, b, Clock())
    with pytest.raises(ProviderError):
        await enricher.enrich({"domain": "x.big"}, "l1")


async def test_answers_are_tallied_per_segment_and_written_once_a_flush() -> None:
    """Each answer counts in its segment's tally (the hit ledger), and a flush hands the
    running totals to the state writes; an echo of our own key is not folded again."""
    clock = Clock()
    a, b = _Api(".small"), _Api(".big")
    routes = [{"when": "ends_with(domain, '.big')", "segment": "enterprise"}]
    enricher, _ = _waterfall(a, b, clock, routes=routes)
    await enricher.enrich({"domain": "x.big"}, "l1")
    await enricher.enrich({"domain": "y.big"}, "l2")
    day = datetime.fromtimestamp(clock.t, UTC)
    tally_b = enricher.ledger.tally("enterprise", "b", day.date(), 14)
    tally_a = enricher.ledger.tally("enterprise", "a", day.date(), 14)
    assert (tally_b.calls, tally_b.hits, tally_b.credits) == (2, 2, 2)
    assert (tally_a.calls, tally_a.hits) == (2, 0)
    own = tally_key("enterprise", "b", day.date(), "me")
    enricher.on_state(own, {"calls": 1, "hits": 1, "credits": 1})
    assert enricher.ledger.tally("enterprise", "b", day.date(), 14).calls == 2
    other = tally_key("enterprise", "b", day.date(), "them")
    enricher.on_state(other, {"calls": 5, "hits": 1, "credits": 1})
    assert enricher.ledger.tally("enterprise", "b", day.date(), 14).calls == 7
    written: list[str] = []
    enricher._writes.write = lambda key, value: written.append(key)  # type: ignore[method-assign]
    enricher.flush()
    assert sorted(written) == sorted([own, tally_key("enterprise", "a", day.date(), "me")])
    enricher.flush()
    assert len(written) == 2, "an unchanged total was written again"


async def test_a_member_over_its_credit_cap_passes_its_leads_on() -> None:
    """A capped first provider (4 credits a day) answers while its next call fits; once
    another instance's charge of the day (1) and its own (3) leave no room, it is not
    asked (``unavailable``) and the next provider finds the lead."""
    clock = Clock()
    a, b = _Api(".any", credits=1), _Api(".any", credits=1)
    enricher, members = _waterfall(a, b, clock)
    members["a"].cap = CreditCap(4)
    outcomes = []
    for i in range(3):
        done = await enricher.enrich({"domain": f"x{i}.any"}, f"l{i}")
        outcomes.append([s["outcome"] for s in done.steps])
    assert outcomes == [["found"], ["found"], ["found"]]
    day = datetime.fromtimestamp(clock.t, UTC).date()
    # Room for one more of our own (3 + 1 <= 4) until another instance's 1 credit comes.
    enricher.on_state(tally_key("default", "a", day, "them"), {"calls": 1, "hits": 1, "credits": 1})
    done = await enricher.enrich({"domain": "y.any"}, "l9")
    assert done.steps == [
        {"provider": "a", "outcome": "unavailable", "credits": 0},
        {"provider": "b", "outcome": "found", "credits": 1},
    ]
    assert len(a.asked) == 3 and b.asked == ["l9"]


async def test_a_capped_member_counts_its_calls_in_flight() -> None:
    """Two leads at once with room for one call: only one reaches the capped provider, the
    other goes on to the next, so the process never passes the cap."""
    clock = Clock()
    a, b = _Api(".any"), _Api(".any")
    enricher, members = _waterfall(a, b, clock)
    members["a"].cap = CreditCap(1)
    first, second = await asyncio.gather(
        enricher.enrich({"domain": "x.any"}, "l1"), enricher.enrich({"domain": "y.any"}, "l2")
    )
    outcomes = sorted(s["outcome"] for done in (first, second) for s in done.steps[:1])
    assert outcomes == ["found", "unavailable"]
    assert len(a.asked) == 1


async def test_nothing_found_while_a_member_was_capped_is_a_no_match() -> None:
    """A cap is not a failure: a lead the others missed while a provider was over its cap
    is a NoMatch (the DLQ's no_match), not a provider error for the group breaker."""
    a, b = _Api(".any"), _Api(".other")
    enricher, members = _waterfall(a, b, Clock())
    members["a"].cap = CreditCap(0)
    with pytest.raises(NoMatch, match="credit cap"):
        await enricher.enrich({"domain": "x.any"}, "l1")
    assert a.asked == []


def test_a_waterfall_names_only_configured_instances() -> None:
    """A waterfall provider without an instance is refused when it is built."""
    with pytest.raises(ValueError, match="no provider instance"):
        WaterfallEnricher(_config(), {"a": _member("a", _Api(".x"))}, instance="me")


class _Store:
    """The state topic as the enricher writes it: every append, in order, acknowledged."""

    def __init__(self) -> None:
        self.log: list[tuple[str, dict[str, object] | None]] = []

    def append(self, key: str, value: dict[str, object] | None) -> asyncio.Future[tuple[int, int]]:
        self.log.append((key, value))
        done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        done.set_result((1, len(self.log)))
        return done


class _Hanging(_Api):
    """Never answers while ``hang`` is set: a process killed during this call."""

    def __init__(self) -> None:
        super().__init__(".any")
        self.hang = True

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        if self.hang:
            await asyncio.Event().wait()
        self.asked.append(leads[0].lead_id)
        return [Enrichment({"title": "CTO"}, 2)]


async def test_a_lead_run_again_after_a_crash_pays_no_provider_twice() -> None:
    """A lead killed while its second provider was asked is run again by a new process
    that folded the journal: the first provider's paid answer comes from the journal (not
    asked, nothing charged now), the second is asked; once done the journal is tombstoned."""
    clock, store = Clock(), _Store()
    a, b = _Api(".any"), _Hanging()
    lead = {"lead_id": "l1", "domain": "x.any"}

    def enricher() -> WaterfallEnricher:
        members = {"a": _member("a", a), "b": _member("b", b)}
        config = _config(stop_when=["email", "title"])
        built = WaterfallEnricher(config, members, instance="me", clock=clock)
        built.attach(store)  # type: ignore[arg-type]
        return built

    first = enricher()
    killed = asyncio.ensure_future(first.enrich(lead, "l1"))
    while not any(key.startswith(STEPS_PREFIX) for key, _ in store.log):
        assert not killed.done(), killed  # it died before its first step: fail, not spin
        await asyncio.sleep(0)
    killed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killed
    assert a.asked == ["l1"]

    second = enricher()
    for key, value in store.log:
        second.on_state(key, value)
    b.hang = False
    done = await second.enrich(lead, "l1")
    assert a.asked == ["l1"], "the first provider was paid twice"
    assert done.data == {"email": "pat@x.any", "by": ".any", "title": "CTO"}
    assert done.steps == [
        {"provider": "a", "outcome": "found", "credits": 0},
        {"provider": "b", "outcome": "found", "credits": 2},
    ]
    await asyncio.sleep(0)
    journal = [key for key, _ in store.log if key.startswith(STEPS_PREFIX)]
    assert store.log[-1] == (journal[0], None), "the journal was not tombstoned"


class _Timeout(_Api):
    """Times out after the request may have been billed, every time."""

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        self.asked.append(leads[0].lead_id)
        raise ProviderError("read timeout", maybe_charged=True)


async def test_a_failed_lead_keeps_its_journal_so_running_again_pays_no_step_twice() -> None:
    """Nothing found while the second provider failed: the waterfall fails (the group
    breaker may hold the lead and run it again), the error carries the exact charge of its
    steps, and the journal of the first provider's billed miss is kept, so the lead's next
    run replays that step instead of paying it again."""
    clock, store = Clock(), _Store()
    a = _Api(".small", credits=1)
    b = _Api(".big")
    b.down = True
    members = {"a": _member("a", a, threshold=99), "b": _member("b", b, threshold=99)}
    config = _config(providers=[{"name": "a", "credits_per_call": 1}, {"name": "b"}])
    enricher = WaterfallEnricher(config, members, instance="me", clock=clock)
    enricher.attach(store)  # type: ignore[arg-type]
    a.finds = ".nowhere"  # a billed miss: the API charges every call

    async def billed_miss(leads: Sequence[LeadIn]) -> Sequence[Answer]:
        a.asked.append(leads[0].lead_id)
        return [NoMatch("nothing", credits=1)]

    a.call = billed_miss  # type: ignore[method-assign]
    with pytest.raises(ProviderError) as failed:
        await enricher.enrich({"domain": "x.big"}, "l1")
    assert failed.value.charged == 1
    await asyncio.sleep(0)
    assert not any(value is None for key, value in store.log if key.startswith(STEPS_PREFIX))
    b.down = False
    done = await enricher.enrich({"domain": "x.big"}, "l1")
    assert a.asked == ["l1"], "the billed miss was paid twice"
    assert [s["outcome"] for s in done.steps] == ["missed", "found"]


async def test_a_miss_everywhere_books_what_the_misses_were_billed() -> None:
    """Every provider missed, the first billing its miss: NoMatch carries that charge, for
    the budget to book exactly (not an answered lead's average)."""
    a, b = _Api(".small"), _Api(".big")

    async def billed_miss(leads: Sequence[LeadIn]) -> Sequence[Answer]:
        return [NoMatch("nothing", credits=2)]

    a.call = billed_miss  # type: ignore[method-assign]
    enricher, _ = _waterfall(a, b, Clock())
    with pytest.raises(NoMatch) as missed:
        await enricher.enrich({"domain": "x.none"}, "l1")
    assert missed.value.charged == 2


async def test_a_member_call_that_may_have_been_billed_is_not_retried() -> None:
    """A timeout after sending may have been billed: the member is not asked again for the
    lead (its bill would go uncounted); the step is booked at its worst case and the next
    provider answers."""
    a, b = _Timeout(".any"), _Api(".any")
    members = {"a": _member("a", a, threshold=99), "b": _member("b", b)}
    members["a"] = Member(
        "a",
        ProviderCalls(
            a,
            RetryDriver(RetryPolicy(3, 0.0, 0.0), peer="a", timeout_s=5, sleep=_no_sleep),
            timeout_s=5,
        ),
        CircuitBreaker(BreakerConfig(99, 60.0, 30.0, 1)),
    )
    config = _config(providers=[{"name": "a", "credits_per_call": 2}, {"name": "b"}])
    enricher = WaterfallEnricher(config, members, instance="me", clock=Clock())
    done = await enricher.enrich({"domain": "x.any"}, "l1")
    assert a.asked == ["l1"], "a call that may have been billed was retried"
    assert done.steps[0] == {"provider": "a", "outcome": "failed", "credits": 2}
    assert done.steps[1]["outcome"] == "found"


async def _no_sleep(_: float) -> None: ...


async def test_a_journal_that_cannot_be_written_does_not_throw_the_answer_away() -> None:
    """The state topic refuses the journal record: the lead still gets its answer."""
    clock = Clock()
    a, b = _Api(".small", credits=1), _Api(".big", credits=1)

    class _Refusing:
        def append(self, key: str, value: object) -> asyncio.Future[tuple[int, int]]:
            done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
            done.set_exception(TimeoutError("delivery timed out"))
            return done

    async def billed_miss(leads: Sequence[LeadIn]) -> Sequence[Answer]:
        return [NoMatch("nothing", credits=1)]

    a.call = billed_miss  # type: ignore[method-assign]
    enricher, _ = _waterfall(a, b, clock)
    enricher.attach(_Refusing())  # type: ignore[arg-type]
    done = await enricher.enrich({"domain": "x.big"}, "l1")
    assert done.data["email"] == "pat@x.big" and done.credits == 2


class _Verifier(_Api):
    """Hunter's verifier shape: every e-mail answered (and billed) with a status,
    ``invalid`` for those starting with ``invalid``."""

    def __init__(self, invalid: str) -> None:
        super().__init__(".any")
        self.invalid = invalid
        self.emails: list[str] = []

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        if self.down:
            raise ProviderError("503")
        email = str(leads[0].lead["email"])
        self.emails.append(email)
        status = "invalid" if email.startswith(self.invalid) else "valid"
        return [Enrichment({"status": status}, 1)]


class _Finder(_Api):
    """Finds every lead an e-mail of its own, ``<name>@<domain>``."""

    def __init__(self, name: str, credits: int) -> None:
        super().__init__(".any", credits=credits)
        self.name = name

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        self.asked.append(leads[0].lead_id)
        domain = leads[0].lead["domain"]
        return [Enrichment({"email": f"{self.name}@{domain}", "by": self.name}, self.credits)]


def _verified(a: _Api, b: _Api, v: _Verifier, clock: Clock, **verify: object) -> WaterfallEnricher:
    members = {"a": _member("a", a), "b": _member("b", b), "v": _member("v", v)}
    config = _config(
        verify={"provider": "v", "field": "email", "accept": "status == 'valid'",
                "credits_per_call": 1, **verify},
    )  # fmt: skip
    return WaterfallEnricher(config, members, instance="me", clock=clock, rng=random.Random(1))


async def test_an_email_the_verifier_rejects_goes_on_to_the_next_provider() -> None:
    """The verifier is asked with the lead and each found e-mail; a's is invalid, so b is
    asked and its valid e-mail published (a's other fields kept: first found wins); the
    verifier's two charges are in the lead's, each a step, and in the hit ledger."""
    a, b, v, clock = _Finder("a", 1), _Finder("b", 2), _Verifier("a@"), Clock()
    enricher = _verified(a, b, v, clock)
    done = await enricher.enrich({"domain": "x.test"}, "l1")
    assert v.emails == ["a@x.test", "b@x.test"]
    assert done.data == {"email": "b@x.test", "by": "a"}
    assert done.credits == 1 + 1 + 2 + 1
    assert done.steps == [
        {"provider": "a", "outcome": "found", "credits": 1},
        {"provider": "v", "outcome": "rejected", "credits": 1},
        {"provider": "b", "outcome": "found", "credits": 2},
        {"provider": "v", "outcome": "verified", "credits": 1},
    ]
    # The verifier's charges count against its cap; a's rejected find is no hit for a.
    day = datetime.fromtimestamp(clock(), UTC).date()
    assert enricher.ledger.credits("v", day) == 2
    assert enricher.ledger.tally("default", "v", day, 14).hits == 1
    assert enricher.ledger.tally("default", "a", day, 14).hits == 0


async def test_a_verifier_down_accepts_unverified_or_goes_on_as_configured() -> None:
    """The verifier failing: by default a's e-mail is published, its step ``unverified``,
    b never asked; with on_error next a's e-mail is dropped and b asked."""
    a, b, v = _Finder("a", 1), _Finder("b", 1), _Verifier("nobody")
    v.down = True
    done = await _verified(a, b, v, Clock()).enrich({"domain": "x.test"}, "l1")
    assert done.data["email"] == "a@x.test" and b.asked == []
    assert done.steps[-1] == {"provider": "v", "outcome": "unverified", "credits": 0}
    strict = _verified(a, b, v, Clock(), on_error="next")
    done = await strict.enrich({"domain": "x.test"}, "l2")
    assert b.asked == ["l2"] and "email" not in done.data


async def test_a_lead_run_again_after_a_crash_pays_no_verification_twice() -> None:
    """Killed while the next finder was asked, after a's find and its rejection were paid:
    run again, neither a nor the verifier is asked again (both from the journal, nothing
    charged now), the verdict is the same and b is asked."""
    clock, store = Clock(), _Store()
    a, b, v = _Finder("a", 1), _Hanging(), _Verifier("a@")

    def enricher() -> WaterfallEnricher:
        built = _verified(a, b, v, clock)
        built.attach(store)  # type: ignore[arg-type]
        return built

    lead = {"lead_id": "l1", "domain": "x.test"}
    first = enricher()
    killed = asyncio.ensure_future(first.enrich(lead, "l1"))
    while len([k for k, _ in store.log if k.startswith(STEPS_PREFIX)]) < 2:
        assert not killed.done(), killed.exception()
        await asyncio.sleep(0)
    killed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killed
    second = enricher()
    for key, value in store.log:
        second.on_state(key, value)
    b.hang = False
    done = await second.enrich(lead, "l1")
    assert (a.asked, v.emails) == (["l1"], ["a@x.test"]), "a provider was paid twice"
    assert done.steps == [
        {"provider": "a", "outcome": "found", "credits": 0},
        {"provider": "v", "outcome": "rejected", "credits": 0},
        {"provider": "b", "outcome": "found", "credits": 2},
    ]
    assert done.data == {"by": "a", "title": "CTO"}
