"""CircuitBreaker: sliding-window trips, bounded half-open, stale permits, snapshot/restore."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from streamproc.resilience.breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    Permit,
    Transition,
)

FAST = settings(max_examples=150, deadline=None)
T0 = 1_700_000_000.0  # an epoch instant; the breaker's clock is epoch seconds
WEEK_S = 7 * 24 * 3600.0


def make(
    threshold: int = 5, window_s: float = 60.0, cooldown_s: float = 900.0, probes: int = 1
) -> tuple[CircuitBreaker, list[Transition]]:
    log: list[Transition] = []
    config = BreakerConfig(threshold, window_s, cooldown_s, probes)
    return CircuitBreaker(config, on_transition=log.append), log


def fail(breaker: CircuitBreaker, now: float) -> None:
    permit = breaker.try_acquire(now)
    assert permit is not None
    breaker.record_failure(permit, now)


def trip(breaker: CircuitBreaker, now: float) -> None:
    for _ in range(breaker.config.failure_threshold):
        fail(breaker, now)
    # With cooldown_s == 0 an open breaker is half-open at once.
    assert breaker.state(now) is not BreakerState.CLOSED


# --- closed --------------------------------------------------------------------------------


def test_starts_closed_and_grants_plain_permits() -> None:
    """A new breaker is closed and hands out non-probe permits."""
    breaker, log = make()
    permit = breaker.try_acquire(T0)
    assert breaker.state(T0) is BreakerState.CLOSED
    assert permit is not None
    assert not permit.probe
    assert log == []


def test_threshold_failures_within_window_open_it() -> None:
    """The fifth failure inside the window opens the breaker, not the fourth."""
    breaker, log = make(threshold=5, window_s=60)
    for i in range(4):
        fail(breaker, T0 + i)
    assert breaker.state(T0 + 4) is BreakerState.CLOSED
    fail(breaker, T0 + 4)
    assert breaker.state(T0 + 4) is BreakerState.OPEN
    assert breaker.try_acquire(T0 + 4) is None
    assert log == [Transition(BreakerState.CLOSED, BreakerState.OPEN, T0 + 4, "failure_threshold")]


def test_five_failures_a_week_apart_never_trip() -> None:
    """Reference defect: failures far apart must not accumulate into a trip."""
    breaker, log = make(threshold=5, window_s=60)
    for i in range(50):
        fail(breaker, T0 + i * WEEK_S)
    assert breaker.state(T0 + 50 * WEEK_S) is BreakerState.CLOSED
    assert log == []


def test_failures_age_out_of_the_window() -> None:
    """A failure at t counts while t > now - window_s and no longer."""
    breaker, _ = make(threshold=3, window_s=10)
    fail(breaker, T0)
    fail(breaker, T0 + 5)
    assert breaker.failures_in_window(T0 + 9.999) == 2
    assert breaker.failures_in_window(T0 + 10) == 1
    fail(breaker, T0 + 10)
    assert breaker.state(T0 + 10) is BreakerState.CLOSED
    fail(breaker, T0 + 14)
    assert breaker.state(T0 + 14) is BreakerState.OPEN


def test_success_while_closed_clears_the_window() -> None:
    """A 200 resets the count: threshold means a run of failures since the last success."""
    breaker, _ = make(threshold=3, window_s=60)
    fail(breaker, T0)
    fail(breaker, T0 + 1)
    permit = breaker.try_acquire(T0 + 2)
    assert permit is not None
    breaker.record_success(permit, T0 + 2)
    assert breaker.failures_in_window(T0 + 2) == 0
    fail(breaker, T0 + 3)
    fail(breaker, T0 + 4)
    assert breaker.state(T0 + 4) is BreakerState.CLOSED


def test_release_while_closed_changes_nothing() -> None:
    """A release (4xx, 429) neither counts as failure nor clears the window."""
    breaker, _ = make(threshold=3)
    fail(breaker, T0)
    permit = breaker.try_acquire(T0 + 1)
    assert permit is not None
    breaker.release(permit, T0 + 1)
    assert breaker.failures_in_window(T0 + 1) == 1


# --- open and half-open ----------------------------------------------------------------------


def test_open_refuses_until_cooldown_then_half_opens() -> None:
    """Open refuses every call until exactly opened_at + cooldown_s, then half-opens lazily."""
    breaker, log = make(threshold=1, cooldown_s=900)
    trip(breaker, T0)
    assert breaker.reopens_at(T0) == T0 + 900
    assert breaker.try_acquire(T0 + 899.999) is None
    assert breaker.state(T0 + 899.999) is BreakerState.OPEN
    assert breaker.state(T0 + 900) is BreakerState.HALF_OPEN
    assert breaker.reopens_at(T0 + 900) is None
    assert log[-1] == Transition(
        BreakerState.OPEN, BreakerState.HALF_OPEN, T0 + 900, "cooldown_elapsed"
    )


def test_half_open_lets_only_the_configured_probes_through() -> None:
    """Reference defect: half-open admits at most half_open_probes calls at once."""
    breaker, _ = make(threshold=1, cooldown_s=10, probes=2)
    trip(breaker, T0)
    now = T0 + 10
    permits = [breaker.try_acquire(now) for _ in range(10)]
    granted = [p for p in permits if p is not None]
    assert len(granted) == 2
    assert all(p.probe for p in granted)
    assert breaker.probes_in_flight(now) == 2


def test_probe_success_closes_and_clears() -> None:
    """A successful probe closes the breaker with an empty failure window."""
    breaker, log = make(threshold=2, cooldown_s=10)
    trip(breaker, T0)
    probe = breaker.try_acquire(T0 + 10)
    assert probe is not None
    breaker.record_success(probe, T0 + 11)
    assert breaker.state(T0 + 11) is BreakerState.CLOSED
    assert breaker.failures_in_window(T0 + 11) == 0
    assert log[-1].reason == "probe_succeeded"
    fail(breaker, T0 + 12)
    assert breaker.state(T0 + 12) is BreakerState.CLOSED


def test_probe_failure_reopens_with_a_fresh_cooldown() -> None:
    """A failed probe re-opens the breaker; the new cooldown runs from the failure."""
    breaker, log = make(threshold=1, cooldown_s=10)
    trip(breaker, T0)
    probe = breaker.try_acquire(T0 + 10)
    assert probe is not None
    breaker.record_failure(probe, T0 + 13)
    assert breaker.state(T0 + 13) is BreakerState.OPEN
    assert breaker.reopens_at(T0 + 13) == T0 + 23
    assert breaker.try_acquire(T0 + 22.5) is None
    assert log[-1] == Transition(BreakerState.HALF_OPEN, BreakerState.OPEN, T0 + 13, "probe_failed")


def test_release_frees_a_probe_slot_without_changing_state() -> None:
    """A probe that ends in a 429 or 4xx frees its slot; the breaker stays half-open."""
    breaker, _ = make(threshold=1, cooldown_s=0)
    trip(breaker, T0)
    probe = breaker.try_acquire(T0)
    assert probe is not None
    assert breaker.try_acquire(T0) is None
    breaker.release(probe, T0 + 1)
    assert breaker.state(T0 + 1) is BreakerState.HALF_OPEN
    assert breaker.try_acquire(T0 + 1) is not None


def test_a_probe_reported_twice_frees_one_slot() -> None:
    """Double-reporting a probe cannot widen half-open beyond half_open_probes."""
    breaker, _ = make(threshold=1, cooldown_s=0, probes=1)
    trip(breaker, T0)
    probe = breaker.try_acquire(T0)
    assert probe is not None
    breaker.release(probe, T0)
    breaker.release(probe, T0)
    assert breaker.try_acquire(T0) is not None
    assert breaker.try_acquire(T0) is None


def test_a_released_probe_cannot_report_again() -> None:
    """After a probe's release, a second report for it (a bug in the shell) is ignored."""
    breaker, log = make(threshold=1, cooldown_s=10, probes=1)
    trip(breaker, T0)
    probe = breaker.try_acquire(T0 + 10)
    assert probe is not None
    breaker.release(probe, T0 + 10)
    breaker.record_failure(probe, T0 + 11)
    breaker.record_success(probe, T0 + 11)
    assert breaker.state(T0 + 11) is BreakerState.HALF_OPEN
    assert log[-1].to_state is BreakerState.HALF_OPEN


