"""HealthMonitor: a true sliding window of outcomes, in bounded memory, and its thresholds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.health import HealthCounts, HealthMonitor, HealthStatus

FAST = settings(max_examples=200, deadline=None)


def monitor_with(successes: int, failures: int, now: float = 0.0) -> HealthMonitor:
    monitor = HealthMonitor()
    for _ in range(successes):
        monitor.record(True, now)
    for _ in range(failures):
        monitor.record(False, now)
    return monitor


def test_no_data_is_healthy_with_no_rate() -> None:
    """Before any call the rate is unknown and the status is healthy."""
    monitor = HealthMonitor()
    assert monitor.success_rate(0.0) is None
    assert monitor.status(0.0) is HealthStatus.HEALTHY
    assert monitor.counts(0.0) == HealthCounts(0, 0)


@pytest.mark.parametrize(
    ("successes", "failures", "status"),
    [
        (100, 0, HealthStatus.HEALTHY),
        (96, 4, HealthStatus.HEALTHY),
        (95, 5, HealthStatus.DEGRADED),  # "above 95 %" is strict
        (90, 10, HealthStatus.DEGRADED),
        (80, 20, HealthStatus.UNHEALTHY),  # "above 80 %" is strict
        (50, 50, HealthStatus.UNHEALTHY),
        (0, 3, HealthStatus.UNHEALTHY),
    ],
)
def test_status_thresholds(successes: int, failures: int, status: HealthStatus) -> None:
    """healthy above 95 %, degraded above 80 %, else unhealthy."""
    monitor = monitor_with(successes, failures)
    assert monitor.success_rate(0.0) == successes / (successes + failures)
    assert monitor.status(0.0) is status


def test_window_evicts_on_record_without_any_read() -> None:
    """Reference defect: old outcomes leave the window on record, not only when read."""
    monitor = HealthMonitor(window_s=300)
    for t in range(100):
        monitor.record(False, float(t))
    assert monitor.buckets() == 100
    monitor.record(True, 1000.0)
    assert monitor.buckets() == 1
    assert monitor.counts(1000.0) == HealthCounts(1, 0)
    assert monitor.status(1000.0) is HealthStatus.HEALTHY


def test_window_evicts_on_read() -> None:
    """A failure storm that ended more than a window ago no longer counts."""
    monitor = monitor_with(0, 50, now=10.0)
    assert monitor.status(10.0) is HealthStatus.UNHEALTHY
    assert monitor.success_rate(311.0) is None
    assert monitor.status(311.0) is HealthStatus.HEALTHY


def test_window_edge_at_one_second_resolution() -> None:
    """An outcome at t counts until its 1-second bucket ends window_s ago."""
    monitor = HealthMonitor(window_s=300)
    monitor.record(False, 0.5)  # bucket [0, 1)
    assert monitor.counts(300.999).failures == 1
    assert monitor.counts(301.0).failures == 0


def test_window_slides_continuously() -> None:
    """Outcomes leave one by one as the window moves, not all at once."""
    monitor = HealthMonitor(window_s=10)
    for t in range(10):
        monitor.record(t % 2 == 0, float(t))
    assert monitor.counts(9.5) == HealthCounts(5, 5)
    assert monitor.counts(11.0) == HealthCounts(4, 5)
    assert monitor.counts(12.0) == HealthCounts(4, 4)
    assert monitor.counts(15.0) == HealthCounts(2, 3)


def test_memory_is_bounded_under_a_high_call_rate() -> None:
    """A million calls over ten minutes keep at most ceil(window/bucket) + 1 buckets."""
    monitor = HealthMonitor(window_s=300)
    for i in range(1_000_000):
        monitor.record(i % 100 != 0, i * 0.0006)
    assert monitor.buckets() <= 301
    counts = monitor.counts(600.0)
    assert 0.98 < counts.successes / counts.total < 1.0


def test_coarser_buckets_hold_fewer_entries() -> None:
    """bucket_s trades edge resolution for memory."""
    monitor = HealthMonitor(window_s=300, bucket_s=10)
    for t in range(1000):
        monitor.record(True, float(t))
    assert monitor.buckets() <= 31


def test_a_clock_step_backwards_lands_in_the_newest_bucket() -> None:
    """An outcome stamped before the newest bucket is counted there, not lost."""
    monitor = HealthMonitor(window_s=60)
    monitor.record(True, 100.0)
    monitor.record(False, 90.0)
    assert monitor.buckets() == 1
    assert monitor.counts(100.0) == HealthCounts(1, 1)


@pytest.mark.parametrize(
    ("window_s", "healthy", "degraded", "bucket_s"),
    [
        (0, 0.95, 0.8, 1),
        (300, 0.8, 0.95, 1),
        (300, 1.5, 0.8, 1),
        (300, 0.95, 0.8, 0),
        (5, 0.95, 0.8, 10),
    ],
)
def test_nonsense_configuration_is_refused(
    window_s: float, healthy: float, degraded: float, bucket_s: float
) -> None:
    """Windows, thresholds and buckets that cannot mean anything are a ValueError."""
    with pytest.raises(ValueError, match=r"must|need"):
        HealthMonitor(window_s, healthy, degraded, bucket_s=bucket_s)


@FAST
@given(
    window_s=st.sampled_from([5.0, 10.0, 30.0]),
    bucket_s=st.sampled_from([0.5, 1.0, 2.5]),
    steps=st.lists(
        st.tuples(st.floats(0, 8, allow_nan=False), st.booleans(), st.booleans()), max_size=80
    ),
)
def test_counts_equal_brute_force_within_bucket_resolution(
    window_s: float, bucket_s: float, steps: list[tuple[float, bool, bool]]
) -> None:
    """Counts match a brute-force scan of all outcomes, to one bucket at the window edge."""
    monitor = HealthMonitor(window_s, bucket_s=bucket_s)
    history: list[tuple[float, bool]] = []
    now = 1_000.0
    for dt, success, read in steps:
        now += dt
        if read:
            counts = monitor.counts(now)
            horizon = now - window_s
            kept = [s for t, s in history if (math.floor(t / bucket_s) + 1) * bucket_s > horizon]
            assert counts == HealthCounts(kept.count(True), kept.count(False))
            exact = [s for t, s in history if t > horizon]
            loose = [s for t, s in history if t > horizon - bucket_s]
            assert len(exact) <= counts.total <= len(loose)
            rate = monitor.success_rate(now)
            assert rate == (kept.count(True) / len(kept) if kept else None)
        else:
            monitor.record(success, now)
            history.append((now, success))
            # Evicted on record too: exactly the live buckets remain, read or not.
            live = {
                math.floor(t / bucket_s)
                for t, _ in history
                if (math.floor(t / bucket_s) + 1) * bucket_s > now - window_s
            }
            assert monitor.buckets() == len(live)
        assert monitor.buckets() <= math.ceil(window_s / bucket_s) + 1
