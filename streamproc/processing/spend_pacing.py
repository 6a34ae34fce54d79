"""Priority and spend pacing around the provider call: the score's floor, the controller's
threshold, deferral to the band topics and the best-first drain of them.

Off unless ``priority_score`` or ``pacing_enabled`` is set: the handler then takes its
plain path, chosen once at start, and pays nothing per lead (docs/budget.md).

* **Score**: the ``priority_score`` CEL expression (:class:`PriorityScore`); a lead it
  fails on gets ``priority_default_score``; under ``priority_floor``: ``below_floor``.
* **Admit or defer** (``pacing_enabled``): a new lead whose density ``score · decay(age) /
  credits`` clears the threshold :class:`PacingGate` holds (or is in its top layer, which
  goes whatever θ says), with no deferred lead of a higher band going before it, and the
  plan's gate has room for it (the simulator's: the group's credits committed and this
  instance's in flight within the plan + 2 % of the limit, a top lead's + 4.5 %), goes on
  to the guard. Else it is **deferred**: its outcome
  is one record to the deferral topic of its score band, which the lane commits with the
  input offset in one transaction, as a DLQ record is. The partition never waits for it.
* **Drain**: the processor also consumes the deferral topics. A deferred lead waits in
  memory (its deferral partition's window is ``deferral_window``) until it clears the
  threshold, no earlier lead of its deferral partition waits, and no lead of a higher band
  that may go now is waiting or being enriched: higher bands first, each partition in
  offset order (so its commit never holds a bought answer behind a lead that waits). A
  lead that does not clear costs nothing per step while it waits; first of its partition
  with a lead behind it that clears, it is written again at its band's tail (first
  deferral time kept) so that lead goes: one rewrite per lead let through. One whose
  worth has decayed below its band's lowest score is written again to the band of its
  worth (at most once a band), so the newer leads of its band, worth more, do not wait
  behind it. After ``deferral_max_age_s`` since it was deferred it goes to the DLQ, retriable
  (``deferral_expired``), with its original coordinates.
* **Controller**: one for the group (:mod:`streamproc.resilience.pacing_step`). Every
  ``pacing_step_s`` each instance writes what it was offered to the state topic; the
  instance that holds partition 0 of the input (any, once the steps go stale) moves the
  threshold with :class:`Pacer` from the day's plan (:class:`SpendPlan`), the day's spend
  as the group's ledger has it and the group's offers, and writes the step under
  ``pacing/step``; every instance gates with the latest step it folded, and a restart
  resumes from it. While the breaker is not closed the step is frozen and, once it closes
  again, the plan is re-anchored at the spend then, what it asked for meanwhile paid back
  over the next half hour (nothing built up to dump in one burst).
  The plan's shape is learnt from the hourly arrivals of the last ``pacing_history_days``
  of the input (:func:`learn_plan_shape`), at start and once a day, and re-estimated each
  quarter-hour from the leads offered today against them (in the step).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.errors import BelowFloor, DeferralExpired, StreamprocError
from streamproc.kafka.arrivals import offsets_at
from streamproc.kafka.config import KafkaConnection
from streamproc.logs import get_logger
from streamproc.processing.config import PacingConfig
from streamproc.processing.holds import Holds
from streamproc.records.consumed import ConsumedRecord
from streamproc.records.dlq import Headers
from streamproc.records.outcome import OutRecord
from streamproc.resilience.arrivals import BUCKETS, bucket_counts, history_bounds, learn_shape
from streamproc.resilience.pacer import Pacer, PacerConfig, StepStats, Threshold, tie_draw
from streamproc.resilience.pacing_step import (
    STEP_KEY,
    PacingFold,
    PlanShape,
    SharedStep,
    next_step,
    offers_key,
    step_plan,
)
from streamproc.resilience.priority import PriorityScore, ScoreError
from streamproc.resilience.spend_plan import SpendPlan, gate_admits, uniform_shape
from streamproc.timestamps import Clock

__all__ = ["DeferredView", "LeadPacing", "PacingGate", "SpendView", "learn_plan_shape"]

log = get_logger(__name__)

#: Header of a deferral record: where the lead came from (JSON: topic, partition,
#: offset, timestamp), so its DLQ record, if it expires, points at the original.
ORIGIN_HEADER = "streamproc.deferred.origin"
#: Header of a deferral record: when it was deferred (epoch ms, ASCII).
DEFERRED_AT_HEADER = "streamproc.deferred.at"
_OWN_HEADERS = frozenset({ORIGIN_HEADER, DEFERRED_AT_HEADER})
#: After a failed attempt to learn the plan's shape, the next one (the last shape holds).
_LEARN_RETRY_S = 600.0

OffsetsAt = Callable[[KafkaConnection, str, list[float]], Awaitable[list[list[int]]]]


async def learn_plan_shape(
    kafka: KafkaConnection,
    today: str,
    zone: str,
    *,
    topic: str,
    history_days: int,
    offsets: OffsetsAt = offsets_at,
) -> PlanShape:
    """The plan's shape for budget day ``today`` (in ``zone``) from the arrivals of the
    ``history_days`` (``pacing_history_days``) before it on ``topic`` (``topic_raw``),
    counted from offsets by time."""
    if history_days == 0:
        return PlanShape(uniform_shape(BUCKETS))
    bounds = history_bounds(today, zone, history_days)
    # Consecutive days share a bound: each time is asked once.
    times = sorted({at for day in bounds for at in day})
    column = {at: i for i, at in enumerate(times)}
    found = await offsets(kafka, topic, times)
    days = [bucket_counts([[row[column[at]] for at in day] for row in found]) for day in bounds]
    return learn_shape(days, source=topic)


@dataclass(slots=True)
class DeferredView:
    """A deferral record seen as the input record it was: its DLQ record and its output
    carry the original coordinates and headers."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    band: int
    deferred_at_s: float
    #: The deferral record's own topic, partition and offset.
    place: tuple[str, int, int]