# --- stale permits -----------------------------------------------------------------------------


def test_stale_failure_while_open_is_ignored() -> None:
    """A slow call from before the trip failing later does not extend the cooldown."""
    breaker, log = make(threshold=2, cooldown_s=100)
    slow = breaker.try_acquire(T0)
    assert slow is not None
    trip(breaker, T0 + 1)
    breaker.record_failure(slow, T0 + 50)
    assert breaker.reopens_at(T0 + 50) == T0 + 101
    assert len(log) == 1


def test_stale_success_while_open_does_not_close() -> None:
    """A slow call from before the trip succeeding later does not close the breaker."""
    breaker, _ = make(threshold=2, cooldown_s=100)
    slow = breaker.try_acquire(T0)
    assert slow is not None
    trip(breaker, T0 + 1)
    breaker.record_success(slow, T0 + 50)
    assert breaker.state(T0 + 50) is BreakerState.OPEN


def test_stale_closed_permit_in_half_open_neither_closes_nor_reopens() -> None:
    """Only probes decide half-open: a pre-trip permit's outcome is ignored there."""
    breaker, _ = make(threshold=1, cooldown_s=10)
    slow = breaker.try_acquire(T0)
    assert slow is not None
    trip(breaker, T0)
    probe = breaker.try_acquire(T0 + 10)
    assert probe is not None
    breaker.record_success(slow, T0 + 11)
    assert breaker.state(T0 + 11) is BreakerState.HALF_OPEN
    breaker.record_failure(slow, T0 + 11)
    assert breaker.state(T0 + 11) is BreakerState.HALF_OPEN
    breaker.release(slow, T0 + 11)
    assert breaker.try_acquire(T0 + 11) is None


