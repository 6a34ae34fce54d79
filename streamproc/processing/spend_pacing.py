"""Priority and spend pacing around the provider call: the score's floor, the controller's
threshold, deferral to the band topics and the best-first drain of them.

Off unless ``priority_score`` or ``pacing_enabled`` is set: the handler then takes its
plain path, chosen once at start, and pays nothing per lead (docs/budget.md).

* **Score**: the ``priority_score`` CEL expression (:class:`PriorityScore`); a lead it
  fails on gets ``priority_default_score``; under ``priority_floor``: ``below_floor``.
* **Admit or defer** (``pacing_enabled``): a new lead whose density ``score · decay(age) /
  credits`` clears the threshold :class:`PacingGate` holds (or is in its top layer, which
  goes whatever θ says), with no deferred lead of a higher band going before it, goes on
  to the guard. Else it is **deferred**: its outcome
  is one record to the deferral topic of its score band, which the lane commits with the
  input offset in one transaction, as a DLQ record is. The partition never waits for it.
* **Drain**: the processor also consumes the deferral topics. A deferred lead waits in
  memory (its deferral partition's window is ``deferral_window``) until it clears the
  threshold, no earlier lead of its deferral partition waits, and no lead of a higher band
  that may go now is waiting or being enriched: higher bands first, each partition in
  offset order (so its commit never holds a bought answer behind a lead that waits). It is
  never written again while it waits: a lead that does not clear costs nothing per step,
  and the leads behind it in its partition wait with it (a band holds leads of like
  scores). After ``deferral_max_age_s`` since it was deferred it goes to the DLQ,
  retriable (``deferral_expired``), with its original coordinates.
* **Controller**: every ``pacing_step_s`` the threshold is moved by :class:`Pacer` from the
  day's plan (:class:`SpendPlan`) and the day's spend as the group's ledger has it; while
  the breaker is not closed the step is frozen and, once it closes again, the plan is
  re-anchored at the spend then, what it asked for meanwhile paid back over the next half
  hour (nothing built up to dump in one burst).

What is not built yet: the step records are this instance's own (not shared through the
state topic), and the plan's shape is the straight line blended as in the simulator, not
learnt from past days of ``leads.raw`` (nor re-estimated during the day from the arrivals,
as the day simulator's plan is: :func:`surge_shape` needs the past days' counts). With
several instances each controller ranks the leads it is offered against the group's
spend; docs/budget.md says what that costs.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.errors import DeferralExpired
from streamproc.logs import get_logger
from streamproc.processing.holds import Holds
from streamproc.records.consumed import ConsumedRecord
from streamproc.records.dlq import Headers
from streamproc.records.outcome import OutRecord
from streamproc.resilience.pacer import Pacer, PacerConfig, StepStats, Threshold, tie_draw
from streamproc.resilience.priority import PriorityScore, ScoreError
from streamproc.resilience.spend_plan import SpendPlan, uniform_shape
from streamproc.settings import Settings

__all__ = ["DeferredView", "LeadPacing", "PacingGate", "SpendView"]

log = get_logger(__name__)

#: Header of a deferral record: where the lead came from (JSON: topic, partition,
#: offset, timestamp), so its DLQ record, if it expires, points at the original.
ORIGIN_HEADER = "streamproc.deferred.origin"
#: Header of a deferral record: when it was deferred (epoch ms, ASCII).
DEFERRED_AT_HEADER = "streamproc.deferred.at"
_OWN_HEADERS = frozenset({ORIGIN_HEADER, DEFERRED_AT_HEADER})

#: The plan's constants, as the day simulator settled them (docs/budget.md, "The levers").
_DAY_S = 86_400.0
_FINISH_S = 23 * 3600 + 55 * 60.0
_CLOSE_S = 23 * 3600.0
_BLEND = 0.9
_RESERVE = 0.04
#: After an outage, what the plan asked for while the provider was out is paid back over
#: this long, the controller's catch-up time (the leads that waited are the best in the
#: deferral topics), not at once.
_OWED_S = 1800.0


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
    """What the controller reads of the group's state: its day, limit, spend, breaker."""

    def __init__(
        self,
        day_window: Callable[[float], tuple[str, float]],
        limit: Callable[[str], int],
        spent: Callable[[str], float],
        provider_out: Callable[[float], bool],
    ) -> None:
        #: ``now`` → (the budget day, epoch seconds it started).
        self.day_window = day_window
        self.limit = limit
        self.spent = spent
        self.provider_out = provider_out


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
    ) -> None:
        self._view = view
        self._clock = clock
        self._step_s = step_s
        self._config = PacerConfig(step_s=step_s)
        self._pacer = Pacer(self._config)
        self.threshold: Threshold = self._pacer.state.threshold
        #: The top layer's threshold: a lead above it goes whatever θ says (None: none
        #: known yet).
        self.top: Threshold | None = self._pacer.state.top
        #: Deferred leads of each band waiting for their turn, by their deferral record's
        #: (topic, partition, offset): (density, draw).
        self._waiting: list[dict[tuple[str, int, int], tuple[float, float]]] = [
            {} for _ in range(bands)
        ]
        #: The offsets waiting in each deferral partition: only the lowest may go.
        self._lanes: dict[tuple[str, int], set[int]] = {}
        #: Deferred leads of each band past their turn and not done yet (being enriched).
        self._going = [0] * bands
        self._offers: list[tuple[float, int]] = []
        #: Deferred leads waiting for their turn: woken when the threshold moves or a band
        #: empties, released (cancelled, read again later) at shutdown and revocation.
        self._holds = Holds(clock)
        self._day: str | None = None
        self._plan: SpendPlan | None = None
        self._frozen = False
        self._task: asyncio.Task[None] | None = None

    # --- the threshold --------------------------------------------------------------------

    def set_threshold(self, threshold: Threshold, top: Threshold | None = None) -> None:
        """Move the threshold and the top layer's (the controller's step does; so may an
        operator's tool)."""
        self.threshold = threshold
        self.top = top
        self._wake()

    def _clears(self, density: float, draw: float) -> bool:
        """It clears θ, or is in the top layer (throttled last, as in Smart Pacing)."""
        top = self.top
        return self.threshold.admits(density, draw) or (
            top is not None and top.admits(density, draw)
        )

    def _wake(self) -> None:
        self._holds.wake()

    def release(self, tasks: Collection[asyncio.Task[Any]] | None = None) -> int:
        """Cancel the deferred leads waiting, all (shutdown) or those of ``tasks``."""
        return self._holds.release(tasks)

    def offer(self, density: float, credits: int) -> None:
        """A new lead was offered (admitted or not): the supply the controller ranks on."""
        self._offers.append((density, credits))

    def higher_ahead(self, band: int) -> bool:
        """Whether a deferred lead of a higher band goes before one of ``band``: one being
        enriched, or one waiting that clears the threshold now. A higher lead that does
        not clear blocks nobody (it may wait for hours, or never clear)."""
        return any(
            self._going[higher]
            or any(
                self._may_go(place, density, draw)
                for place, (density, draw) in self._waiting[higher].items()
            )
            for higher in range(band + 1, len(self._going))
        )

    def _may_go(self, place: tuple[str, int, int], density: float, draw: float) -> bool:
        """It clears the threshold and is the first waiting lead of its deferral partition
        (leads go in offset order, so a partition's commit never waits behind a lead that
        waits: what was bought is published at the next commit)."""
        topic, partition, offset = place
        return self._clears(density, draw) and offset == min(self._lanes[(topic, partition)])

    def admits_new(self, band: int, density: float, key: str) -> bool:
        """A new lead goes on now: it clears the threshold and no deferred lead of a higher
        band goes before it (a new lead never jumps ahead of a better deferred one)."""
        return self._clears(density, tie_draw(key)) and not self.higher_ahead(band)

    async def turn(
        self,
        band: int,
        place: tuple[str, int, int],
        density: float,
        key: str,
        expires_s: float,
    ) -> None:
        """Wait until the deferred lead at ``place`` (its deferral record's topic, partition
        and offset) of ``band`` may go: it clears the threshold, no earlier lead of its
        partition waits, and no lead of a higher band goes before it
        (:meth:`higher_ahead`). Then it counts as going until :meth:`done`.
        :class:`DeferralExpired` at ``expires_s`` (epoch seconds): an expired lead leaves
        whatever waits before it."""
        draw = tie_draw(key)
        waiting = self._waiting[band]
        lane = self._lanes.setdefault(place[:2], set())
        waiting[place] = (density, draw)
        lane.add(place[2])
        try:
            while not (self._may_go(place, density, draw) and not self.higher_ahead(band)):
                if self._clock() >= expires_s:
                    raise DeferralExpired(
                        "deferred by pacing longer than deferral_max_age_s; not enriched"
                    )
                await self._holds.hold(expires_s)
        finally:
            del waiting[place]
            lane.discard(place[2])
            if not lane:
                del self._lanes[place[:2]]
            # The next lead of its partition, or a lower band's, may go now (or once this
            # one is done): a lead that left waiting wakes the others.
            self._wake()
        self._going[band] += 1

    def done(self, band: int) -> None:
        """A deferred lead of ``band`` that went is done (enriched, failed, cancelled)."""
        self._going[band] -= 1
        if self._going[band] == 0:
            self._wake()

    @property
    def pending(self) -> tuple[int, ...]:
        """Deferred leads waiting or going per band, lowest first (for tests, a status)."""
        return tuple(len(w) + g for w, g in zip(self._waiting, self._going, strict=True))

    # --- the controller -------------------------------------------------------------------

    def start(self) -> None:
        if self._view is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._steps(), name="pacing")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _steps(self) -> None:
        while True:
            await asyncio.sleep(self._step_s)
            try:
                self.step()
            except Exception:  # a controller bug must not stop the leads: θ holds
                log.exception("pacing.step_failed")

    def step(self) -> None:
        """One controller step at the clock's now."""
        view = self._view
        assert view is not None
        # Taken first: a step that fails must not let the offers pile up.
        offers, self._offers = self._offers, []
        now = self._clock()
        day, start = view.day_window(now)
        t = now - start
        limit = view.limit(day)
        if day != self._day or self._plan is None:
            # A new day: a new plan, and a controller whose integral starts afresh (θ still
            # ranks on the offers of the last hour).
            self._day, self._pacer = day, Pacer(self._config, history=self._pacer.history)
            self._plan = SpendPlan(
                limit, _DAY_S, _FINISH_S, uniform_shape(24), _BLEND, _RESERVE, _CLOSE_S
            )
        elif limit != self._plan.limit:
            self._plan = self._plan.with_limit(limit)
        spent = view.spent(day)
        out = view.provider_out(now)
        if self._frozen and not out:
            # Back from an outage: what the plan asked for meanwhile is paid back over
            # the next half hour, the rest spread over what is left of the day.
            owed = max(0.0, self._plan.target(t) - spent)
            self._plan = self._plan.replan(t, spent, owed=owed, over_s=_OWED_S)
        self._frozen = out
        step = int(t // self._step_s)
        self._pacer.observe(StepStats.of(step, offers))
        state = self._pacer.update(step, t, spent, self._plan, frozen=out)
        log.debug(
            "pacing.step",
            day=day,
            spent=spent,
            plan=round(self._plan.target(t), 1),
            admit=round(state.admit, 4),
            theta=state.threshold.theta,
            frozen=out,
        )
        self.set_threshold(state.threshold, state.top)


class LeadPacing:
    """The handler's one object for priority and pacing (None in the handler when both
    are off)."""

    def __init__(
        self,
        settings: Settings,
        score: PriorityScore | None,
        gate: PacingGate | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._score = score
        self._default = settings.priority_default_score
        self.gate = gate
        self._edges = settings.pacing_band_edges
        self._topics = settings.deferral_topics
        self._band_of_topic = {topic: band for band, topic in enumerate(self._topics)}
        self._credits = max(1, settings.credits_per_lead)
        self._max_age_s = settings.deferral_max_age_s
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

    def band(self, score: float) -> int:
        return bisect.bisect_right(self._edges, score)

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
        score = self.score(lead_id, fields)
        gate = self.gate
        if gate is None:
            return None
        band = self.band(score)
        density = self._density(score, record.timestamp)
        if isinstance(record, DeferredView):
            expires = record.deferred_at_s + self._max_age_s
            await gate.turn(record.band, record.place, density, lead_id, expires)
            return None
        gate.offer(density, self._credits)
        if gate.admits_new(band, density, lead_id):
            return None
        origin = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
        }
        headers = [
            *record.headers,
            (ORIGIN_HEADER, orjson.dumps(origin)),
            (DEFERRED_AT_HEADER, str(int(self._clock() * 1000)).encode()),
        ]
        key = record.key if record.key is not None else lead_id.encode()
        return OutRecord(self._topics[band], key, record.value, headers)

    def finished(self, record: ConsumedRecord) -> None:
        """The lead admitted by :meth:`admit` is done (whatever its outcome)."""
        if self.gate is not None and isinstance(record, DeferredView):
            self.gate.done(record.band)
