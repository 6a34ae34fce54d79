"""The circuit breaker in front of the enrichment provider: a pure, synchronous state machine.

States and transitions::

    CLOSED ──(failure_threshold failures within window_s, no success between)──► OPEN
    OPEN ──(cooldown_s elapsed; evaluated lazily by any call that takes ``now``)──► HALF_OPEN
    HALF_OPEN ──(a probe succeeds)──► CLOSED         (failure window cleared)
    HALF_OPEN ──(a probe fails)──► OPEN              (new cooldown from that instant)

Usage by the shell: ``permit = breaker.try_acquire(now)``; ``None`` means refused (hold the
partition or DLQ the lead as ``breaker_open``). Every permit must then be reported exactly
once, with :meth:`CircuitBreaker.record_success` (a 200), :meth:`~CircuitBreaker.record_failure`
(5xx, timeout, connection error, 401/403: ``LeadError.counts_against_breaker``) or
:meth:`~CircuitBreaker.release` (an outcome that says nothing about the provider's health:
other 4xx, 429, 402, a cancelled call). A probe that is never reported keeps its half-open
slot until the process restarts, so the shell reports in a ``finally``.

Rules worth knowing:

* The failure window is a true sliding window of failure timestamps: a failure at ``t``
  counts while ``t > now - window_s``. Five failures a week apart never trip it (a defect of the
  reference, which only cleared its counter in half-open).
* A success while CLOSED clears the window (docs/resilience.md), so the threshold
  counts a run of failures since the last success, within ``window_s``.
* Stale permits are ignored: a permit remembers the breaker generation (bumped on every
  transition) it was issued in, and an outcome for a permit from an earlier generation
  changes nothing. So a slow call from before the breaker opened can neither re-trip it,
  nor close it, nor free a probe slot. A probe is also single-use: reporting it twice frees
  one slot, not two, so half-open never lets more than ``half_open_probes`` calls through.
* Transitions are reported through the ``on_transition`` callback (a :class:`Transition`),
  called synchronously after the state changed, including the lazy OPEN → HALF_OPEN one;
  that is the hook for metrics and logs.

Clock: every ``now`` is **epoch seconds** (``time.time()`` in the shell), because
:meth:`CircuitBreaker.snapshot` must survive a restart. A clock stepping backwards can
delay a transition by the size of the step; it never hastens one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "Permit",
    "Transition",
    "TransitionListener",
]

#: Version of the :meth:`CircuitBreaker.snapshot` format; bump on incompatible changes.
SNAPSHOT_VERSION = 1


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Breaker thresholds; times in seconds.

    ``failure_threshold`` failures within ``window_s`` open the breaker; it stays open for
    ``cooldown_s``; then up to ``half_open_probes`` calls at once may test the provider.
    """

    failure_threshold: int
    window_s: float
    cooldown_s: float
    half_open_probes: int

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not self.window_s > 0:
            raise ValueError("window_s must be > 0")
        if not self.cooldown_s >= 0:
            raise ValueError("cooldown_s must be >= 0")
        if self.half_open_probes < 1:
            raise ValueError("half_open_probes must be >= 1")


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one provider call; report it exactly once.

    ``probe`` is true for a half-open test call. ``generation`` and ``seq`` are the breaker's
    bookkeeping (which state episode issued it, and which call it is); treat them as opaque.
    """

    probe: bool
    generation: int
    seq: int


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: from, to, when (epoch seconds) and a short machine-readable reason.

    Reasons: ``failure_threshold``, ``cooldown_elapsed``, ``probe_succeeded``,
    ``probe_failed``.
    """

    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


#: Called synchronously with each :class:`Transition`; must not raise.
TransitionListener = Callable[[Transition], None]