def test_late_probe_from_an_earlier_half_open_is_ignored() -> None:
    """With two probes out, the second one's failure after the first closed it is stale."""
    breaker, _ = make(threshold=1, cooldown_s=0, probes=2)
    trip(breaker, T0)
    first, second = breaker.try_acquire(T0), breaker.try_acquire(T0)
    assert first is not None
    assert second is not None
    breaker.record_success(first, T0 + 1)
    breaker.record_failure(second, T0 + 2)
    assert breaker.state(T0 + 2) is BreakerState.CLOSED


def test_transition_log_of_a_full_cycle() -> None:
    """The callback sees closed→open→half_open→open→half_open→closed with reasons."""
    breaker, log = make(threshold=1, cooldown_s=5)
    trip(breaker, T0)
    probe = breaker.try_acquire(T0 + 5)
    assert probe is not None
    breaker.record_failure(probe, T0 + 6)
    probe = breaker.try_acquire(T0 + 11)
    assert probe is not None
    breaker.record_success(probe, T0 + 12)
    assert [(t.from_state, t.to_state, t.reason) for t in log] == [
        (BreakerState.CLOSED, BreakerState.OPEN, "failure_threshold"),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, "cooldown_elapsed"),
        (BreakerState.HALF_OPEN, BreakerState.OPEN, "probe_failed"),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, "cooldown_elapsed"),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED, "probe_succeeded"),
    ]


# --- snapshot / restore ------------------------------------------------------------------------


def roundtrip(breaker: CircuitBreaker) -> CircuitBreaker:
    return CircuitBreaker.restore(breaker.config, json.loads(json.dumps(breaker.snapshot())))