class SpendView:
    """What the controller reads of the group's state: its day, limit, spend, breaker,
    and the credits granted claims hold (the gate's)."""

    def __init__(
        self,
        day_window: Callable[[float], tuple[str, float]],
        limit: Callable[[str], int],
        spent: Callable[[str], float],
        provider_out: Callable[[float], bool],
        committed: Callable[[str], float] | None = None,
        own_held: Callable[[str], float] | None = None,
        own_unused: Callable[[str], float] | None = None,
        *,
        own_lease: Callable[[str], tuple[str, float] | None] | None = None,
        others_claims: Callable[[str], Mapping[str, float]] | None = None,
    ) -> None:
        #: ``now`` → (the budget day, epoch seconds it started).
        self.day_window = day_window
        self.limit = limit
        self.spent = spent
        self.provider_out = provider_out
        #: Credits settled and reserved by granted claims (the gate reads it; None: the
        #: settled ones).
        self.committed = spent if committed is None else committed
        #: Credits held by this instance's own granted claims (inside ``committed``): its
        #: leads in flight take their slices from them, so only what they need beyond
        #: counts again. None: nothing held.
        self.own_held = own_held
        #: Credits of this instance's open lease no lead has taken yet (inside
        #: ``own_held``): its own to spend, so they are not counted as the group's until a
        #: lead takes them. None: none.
        self.own_unused = own_unused
        #: This instance's open lease: (its claim id, its credits no lead has taken), or
        #: None; published with its offers each step, so the others know them as room.
        self.own_lease = own_lease
        #: Claims of the other instances granted and not settled, by claim id: their
        #: amounts (inside ``committed``). None: not known, counted whole.
        self.others_claims = others_claims