class CircuitBreaker:
    """One provider's breaker. Not thread-safe; the asyncio shell calls it from one loop."""

    def __init__(
        self, config: BreakerConfig, *, on_transition: TransitionListener | None = None
    ) -> None:
        self._config = config
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        # Bumped on every transition; permits from an older generation are stale.
        self._generation = 0
        self._seq = 0
        # Only the newest threshold-1 failures can matter: the next one either trips the
        # breaker or they have aged out, so memory is O(failure_threshold).
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probes_out: set[int] = set()

    @property
    def config(self) -> BreakerConfig:
        return self._config

    # --- queries -------------------------------------------------------------------------

    def state(self, now: float) -> BreakerState:
        """The state at ``now``, after applying a due OPEN → HALF_OPEN transition."""
        self._advance(now)
        return self._state

    def reopens_at(self, now: float) -> float | None:
        """Epoch seconds at which an OPEN breaker turns half-open; ``None`` unless OPEN."""
        self._advance(now)
        if self._state is not BreakerState.OPEN or self._opened_at is None:
            return None
        return self._opened_at + self._config.cooldown_s

    def failures_in_window(self, now: float) -> int:
        """Failures counted towards the threshold at ``now`` (0 unless CLOSED)."""
        self._advance(now)
        return len(self._failures)

    def probes_in_flight(self, now: float) -> int:
        """Half-open probe permits handed out and not yet reported."""
        self._advance(now)
        return len(self._probes_out)

    # --- the call protocol -----------------------------------------------------------------

    def try_acquire(self, now: float) -> Permit | None:
        """A permit to call the provider, or ``None`` when the breaker refuses the call."""
        self._advance(now)
        if self._state is BreakerState.CLOSED:
            return self._issue(probe=False)
        if self._state is BreakerState.HALF_OPEN:
            if len(self._probes_out) >= self._config.half_open_probes:
                return None
            permit = self._issue(probe=True)
            self._probes_out.add(permit.seq)
            return permit
        return None

    def record_success(self, permit: Permit, now: float) -> None:
        """The call succeeded: clears the window when CLOSED, closes the breaker on a probe."""
        self._advance(now)
        if not self._current(permit):
            return
        if self._state is BreakerState.CLOSED:
            self._failures.clear()
        elif self._state is BreakerState.HALF_OPEN and self._take_probe(permit):
            self._transition(BreakerState.CLOSED, now, "probe_succeeded")

    def record_failure(self, permit: Permit, now: float) -> None:
        """The call failed in a way that counts against the provider (5xx, timeout, 401/403)."""
        self._advance(now)
        if not self._current(permit):
            return
        if self._state is BreakerState.CLOSED:
            self._failures.append(now)
            self._evict(now)
            if len(self._failures) >= self._config.failure_threshold:
                self._transition(BreakerState.OPEN, now, "failure_threshold")
        elif self._state is BreakerState.HALF_OPEN and self._take_probe(permit):
            self._transition(BreakerState.OPEN, now, "probe_failed")

    def release(self, permit: Permit, now: float) -> None:
        """The call ended without evidence about provider health; frees a probe slot only."""
        self._advance(now)
        if self._current(permit) and self._state is BreakerState.HALF_OPEN:
            self._take_probe(permit)

    # --- persistence -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for the state topic; times are epoch seconds.

        In-flight permits are not part of it: after a restore, half-open probes that were in
        flight are lost and the next acquire becomes a fresh probe.
        """
        return {
            "v": SNAPSHOT_VERSION,
            "state": self._state.value,
            "opened_at": self._opened_at,
            "failures": list(self._failures),
        }

    @classmethod
    def restore(
        cls,
        config: BreakerConfig,
        snapshot: Mapping[str, Any],
        *,
        on_transition: TransitionListener | None = None,
    ) -> CircuitBreaker:
        """A breaker from :meth:`snapshot` output; raises ``ValueError`` on a malformed one.

        OPEN stays open until ``opened_at + cooldown_s`` (of the *current* config).
        HALF_OPEN comes back half-open with no probe in flight, which is the same as open
        with the cooldown elapsed: the next acquire is a fresh probe. CLOSED keeps its recent
        failures (the newest ``failure_threshold - 1``; more could not change a decision).
        """
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported breaker snapshot version {snapshot.get('v')!r}")
        try:
            state = BreakerState(snapshot["state"])  # ValueError for an unknown state
            opened_at_raw = snapshot.get("opened_at")
            opened_at = None if opened_at_raw is None else _finite(opened_at_raw, "opened_at")
            failures = [_finite(t, "failures") for t in snapshot.get("failures", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed breaker snapshot: {exc}") from None
        if state is BreakerState.OPEN and opened_at is None:
            raise ValueError("malformed breaker snapshot: open without opened_at")
        breaker = cls(config, on_transition=on_transition)
        breaker._state = state
        breaker._opened_at = opened_at if state is BreakerState.OPEN else None
        if state is BreakerState.CLOSED:
            keep = config.failure_threshold - 1
            breaker._failures.extend(sorted(failures)[-keep:] if keep else [])
        return breaker

    # --- internals -------------------------------------------------------------------------

    def _issue(self, *, probe: bool) -> Permit:
        self._seq += 1
        return Permit(probe=probe, generation=self._generation, seq=self._seq)

    def _current(self, permit: Permit) -> bool:
        return permit.generation == self._generation

    def _take_probe(self, permit: Permit) -> bool:
        """Consume a probe permit's slot; false when it is not an outstanding probe."""
        if not permit.probe or permit.seq not in self._probes_out:
            return False
        self._probes_out.discard(permit.seq)
        return True

    def _advance(self, now: float) -> None:
        if self._state is BreakerState.CLOSED:
            self._evict(now)
        elif (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and now >= self._opened_at + self._config.cooldown_s
        ):
            self._transition(BreakerState.HALF_OPEN, now, "cooldown_elapsed")

    def _evict(self, now: float) -> None:
        horizon = now - self._config.window_s
        failures = self._failures
        while failures and failures[0] <= horizon:
            failures.popleft()

    def _transition(self, to: BreakerState, now: float, reason: str) -> None:
        previous = self._state
        self._state = to
        self._generation += 1
        self._probes_out.clear()
        self._failures.clear()
        self._opened_at = now if to is BreakerState.OPEN else None
        if self._on_transition is not None:
            self._on_transition(Transition(previous, to, now, reason))


def _finite(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{field} must be finite")
    return number