def test_open_breaker_stays_open_after_restore_until_cooldown() -> None:
    """A restart does not reset an open breaker: it half-opens at the original time."""
    breaker, _ = make(threshold=1, cooldown_s=900)
    trip(breaker, T0)
    restored = roundtrip(breaker)
    assert restored.state(T0 + 600) is BreakerState.OPEN
    assert restored.try_acquire(T0 + 899) is None
    assert restored.reopens_at(T0 + 600) == T0 + 900
    assert restored.state(T0 + 900) is BreakerState.HALF_OPEN


def test_restore_treats_in_flight_probes_as_lost() -> None:
    """A half-open snapshot with its probe out restores with a free probe slot."""
    breaker, _ = make(threshold=1, cooldown_s=10)
    trip(breaker, T0)
    assert breaker.try_acquire(T0 + 10) is not None
    assert breaker.try_acquire(T0 + 10) is None
    restored = roundtrip(breaker)
    assert restored.state(T0 + 11) is BreakerState.HALF_OPEN
    probe = restored.try_acquire(T0 + 11)
    assert probe is not None
    assert probe.probe


def test_restore_keeps_recent_failures_of_a_closed_breaker() -> None:
    """Four failures before a restart and one after still trip a threshold of five."""
    breaker, _ = make(threshold=5, window_s=60)
    for i in range(4):
        fail(breaker, T0 + i)
    restored = roundtrip(breaker)
    assert restored.failures_in_window(T0 + 5) == 4
    fail(restored, T0 + 5)
    assert restored.state(T0 + 5) is BreakerState.OPEN


def test_restore_drops_failures_that_aged_out() -> None:
    """Restored failures still age out of the window by their original timestamps."""
    breaker, _ = make(threshold=2, window_s=60)
    fail(breaker, T0)
    restored = roundtrip(breaker)
    fail(restored, T0 + 61)
    assert restored.state(T0 + 61) is BreakerState.CLOSED


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"v": 99, "state": "closed"},
        {"v": 1, "state": "ajar"},
        {"v": 1},
        {"v": 1, "state": "open", "opened_at": None},
        {"v": 1, "state": "open", "opened_at": "yesterday"},
        {"v": 1, "state": "closed", "failures": [float("nan")]},
        {"v": 1, "state": "closed", "failures": 3},
    ],
)
def test_restore_rejects_malformed_snapshots(snapshot: dict[str, Any]) -> None:
    """A corrupt state record is a ValueError, not a half-built breaker."""
    with pytest.raises(ValueError, match="breaker snapshot"):
        CircuitBreaker.restore(BreakerConfig(5, 60, 900, 1), snapshot)


@pytest.mark.parametrize(
    ("threshold", "window_s", "cooldown_s", "probes"),
    [(0, 60, 900, 1), (5, 0, 900, 1), (5, 60, -1, 1), (5, 60, 900, 0)],
)
def test_config_rejects_nonsense(
    threshold: int, window_s: float, cooldown_s: float, probes: int
) -> None:
    """Thresholds that would make the breaker meaningless are refused."""
    with pytest.raises(ValueError, match="must be"):
        BreakerConfig(threshold, window_s, cooldown_s, probes)


# --- properties --------------------------------------------------------------------------------


@FAST
@given(
    threshold=st.integers(1, 6),
    window_s=st.sampled_from([1.0, 10.0, 60.0]),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=40),
)
def test_closed_opens_exactly_when_a_window_holds_threshold_failures(
    threshold: int, window_s: float, gaps: list[float]
) -> None:
    """With only failures, the breaker opens at the first failure completing a full window."""
    breaker, _ = make(threshold=threshold, window_s=window_s, cooldown_s=1e9)
    times: list[float] = []
    now = T0
    for gap in gaps:
        now += gap
        times.append(now)
        fail(breaker, now)
        in_window = sum(1 for t in times if t > now - window_s)
        expected = BreakerState.OPEN if in_window >= threshold else BreakerState.CLOSED
        assert breaker.state(now) is expected
        if expected is BreakerState.OPEN:
            break


