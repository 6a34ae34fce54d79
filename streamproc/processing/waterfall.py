"""A waterfall of providers as the handler's ``Enricher`` (docs/waterfall.md).

:class:`WaterfallEnricher` routes a lead to its segment (:mod:`streamproc.waterfall.routing`),
orders that segment's providers by what the group has seen of them
(:func:`~streamproc.waterfall.order.plan_order`, over the hit ledger) and drives one
:class:`~streamproc.waterfall.run.LeadWaterfall` over its members: each member is one
configured provider instance behind its own :class:`ProviderCalls` (its own retry loop)
and its own :class:`CircuitBreaker`. A member whose breaker is open is not asked: the lead
goes on to the next one (``unavailable``), it does not wait.

The lead-level guard is the one of a single provider and wraps the whole waterfall: one
admission (receipt, cache, the group breaker, one budget slice of ``credits_per_lead``,
which should cover ``max_credits_per_lead``), one settle at the total charged by every
member reached, one receipt of the merged answer. So the budget counts every provider's
charge, a lead whose waterfall already ended is answered from its receipt after a crash,
and an answer stays with its lead. A lead that nothing answered raises
:class:`~streamproc.errors.NoMatch` when every member missed (the DLQ as ``no_match``,
unless ``last_resort`` is ``publish``), else :class:`~streamproc.errors.ProviderError`: a
failure of the whole waterfall, counted against the group breaker, whose policy
(``on_breaker_open``) then holds or dead-letters the leads as with one provider.

**The step journal**: a step that charged (a find, a billed miss) is appended to the state
topic under ``waterfall/steps/<digest of the lead>`` (every step paid so far, with its
answer) and acknowledged *before* the next provider is asked. A lead run again after a
crash (its waterfall unfinished, so no receipt) takes those steps from the journal instead
of asking their providers again: it pays no provider twice, except for a call that was in
flight at the crash. Once the waterfall ends, its journal is tombstoned right after the
guard has written the lead's receipt (the tombstone is issued with ``call_soon``, after
the handler's synchronous settle, and the state topic keeps the order of its appends:
the journal is gone only once the receipt is written). Entries left by a crash expire
after ``ttl_s``.

**Verification** (``verify``): a find that has the verified field is judged by the
verifier, a member of its own (its own calls, breaker and cap) asked with the lead and the
found value, before the next step; its charge is part of the lead's, its step is listed
(``verified``, ``rejected``, ``unverified``) and journaled like a finder's, under
``<verifier>@<finder>``, so a lead run again does not pay a verification twice. A finder's
find counts as a hit for the adaptive order only once its value was not rejected; the
verifier's answers are counted in the hit ledger too (a verified value its hit), so its
credit cap holds across the group.

Each member's answers are counted per segment and UTC day (:class:`LocalCounts`) and the
running totals appended to the state topic about once a second, so every instance and
every restart folds the same hit rates (:class:`HitLedger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streamproc.errors import LeadError, LocalStall, NoMatch, ProviderError
from streamproc.logs import get_logger
from streamproc.processing.calls import ProviderCalls
from streamproc.processing.writes import StateWrites
from streamproc.resilience.breaker import BreakerState, CircuitBreaker, Permit
from streamproc.state.store import StateStore
from streamproc.waterfall.caps import CreditCap
from streamproc.waterfall.config import ProviderPrice, WaterfallConfig
from streamproc.waterfall.ledger import PREFIX as HITS_PREFIX
from streamproc.waterfall.ledger import HitLedger, LocalCounts, Tally
from streamproc.waterfall.order import plan_order
from streamproc.waterfall.routing import Router
from streamproc.waterfall.run import (
    Failed,
    Found,
    LeadWaterfall,
    Missed,
    ProviderAnswer,
    Unavailable,
    Verification,
    WaterfallResult,
)

__all__ = [
    "HITS_PREFIX",
    "STEPS_PREFIX",
    "Member",
    "WaterfallDone",
    "WaterfallEnricher",
    "worst_charge",
]

log = get_logger(__name__)

#: How often the running hit totals go to the state topic, and how stale the tallies the
#: order is drawn from may be: the order needs trends, not the last lead.
_FLUSH_S = 1.0

#: The state keys of the step journal: ``waterfall/steps/<digest of lead id and lead>``.
STEPS_PREFIX = "waterfall/steps/"

#: Expired journal entries tombstoned per lead: a backlog goes out over many leads.
_TOMBSTONES_PER_LEAD = 8

#: The reason of a member not asked because it is over its credit cap.
_CAPPED = "credit cap"

#: ``(provider, outcome, credits)`` of each step, for the metrics.
StepHook = Callable[[str, str, int], None]


@dataclass(frozen=True, slots=True)
class WaterfallDone:
    """A lead's waterfall that found something: the merged enrichment, the credits every
    member reached charged, the attempts of all their calls and the steps, as
    ``enrichment_meta.providers`` lists them."""

    data: dict[str, Any]
    credits: int
    attempts: int
    steps: list[dict[str, Any]]


@dataclass(slots=True)
class Member:
    """One provider instance of the waterfall: its calls, its own breaker and its credit
    cap per day (None: only the group's budget limits it)."""

    name: str
    calls: ProviderCalls
    breaker: CircuitBreaker
    cap: CreditCap | None = None


def _counts(error: LeadError) -> bool:
    return error.counts_against_breaker and not error.shares_call


class WaterfallEnricher:
    """The handler's ``Enricher`` over several providers; ``clock`` is epoch seconds (the
    breakers' and the ledger's day)."""

    def __init__(
        self,
        config: WaterfallConfig,
        members: Mapping[str, Member],
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_step: StepHook | None = None,
        ttl_s: float = 24 * 3600.0,
    ) -> None:
        missing = {p.name for p in config.providers} - members.keys()
        if config.verify is not None and config.verify.provider not in members:
            missing.add(config.verify.provider)
        if missing:
            raise ValueError(f"no provider instance for {sorted(missing)}")
        self._config = config
        self._members = dict(members)
        self._router = Router(config)
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_step = on_step
        self._instance = instance
        self.ledger = HitLedger()
        self._counts = LocalCounts(instance)
        self._writes = StateWrites()
        #: Totals changed since the last flush: key -> the latest total.
        self._dirty: dict[str, dict[str, int]] = {}
        self._tallies: dict[tuple[str, str], Tally] = {}
        self._tallied_at = -_FLUSH_S
        self._flusher: asyncio.Task[None] | None = None
        self._store: StateStore | None = None
        #: The step journal: key -> (written at, {provider: its paid step}).
        self._journal: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._ttl_s = ttl_s
        #: Worst-case credits of each capped member's calls in flight in this process.
        self._in_flight: dict[str, int] = {}

    #: The handler puts each lead's :attr:`WaterfallDone.steps` in its ``enrichment_meta``.
    has_steps = True

    @property
    def members(self) -> Mapping[str, Member]:
        return self._members

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, store: StateStore) -> None:
        """Write the hit totals and the step journal to ``store``'s topic."""
        self._writes.attach(store)
        self._store = store

    def on_state(self, key: str, value: dict[str, Any] | None) -> None:
        """Fold one state record: another instance's (or an earlier process's) totals. Our
        own are folded when counted, so their echo, older by then, is not applied."""
        if key.startswith(HITS_PREFIX) and not key.endswith("/" + self._instance):
            self.ledger.apply(key, value)
        elif key.startswith(STEPS_PREFIX):
            journal = key[len(STEPS_PREFIX) :]
            steps = None if value is None else value.get("steps")
            at = None if value is None else value.get("at")
            if isinstance(steps, dict) and isinstance(at, int | float):
                self._journal[journal] = (float(at), steps)
            else:
                self._journal.pop(journal, None)

    async def start(self) -> None:
        for member in self._members.values():
            await member.calls.start()
        self._flusher = asyncio.ensure_future(self._flush_every())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self.flush()
        await self._writes.drain()
        for member in self._members.values():
            await member.calls.close()

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            self.flush()

    def flush(self) -> None:
        """Append the totals changed since the last flush to the state topic."""
        dirty, self._dirty = self._dirty, {}
        for key, value in dirty.items():
            self._writes.write(key, value)

    # --- the Enricher protocol --------------------------------------------------------------

    async def enrich(
        self,
        lead: Mapping[str, Any],
        lead_id: str,
        *,
        keep_trying: Callable[[LeadError], Awaitable[bool]] | None = None,
    ) -> WaterfallDone:
        """Run ``lead``'s waterfall. The guard's ``keep_trying`` is not used: each member
        retries under its own breaker, and the lead's one budget slice covers the ceiling."""
        del keep_trying
        now = self._clock()
        today = datetime.fromtimestamp(now, UTC).date()
        routed = self._router.route(lead)
        self._refresh_tallies(now)
        plan = plan_order(self._config, routed, self._tally, self._rng)
        run = LeadWaterfall(self._config, plan.order)
        attempts = 0
        journal = self._journal_key(lead, lead_id, now)
        paid = {} if journal is None else dict(self._journal.get(journal, (0.0, {}))[1])
        capped: set[str] = set()
        while (name := run.next_provider()) is not None:
            earlier = paid.get(name)
            if earlier is not None:
                # Paid by an earlier run of this lead (killed mid-waterfall): its answer
                # again, nothing charged now (the earlier run's claim counted it).
                run.record(name, _replayed(earlier))
                log.info("waterfall.step_replayed", provider=name, lead_id=lead_id)
                check = run.to_verify()
                if check is not None:
                    _, tries = await self._verify(
                        check, run, lead, lead_id, journal, paid, now, routed.segment
                    )
                    attempts += tries
                continue
            answer, tries = await self._ask(self._members[name], lead, lead_id)
            attempts += tries
            run.record(name, answer)
            if journal is not None and isinstance(answer, Found | Missed) and answer.credits:
                paid[name] = _journaled(answer)
                await self._write_journal(journal, paid, now)
            check = run.to_verify()
            rejected = False
            if check is not None:
                verdict, tries = await self._verify(
                    check, run, lead, lead_id, journal, paid, now, routed.segment
                )
                attempts += tries
                rejected = verdict == "rejected"
            if not isinstance(answer, Unavailable):
                # A rejected value is no find for the order's cost per found answer.
                self._observe(routed.segment, name, today, answer, rejected=rejected)
            elif answer.reason == _CAPPED:
                capped.add(name)
        result = run.result()
        if (
            journal is not None
            and paid
            and (result.verdict == "publish" or not _failed(result, capped))
        ):
            # After the handler's settle has written the receipt (see the module's doc). A
            # lead that failed keeps its journal (to its TTL): held or retried, it runs
            # again, and pays none of these steps twice.
            asyncio.get_running_loop().call_soon(self._forget, journal)
        steps = [
            {"provider": t.provider, "outcome": t.outcome, "credits": t.credits}
            for t in result.tried
        ]
        if self._on_step is not None:
            for t in result.tried:
                self._on_step(t.provider, t.outcome, t.credits)
        if result.verdict == "publish":
            return WaterfallDone(result.data, result.credits, max(attempts, 1), steps)
        said = (
            ", ".join(
                f"{t.provider}: {t.outcome}" + (" (credit cap)" if t.provider in capped else "")
                for t in result.tried
            )
            or "none"
        )
        # A member over its credit cap was not asked by choice, not for a failure: the
        # lead is a miss for the group breaker (and the DLQ's no_match), not an error.
        error: LeadError
        if _failed(result, capped):
            # Nothing found because a provider could not answer: a failure of the whole
            # waterfall, so the group breaker and its policy (hold or DLQ) take over.
            error = ProviderError(
                f"no provider found the lead; some could not answer ({said})",
                maybe_charged=result.credits > 0,
            )
        else:
            error = NoMatch(f"no provider found the lead ({said})", credits=result.credits)
        # The budget books what the steps cost, billed misses included, not an average.
        error.charged = result.credits
        raise error

    async def _verify(
        self,
        check: Verification,
        run: LeadWaterfall,
        lead: Mapping[str, Any],
        lead_id: str,
        journal: str | None,
        paid: dict[str, dict[str, Any]],
        now: float,
        segment: str,
    ) -> tuple[str, int]:
        """Ask the verifier about ``check``'s value (or take its journaled answer) and give
        ``run`` its answer; the verdict and the attempts it took."""
        step = f"{check.provider}@{check.finder}"
        earlier = paid.get(step)
        if earlier is not None:
            log.info("waterfall.step_replayed", provider=check.provider, lead_id=lead_id)
            return run.verified(_replayed(earlier)), 0
        # The verifier sees the lead as the finder left it: with the value to judge.
        asked = {**lead, check.field: check.value}
        answer, tries = await self._ask(self._members[check.provider], asked, lead_id)
        verdict = run.verified(answer)
        if not isinstance(answer, Unavailable):
            # In the hit ledger as a provider: its credits count against its cap, and its
            # "hits" (values it verified) show in state show and the console.
            today = datetime.fromtimestamp(now, UTC).date()
            self._observe(segment, check.provider, today, answer, rejected=verdict != "verified")
        if journal is not None and isinstance(answer, Found | Missed) and answer.credits:
            paid[step] = _journaled(answer)
            await self._write_journal(journal, paid, now)
        log.info(
            "waterfall.verified",
            provider=check.provider,
            finder=check.finder,
            verdict=verdict,
            lead_id=lead_id,
        )
        return verdict, tries

    def _price(self, name: str) -> ProviderPrice:
        verify = self._config.verify
        if verify is not None and name == verify.provider:
            return verify.price()
        return self._config.price(name)

    def _journal_key(self, lead: Mapping[str, Any], lead_id: str, now: float) -> str | None:
        """The lead's journal key (None: no state store); tombstones a few expired ones."""
        store = self._store
        if store is None:
            return None
        if self._journal:
            expired = [k for k, (at, _) in self._journal.items() if at + self._ttl_s <= now]
            for key in expired[:_TOMBSTONES_PER_LEAD]:
                self._forget(key)
        digest = hashlib.sha256(lead_id.encode())
        digest.update(orjson.dumps(lead, option=orjson.OPT_SORT_KEYS))
        return digest.hexdigest()[:40]

    async def _write_journal(
        self, journal: str, paid: dict[str, dict[str, Any]], now: float
    ) -> None:
        """Append the steps paid so far and wait for the broker's acknowledgement: the next
        provider is asked only once this one's charge is durable."""
        assert self._store is not None
        self._journal[journal] = (now, dict(paid))
        try:
            await self._store.append(STEPS_PREFIX + journal, {"at": now, "steps": paid})
        except Exception as exc:  # a paid answer must not be thrown away for its journal
            # The step stays in this process's journal; only a crash before the lead's
            # output commits could now pay it twice (the Idempotency-Key still covers it).
            log.warning("waterfall.journal_failed", error=f"{type(exc).__name__}: {exc}")

    def _forget(self, journal: str) -> None:
        self._journal.pop(journal, None)
        self._writes.write(STEPS_PREFIX + journal, None)

    async def _ask(
        self, member: Member, lead: Mapping[str, Any], lead_id: str
    ) -> tuple[ProviderAnswer, int]:
        """One member's answer for the lead and the attempts it took; a member over its
        credit cap, or whose breaker is open, is ``Unavailable`` at once."""
        cap = member.cap
        if cap is None:
            return await self._ask_member(member, lead, lead_id)
        now = self._clock()
        today = datetime.fromtimestamp(now, UTC).date()
        worst = max(worst_charge(self._price(member.name)), 1)
        in_flight = self._in_flight.get(member.name, 0)
        if not cap.admits(self.ledger.credits(member.name, today), in_flight, worst):
            log.info("waterfall.provider_capped", provider=member.name, cap=cap.limit)
            return Unavailable(_CAPPED), 0
        self._in_flight[member.name] = in_flight + worst
        try:
            return await self._ask_member(member, lead, lead_id)
        finally:
            self._in_flight[member.name] -= worst

    async def _ask_member(
        self, member: Member, lead: Mapping[str, Any], lead_id: str
    ) -> tuple[ProviderAnswer, int]:
        breaker = member.breaker
        permit = breaker.try_acquire(self._clock())
        if permit is None:
            return Unavailable("breaker open"), 0

        async def keep_trying(error: LeadError) -> bool:
            return self._may_retry(breaker, permit, error)

        try:
            done = await member.calls.enrich(lead, lead_id, keep_trying=keep_trying)
        except NoMatch as exc:
            # A miss is an answer: the provider is up.
            breaker.record_success(permit, self._clock())
            return Missed(exc.credits), 1
        except LeadError as exc:
            if _counts(exc):
                breaker.record_failure(permit, self._clock())
            else:
                breaker.release(permit, self._clock())
            # A failure that may have been billed counts at the member's worst case: the
            # budget over-counts, it never under-counts.
            worst = worst_charge(self._price(member.name))
            log.info(
                "waterfall.provider_failed",
                provider=member.name,
                lead_id=lead_id,
                error_class=exc.error_class.value,
            )
            return Failed(exc.error_class.value, worst if exc.maybe_charged else 0), 1
        except BaseException:
            breaker.release(permit, self._clock())
            raise
        breaker.record_success(permit, self._clock())
        return Found(done.data, done.credits), done.attempts

    def _may_retry(self, breaker: CircuitBreaker, permit: Permit, error: LeadError) -> bool:
        """A member's failed attempt counts against its breaker; retries stop once it
        opened (the lead goes on to the next provider instead)."""
        now = self._clock()
        if _counts(error):
            breaker.record_failure(permit, now)
        if isinstance(error, LocalStall):
            return True
        if error.maybe_charged:
            # Not retried: the step is booked once at the member's worst case, and the lead
            # goes on to the next provider (a retry's bill would go uncounted).
            return False
        return breaker.state(now) is BreakerState.CLOSED

    # --- the hit ledger ---------------------------------------------------------------------

    def _observe(
        self,
        segment: str,
        provider: str,
        day: date,
        answer: ProviderAnswer,
        *,
        rejected: bool = False,
    ) -> None:
        hit = isinstance(answer, Found) and not rejected
        credits = answer.credits if isinstance(answer, Found | Missed | Failed) else 0
        key, value = self._counts.observe(segment, provider, day, hit=hit, credits=credits)
        self.ledger.apply(key, value)
        self._dirty[key] = value

    def _refresh_tallies(self, now: float) -> None:
        # The ledger's sum runs over every key of the window: done at most once a second,
        # not per lead and provider.
        if now - self._tallied_at >= _FLUSH_S or now < self._tallied_at:
            self._tallies.clear()
            self._tallied_at = now

    def _tally(self, segment: str, provider: str) -> Tally:
        found = self._tallies.get((segment, provider))
        if found is None:
            today = datetime.fromtimestamp(self._tallied_at, UTC).date()
            found = self.ledger.tally(segment, provider, today, self._config.adaptive.window_days)
            self._tallies[(segment, provider)] = found
        return found


def worst_charge(price: ProviderPrice) -> int:
    """What a failed call that may have been billed counts at: the member's worst case, so
    the budget over-counts, it never under-counts."""
    return int(price.credits_per_call + price.credits_per_hit + 0.999999)


def _journaled(answer: Found | Missed) -> dict[str, Any]:
    if isinstance(answer, Found):
        return {"outcome": "found", "credits": answer.credits, "data": answer.data}
    return {"outcome": "missed", "credits": answer.credits}


def _failed(result: WaterfallResult, capped: Collection[str]) -> bool:
    """Nothing found while a provider could not answer (failed, or unavailable but not by
    its credit cap, which is a choice): a failure of the waterfall, not a miss."""
    return any(
        t.outcome == "failed" or (t.outcome == "unavailable" and t.provider not in capped)
        for t in result.tried
    )


def _replayed(step: Mapping[str, Any]) -> ProviderAnswer:
    """A journaled step as the answer it was, charging nothing now."""
    data = step.get("data")
    if step.get("outcome") == "found" and isinstance(data, dict):
        return Found(data, 0)
    return Missed(0)