class PacingGate:
    """The threshold leads must clear now, the deferred leads waiting by band, and the
    controller step that moves the threshold. One per process."""

    def __init__(
        self,
        bands: int,
        view: SpendView | None,
        *,
        step_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        fold: PacingFold | None = None,
        writer: str = "local",
        publish: Callable[[str, dict[str, Any]], object] | None = None,
        leads: Callable[[], bool] = lambda: True,
        learn: Callable[[str], Awaitable[PlanShape]] | None = None,
        lead_credits: int = 1,
    ) -> None:
        """``publish`` writes a record to the state topic (None: one process alone, its
        steps folded at once); ``leads``: this instance computes the group's steps (it
        holds partition 0 of the input topic); ``learn``: the plan's shape for a budget
        day (:func:`learn_plan_shape`), asked at start and once a day; ``lead_credits``:
        what a lead reserves (the gate's)."""
        self._view = view
        self._lead_credits = lead_credits
        #: Leads admitted and not done yet, by their record's place: their credits count
        #: against the gate (a burst of them cannot all pass one reading of the ledger
        #: before their claims are in it).
        self._in_flight: set[tuple[str, int, int]] = set()
        self._gate_plan: tuple[SharedStep | None, PlanShape, str, int, SpendPlan] | None = None
        self._clock = clock
        #: Clock seconds to wall seconds, to sleep a step (a scaled clock: bench only).
        self._wall = clock.wall_span if isinstance(clock, Clock) else float
        self._step_s = step_s
        self._config = PacerConfig(step_s=step_s)
        self.threshold: Threshold = Pacer(self._config).state.threshold
        #: The top layer's threshold: a lead above it goes whatever θ says (None: none
        #: known yet).
        self.top: Threshold | None = None
        #: Deferred leads of each band waiting for their turn, by their deferral record's
        #: (topic, partition, offset): (its density now, draw).
        self._waiting: list[dict[tuple[str, int, int], tuple[Callable[[], float], float]]] = [
            {} for _ in range(bands)
        ]
        #: The offsets waiting in each deferral partition: only the lowest may go.
        self._lanes: dict[tuple[str, int], set[int]] = {}
        #: Deferred leads of each band past their turn and not done yet (being enriched).
        self._going = [0] * bands
        self._offers: list[tuple[float, int]] = []
        #: New leads below the floor this step: never offered, but arrivals all the same
        #: (the plan's re-estimate compares today's arrivals with every offset of history).
        self._below_floor = 0
        #: Deferred leads waiting for their turn: woken when the threshold moves or a band
        #: empties, released (cancelled, read again later) at shutdown and revocation.
        self._holds = Holds(clock)
        #: The group's step as folded from the state topic (the guard's, so ``state show``
        #: folds the same); this instance gates with its threshold.
        self.fold = fold if fold is not None else PacingFold()
        self._adopted: SharedStep | None = None
        self._writer = writer
        self._publish = publish
        self._leads = leads
        #: The plan's shape: the straight line until one is learnt from ``leads.raw``.
        self.shape = PlanShape(uniform_shape(BUCKETS))
        self._learn = learn
        #: The budget day the shape was learnt for, and when to try again after a failure.
        self._learnt_day: str | None = None
        self._learn_after = 0.0
        self._learning: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    # --- the threshold --------------------------------------------------------------------

    def set_threshold(self, threshold: Threshold, top: Threshold | None = None) -> None:
        """Move the threshold and the top layer's (the controller's step does; so may an
        operator's tool)."""
        self.threshold = threshold
        self.top = top
        self._wake()

    def _clears(self, density: float, draw: float) -> bool:
        """It clears θ, or is in the top layer (throttled last, as in Smart Pacing), and
        the plan's gate has room for it (:meth:`room`), as in the simulator."""
        top = self.top is not None and self.top.admits(density, draw)
        return (top or self.threshold.admits(density, draw)) and self.room(top=top)

    def room(self, *, top: bool = False) -> bool:
        """Whether the group's credits committed (settled and held by granted claims, from
        the ledger) and this instance's leads in flight leave room under the plan's gate
        for one more lead, a ``top``-layer one or not (:func:`gate_admits`, the
        simulator's gate, on the group's plan); no budget view (a test, a tool): always.

        False while the group is frozen (the provider out, spending paused) or its step is
        still the frozen one: a lead let through then would wait in the guard's hold and
        go in the burst the freeze exists to prevent; it waits deferred instead, until
        the first step after the freeze re-anchors the plan and spreads what was missed
        over the payback window (:func:`next_step`), as the simulator admits nothing
        while frozen."""
        view = self._view
        if view is None:
            return True
        now = self._clock()
        day, start = view.day_window(now)
        current = self.fold.current
        if view.provider_out(now) or (
            current is not None and current.day == day and current.frozen
        ):
            return False
        return gate_admits(
            self._plan(day, view.limit(day)),
            now - start,
            committed=view.committed(day) + self._own_claims_correction(view, day),
            credits=self._lead_credits,
            top=top,
        )

    def _own_claims_correction(self, view: SpendView, day: str) -> float:
        """What the ledger's ``committed`` misses or counts too much of this instance's
        own: its leads in flight beyond what its granted claims hold (a lead that took its
        slice of a lease is in ``committed`` already, and counting it twice would hold
        spend a lease below the plan), less its open lease's credits no lead has taken
        (its own to spend: counted, a fresh lease of 2 % of the limit would take the
        gate's whole 2 % slack, and leads the simulator admits would be deferred)."""
        in_flight = len(self._in_flight) * self._lead_credits
        held = 0.0 if view.own_held is None else view.own_held(day)
        own = 0.0 if view.own_unused is None else view.own_unused(day)
        unused = min(held, own)
        return max(0.0, in_flight - (held - unused)) - unused - self._others_untaken(view, day, own)

    def _others_untaken(self, view: SpendView, day: str, own: float) -> float:
        """The other instances' open lease credits no lead had taken at their last offers
        record, for the claims still outstanding: not spent, so not the group's spend as
        the simulator counts it. Counted whole, two instances' fresh leases held the gate
        to the plan itself and deferred leads the simulator admits (bench/RESULTS.md). A
        report is at most a step old: what another took since passes the gate's ceiling
        by at most its lease, the bound the gate already has per instance. Nothing while
        this instance could not pay for one more lead (no untaken credits of its own and
        the ledger's remaining too small for a claim): the others' untaken credits are
        theirs until settled, and a lead let through would be refused its claim and
        dead-lettered (``budget_exhausted``) for a budget not spent yet. ``own``: this
        instance's untaken credits."""
        others = [lease for writer, lease in self.fold.leases.items() if writer != self._writer]
        if view.others_claims is None or not others:
            return 0.0  # one instance: no claims to list, on every gate check
        credits = self._lead_credits
        if own < credits and view.limit(day) - view.committed(day) < credits:
            return 0.0
        claims = view.others_claims(day)
        return sum(min(untaken, claims.get(claim_id, 0.0)) for claim_id, untaken in others)

    def _plan(self, day: str, limit: int) -> SpendPlan:
        """The group's plan (:func:`step_plan`), kept until its step, shape, day or limit
        changes: the gate is asked for every waiting lead a new one may not pass."""
        current, shape = self.fold.current, self.shape
        kept = self._gate_plan
        if kept is None or kept[:4] != (current, shape, day, limit):
            plan = step_plan(current, shape, day=day, limit=limit)
            kept = self._gate_plan = (current, shape, day, limit, plan)
        return kept[4]

    def lead_done(self, place: tuple[str, int, int]) -> None:
        """The lead of the record at ``place`` is done (its claim is booked, if any)."""
        self._in_flight.discard(place)

    def _wake(self) -> None:
        self._holds.wake()

    def release(self, tasks: Collection[asyncio.Task[Any]] | None = None) -> int:
        """Cancel the deferred leads waiting, all (shutdown) or those of ``tasks``."""
        return self._holds.release(tasks)

    def offer(self, density: float, credits: int) -> None:
        """A new lead was offered (admitted or not): the supply the controller ranks on."""
        self._offers.append((density, credits))

    def below_floor(self) -> None:
        """A new lead arrived below the floor: no offer, but one of the day's arrivals."""
        self._below_floor += 1

    def higher_ahead(self, band: int, worth: float) -> bool:
        """Whether a deferred lead of a higher band goes before one of ``band`` worth
        ``worth`` per credit now: one being enriched, or one waiting that clears the
        threshold now and is worth at least as much now. A higher lead that does not
        clear blocks nobody (it may wait for hours, or never clear), nor does one whose
        worth has decayed below this one's (bands are by score; the simulator ranks its
        pool by worth now)."""
        return any(
            self._going[higher]
            or any(
                self._may_go(place, density, draw) and density() >= worth
                for place, (density, draw) in self._waiting[higher].items()
            )
            for higher in range(band + 1, len(self._going))
        )

    def _may_go(
        self, place: tuple[str, int, int], density: Callable[[], float], draw: float
    ) -> bool:
        """It is the first waiting lead of its deferral partition (leads go in offset
        order, so a partition's commit never waits behind a lead that waits: what was
        bought is published at the next commit) and clears the threshold now."""
        topic, partition, offset = place
        return offset == min(self._lanes[(topic, partition)]) and self._clears(density(), draw)

    def admits_new(
        self, band: int, density: float, key: str, place: tuple[str, int, int] | None = None
    ) -> bool:
        """A new lead goes on now: it clears the threshold and no deferred lead of a higher
        band goes before it (a new lead never jumps ahead of a better deferred one).
        ``place``: the record's topic, partition and offset, by which it counts against
        the gate until :meth:`lead_done`."""
        draw = tie_draw(key)
        if not (self._clears(density, draw) and not self.higher_ahead(band, density)):
            return False
        if place is not None:
            self._in_flight.add(place)
        return True

    async def turn(
        self,
        band: int,
        place: tuple[str, int, int],
        density: Callable[[], float],
        key: str,
        expires_s: float,
        demote_s: float | None = None,
    ) -> bool:
        """Wait until the deferred lead at ``place`` (its deferral record's topic, partition
        and offset) of ``band`` may go: it clears the threshold, no earlier lead of its
        partition waits, and no lead of a higher band goes before it
        (:meth:`higher_ahead`). Then it counts as going until :meth:`done` (True).
        ``density`` is its worth per credit at each check: a lead waits with its worth
        decaying, as the simulator's pool does, not with what it was worth when it was
        read back. False: it is the first of its partition, does not clear, and a lead
        behind it would go now: it is to be deferred again at its band's tail rather
        than block that lead until it expires (one rewrite per lead let through, so no
        loop of rewrites). False too from ``demote_s`` (epoch seconds; None: never) on,
        when its worth has decayed below its band's (it is to be written to the band of
        its worth now, so a band's partition is not held for hours by leads worth less
        than any new one of the band behind them). :class:`DeferralExpired` at
        ``expires_s`` (epoch seconds): an expired lead leaves whatever waits before it."""
        draw = tie_draw(key)
        waiting = self._waiting[band]
        lane = self._lanes.setdefault(place[:2], set())
        waiting[place] = (density, draw)
        lane.add(place[2])
        try:
            while not (
                self._may_go(place, density, draw) and not self.higher_ahead(band, density())
            ):
                if self._blocks_a_better(band, place):
                    return False
                now = self._clock()
                if now >= expires_s:
                    raise DeferralExpired(
                        "deferred by pacing longer than deferral_max_age_s; not enriched"
                    )
                if demote_s is not None and now >= demote_s:
                    return False
                await self._holds.hold(expires_s if demote_s is None else min(expires_s, demote_s))
        finally:
            del waiting[place]
            lane.discard(place[2])
            if not lane:
                del self._lanes[place[:2]]
            # The next lead of its partition, or a lower band's, may go now (or once this
            # one is done): a lead that left waiting wakes the others.
            self._wake()
        self._in_flight.add(place)
        self._going[band] += 1
        return True

    def _blocks_a_better(self, band: int, place: tuple[str, int, int]) -> bool:
        """The lead at ``place`` is first of its partition and a lead waiting behind it
        clears the threshold now (and no higher band goes first)."""
        topic, partition, offset = place
        lane = self._lanes[(topic, partition)]
        if len(lane) < 2 or offset != min(lane):
            return False
        waiting = self._waiting[band]
        for behind in lane:
            entry = waiting.get((topic, partition, behind)) if behind != offset else None
            if entry is None:
                continue
            worth = entry[0]()
            if self._clears(worth, entry[1]):
                return not self.higher_ahead(band, worth)
        return False

    def done(self, band: int) -> None:
        """A deferred lead of ``band`` that went is done (enriched, failed, cancelled)."""
        self._going[band] -= 1
        if self._going[band] == 0:
            self._wake()

    @property
    def pending(self) -> tuple[int, ...]:
        """Deferred leads waiting or going per band, lowest first (for tests, a status)."""
        return tuple(len(w) + g for w, g in zip(self._waiting, self._going, strict=True))

    def status(self) -> dict[str, Any]:
        """``/status``'s ``pacing.gate``: the threshold this process gates with, the
        deferred leads waiting per band, whether frozen, the plan's source, the group's step."""
        current = self.fold.current
        return {
            "threshold": {
                "theta": self.threshold.theta,
                "bucket": self.threshold.bucket,
                "share": self.threshold.share,
            },
            "waiting": list(self.pending),
            "frozen": self.frozen,
            "plan": self.shape.source or "straight line",
            "late_offers": self.fold.late_offers,
            "step": None if current is None else current.status(),
        }

    # --- the controller -------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        """The group's controller is frozen (the provider is out): θ holds."""
        current = self.fold.current
        return current is not None and current.frozen

    def adopt(self) -> None:
        """Gate with the group's latest step (after a ``pacing/step`` record was folded,
        and at start: a restart resumes from the step the state topic holds)."""
        current = self.fold.current
        if current is not None and current is not self._adopted:
            self._adopted = current
            self.set_threshold(current.threshold, current.top)

    def start(self) -> None:
        self.adopt()
        if self._view is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._steps(), name="pacing")

    async def stop(self) -> None:
        for task in (self._task, self._learning):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._learning = None

    def _relearn(self) -> None:
        """Learn the plan's shape in the background when the budget day is new to it (the
        steps go on with the last shape meanwhile)."""
        if self._learn is None or self._view is None:
            return
        now = self._clock()
        day, _ = self._view.day_window(now)
        busy = self._learning is not None and not self._learning.done()
        if day == self._learnt_day or busy or now < self._learn_after:
            return
        self._learning = asyncio.get_running_loop().create_task(
            self._learn_for(day, self._learn), name="pacing-learn"
        )

    async def _learn_for(self, day: str, learn: Callable[[str], Awaitable[PlanShape]]) -> None:
        try:
            shape = await learn(day)
        except (StreamprocError, OSError) as exc:
            self._learn_after = self._clock() + _LEARN_RETRY_S
            log.warning("pacing.plan_not_learnt", day=day, error=str(exc))
            return
        self.shape, self._learnt_day = shape, day
        log.info("pacing.plan_learnt", day=day, source=shape.source or "straight line")

    async def _steps(self) -> None:
        # Every instance steps on the same boundaries (multiples of step_s since the
        # epoch): its offers first, then, a quarter of a step later (when the others'
        # offers have been read back), the step, by the instance that leads.
        while True:
            self._relearn()
            now = self._clock()
            await asyncio.sleep(self._wall(self._step_s - now % self._step_s))
            try:
                self.tick()
                await asyncio.sleep(self._wall(self._step_s / 4))
                if self._leads() or self._stale():
                    self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a controller bug must not stop the leads: θ holds
                log.exception("pacing.step_failed")

    def _stale(self) -> bool:
        """No step for over two and a half steps: the leader is gone; any instance steps
        (the first of a step in log order wins)."""
        current = self.fold.current
        return current is None or self._clock() - current.at > 2.5 * self._step_s

    def tick(self) -> None:
        """Publish this instance's offers of the step just ended (every instance does)."""
        # Taken first: a failing publish must not let the offers pile up.
        offers, self._offers = self._offers, []
        below, self._below_floor = self._below_floor, 0
        stats = StepStats.of(int(self._clock() // self._step_s) - 1, offers)
        if below:
            stats = dataclasses.replace(stats, leads=stats.leads + below)
        record = stats.to_dict()
        lease = self._own_lease()
        if lease is not None:
            record["lease"] = {"claim": lease[0], "untaken": lease[1]}
        if self._publish is None:
            self.fold.apply(offers_key(self._writer), record)
        else:
            self._publish(offers_key(self._writer), record)

    def _own_lease(self) -> tuple[str, float] | None:
        view = self._view
        if view is None or view.own_lease is None:
            return None
        day, _ = view.day_window(self._clock())
        return view.own_lease(day)

    def step(self) -> SharedStep | None:
        """Compute the group's step at the clock's now from the last one and the group's
        offers, and publish it (None: this step is already in the log)."""
        view = self._view
        assert view is not None
        now = self._clock()
        day, start = view.day_window(now)
        t = now - start
        current = self.fold.current
        if current is not None and (current.day, current.step) >= (day, int(t // self._step_s)):
            return None
        shared = next_step(
            current,
            self.fold.offers_before(int(now // self._step_s)),
            config=self._config,
            shape=self.shape,
            day=day,
            t=t,
            now=now,
            writer=self._writer,
            limit=view.limit(day),
            spent=view.spent(day),
            frozen=view.provider_out(now),
        )
        log.debug(
            "pacing.step",
            day=day,
            spent=shared.spent,
            plan=round(shared.target, 1),
            theta=shared.threshold.theta,
            frozen=shared.frozen,
        )
        if self._publish is None:
            self.fold.apply(STEP_KEY, shared.to_dict())
            self.adopt()
        else:
            self._publish(STEP_KEY, shared.to_dict())
        return shared


class LeadPacing:
    """The handler's one object for priority and pacing (None in the handler when both
    are off)."""

    def __init__(
        self,
        config: PacingConfig,
        score: PriorityScore | None,
        gate: PacingGate | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._score = score
        self._default = config.priority_default_score
        self.gate = gate
        self._edges = config.pacing_band_edges
        self._topics = config.deferral_topics
        self._band_of_topic = {topic: band for band, topic in enumerate(self._topics)}
        self._credits = max(1, config.credits_per_lead)
        self._max_age_s = config.deferral_max_age_s
        self._clock = clock
        #: Leads the expression failed on (given the default score).
        self.score_errors = 0

    def view(self, record: ConsumedRecord) -> ConsumedRecord:
        """The record as the handler should see it: a deferral record as its original."""
        band = self._band_of_topic.get(record.topic)
        if band is None:
            return record
        headers = dict(record.headers)
        try:
            origin = orjson.loads(headers[ORIGIN_HEADER])
            coordinates = (
                str(origin["topic"]),
                int(origin["partition"]),
                int(origin["offset"]),
                int(origin["timestamp"]),
            )
            deferred_at_s = int(headers[DEFERRED_AT_HEADER]) / 1000
        except (KeyError, ValueError, TypeError):
            # Not written by us (another producer on the topic): its own place and time.
            coordinates = (record.topic, record.partition, record.offset, record.timestamp)
            deferred_at_s = record.timestamp / 1000
        return DeferredView(
            *coordinates,
            key=record.key,
            value=record.value,
            headers=[(k, v) for k, v in record.headers if k not in _OWN_HEADERS],
            band=band,
            deferred_at_s=deferred_at_s,
            place=(record.topic, record.partition, record.offset),
        )

    def score(self, lead_id: str, fields: Mapping[str, Any]) -> float:
        """The lead's score (1.0 with no expression: all leads alike), floor checked."""
        if self._score is None:
            return 1.0
        try:
            value = self._score.score(fields)
        except ScoreError as exc:
            self.score_errors += 1
            log.debug("priority.score_failed", lead_id=lead_id, error=str(exc))
            value = self._default
        self._score.check_floor(value)
        return value

    def status(self) -> dict[str, Any]:
        """``/status``'s ``pacing``: score errors, and the gate's (with pacing on)."""
        return {
            "score_errors": self.score_errors,
            "gate": None if self.gate is None else self.gate.status(),
        }

    def band(self, score: float) -> int:
        return bisect.bisect_right(self._edges, score)

    def _demote_at(self, score: float, band: int, arrived_ms: int) -> float | None:
        """When a lead of ``score`` in ``band`` is worth less than the band's lowest score
        (epoch seconds; None: never: the lowest band, no decay, no arrival time). Its band's
        newer leads are then worth more than it: their partition must not wait behind it
        (at a 60-minute half-life a lead falls a band of width 2 an hour)."""
        halflife = None if self._score is None else self._score.halflife_s
        if halflife is None or band == 0 or arrived_ms < 0 or score <= 0:
            return None
        floor = self._edges[band - 1]
        # A millisecond past the crossing: its worth is then below the floor, not on it.
        return arrived_ms / 1000 + halflife * math.log2(max(score, floor) / floor) + 0.001

    def _density(self, score: float, arrived_ms: int) -> float:
        if self._score is None:
            return score / self._credits
        age_s = self._clock() - arrived_ms / 1000 if arrived_ms >= 0 else 0.0
        return self._score.worth(score, age_s) / self._credits

    async def admit(
        self, record: ConsumedRecord, lead_id: str, fields: Mapping[str, Any]
    ) -> OutRecord | None:
        """None: enrich the lead now (then call :meth:`finished`); else the record that
        defers it. Raises ``below_floor`` and ``deferral_expired`` LeadErrors."""
        gate = self.gate
        try:
            score = self.score(lead_id, fields)
        except BelowFloor:
            if gate is not None and not isinstance(record, DeferredView):
                gate.below_floor()
            raise
        if gate is None:
            return None
        band = self.band(score)
        if isinstance(record, DeferredView):
            expires = record.deferred_at_s + self._max_age_s
            arrived_ms = record.timestamp
            goes = await gate.turn(
                record.band,
                record.place,
                lambda: self._density(score, arrived_ms),
                lead_id,
                expires,
                self._demote_at(score, record.band, arrived_ms),
            )
            if goes:
                return None
            # Again at the tail of its band, or of the band its worth has decayed into,
            # its first deferral time kept: it expires when it would have, and the lead
            # behind it goes.
            band = min(record.band, self.band(self._density(score, arrived_ms) * self._credits))
            return self._deferral(record, lead_id, band, record.deferred_at_s)
        density = self._density(score, record.timestamp)
        gate.offer(density, self._credits)
        if gate.admits_new(band, density, lead_id, _place(record)):
            return None
        return self._deferral(record, lead_id, band, self._clock())

    def _deferral(
        self, record: ConsumedRecord, lead_id: str, band: int, deferred_at_s: float
    ) -> OutRecord:
        """The record that defers the lead to ``band``'s topic: its value, its headers, its
        origin (the input record it was) and when it was first deferred."""
        origin = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
        }
        headers = [
            *record.headers,
            (ORIGIN_HEADER, orjson.dumps(origin)),
            (DEFERRED_AT_HEADER, str(int(deferred_at_s * 1000)).encode()),
        ]
        key = record.key if record.key is not None else lead_id.encode()
        return OutRecord(self._topics[band], key, record.value, headers)

    def finished(self, record: ConsumedRecord) -> None:
        """The lead admitted by :meth:`admit` is done (whatever its outcome)."""
        if self.gate is None:
            return
        self.gate.lead_done(_place(record))
        if isinstance(record, DeferredView):
            self.gate.done(record.band)


def _place(record: ConsumedRecord) -> tuple[str, int, int]:
    """Where the record was read: a deferred lead's deferral record, else the record."""
    if isinstance(record, DeferredView):
        return record.place
    return (record.topic, record.partition, record.offset)