class BreakerMachine(RuleBasedStateMachine):
    """Random calls, outcomes (including stale and repeated reports) and clock steps."""

    @initialize(
        threshold=st.integers(1, 4),
        window_s=st.sampled_from([1.0, 5.0, 30.0]),
        cooldown_s=st.sampled_from([0.0, 2.0, 10.0]),
        probes=st.integers(1, 3),
    )
    def setup(self, threshold: int, window_s: float, cooldown_s: float, probes: int) -> None:
        self.config = BreakerConfig(threshold, window_s, cooldown_s, probes)
        self.log: list[Transition] = []
        self.breaker = CircuitBreaker(self.config, on_transition=self.log.append)
        self.now = T0
        # Unreported permits, with the number of transitions seen when each was issued.
        self.out: list[tuple[Permit, int]] = []
        self.reported: list[Permit] = []
        self.failure_reports: list[float] = []
        self.checked = 0

    def last_opened_at(self) -> float | None:
        opened = [t.at for t in self.log if t.to_state is BreakerState.OPEN]
        return opened[-1] if opened else None

    @rule(dt=st.sampled_from([0.0, 0.25, 1.0, 2.0, 5.0, 10.0, 31.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def acquire(self) -> None:
        opened_at = self.last_opened_at()
        cooling = opened_at is not None and self.now < opened_at + self.config.cooldown_s
        permit = self.breaker.try_acquire(self.now)
        if cooling:
            assert permit is None, "open breaker let a call through before its cooldown"
        if permit is not None:
            self.out.append((permit, len(self.log)))

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "release"]))
    def report(self, data: st.DataObject, outcome: str) -> None:
        index = data.draw(st.integers(0, len(self.out) - 1))
        permit, _ = self.out.pop(index)
        self.reported.append(permit)
        self._report(permit, outcome)

    @precondition(lambda self: bool(self.reported))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "release"]))
    def report_again(self, data: st.DataObject, outcome: str) -> None:
        permit = data.draw(st.sampled_from(self.reported))
        self._report(permit, outcome)

    def _report(self, permit: Permit, outcome: str) -> None:
        if outcome == "success":
            self.breaker.record_success(permit, self.now)
        elif outcome == "failure":
            self.failure_reports.append(self.now)
            self.breaker.record_failure(permit, self.now)
        else:
            self.breaker.release(permit, self.now)

    @invariant()
    def half_open_is_bounded(self) -> None:
        if not hasattr(self, "breaker"):
            return
        probes_out = sum(1 for p, seen in self.out if p.probe and seen == len(self.log))
        assert probes_out <= self.config.half_open_probes
        assert self.breaker.probes_in_flight(self.now) <= self.config.half_open_probes

    @invariant()
    def every_trip_had_threshold_failures_in_a_window(self) -> None:
        if not hasattr(self, "breaker"):
            return
        for transition in self.log[self.checked :]:
            if transition.reason == "failure_threshold":
                t = transition.at
                in_window = [f for f in self.failure_reports if t - self.config.window_s < f <= t]
                assert len(in_window) >= self.config.failure_threshold
        self.checked = len(self.log)

    @invariant()
    def open_until_cooldown(self) -> None:
        if not hasattr(self, "breaker"):
            return
        for opened, left in zip(self.log, self.log[1:], strict=False):
            if opened.to_state is BreakerState.OPEN:
                assert left.at >= opened.at + self.config.cooldown_s
        opened_at = self.last_opened_at()
        if opened_at is not None and self.now < opened_at + self.config.cooldown_s:
            assert self.breaker.state(self.now) is BreakerState.OPEN
            assert self.breaker.reopens_at(self.now) == opened_at + self.config.cooldown_s

    @invariant()
    def snapshot_is_json_and_restorable(self) -> None:
        if not hasattr(self, "breaker"):
            return
        snapshot = json.loads(json.dumps(self.breaker.snapshot()))
        restored = CircuitBreaker.restore(self.config, snapshot)
        assert restored.state(self.now) is self.breaker.state(self.now)


BreakerMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
