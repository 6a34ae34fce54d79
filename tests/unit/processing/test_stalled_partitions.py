"""The stall watch: a partition with records behind, nothing in flight and no progress."""

from __future__ import annotations

from streamproc.processing.stalled_partitions import PartitionView, StallWatch


def view(
    partition: int = 0, lag: int = 9, in_flight: int = 0, committed: int = 100
) -> PartitionView:
    return PartitionView(partition, lag, in_flight, committed)


def test_an_idle_partition_with_lag_is_stalled_after_the_delay() -> None:
    """Lag 9, nothing in flight, offset unmoved: reported once, at 30 s, not before."""
    watch = StallWatch(after_s=30)
    assert watch.observe([view()], now=0) == []
    assert watch.observe([view()], now=29.9) == []
    assert watch.observe([view()], now=30) == [0]
    assert watch.observe([view()], now=45) == []  # reported once
    assert watch.stalled(now=45) == {0: 45}


def test_progress_restarts_the_clock_and_clears_the_stall() -> None:
    """A committed offset that moved is progress: the partition is no longer stalled."""
    watch = StallWatch(after_s=10)
    watch.observe([view(committed=100)], now=0)
    assert watch.observe([view(committed=100)], now=10) == [0]
    assert watch.observe([view(committed=105)], now=11) == []
    assert watch.stalled(now=11) == {}
    assert watch.observe([view(committed=105)], now=20.9) == []
    assert watch.observe([view(committed=105)], now=21) == [0]


def test_leads_in_flight_or_no_lag_is_not_a_stall() -> None:
    """A partition busy with leads (a hold, a failing commit) or caught up is never stalled."""
    watch = StallWatch(after_s=5)
    for now in range(0, 60, 5):
        assert watch.observe([view(0, in_flight=3), view(1, lag=0)], now=now) == []
    assert watch.stalled(now=60) == {}


def test_a_partition_no_longer_assigned_is_forgotten() -> None:
    """Revoked partitions leave the watch; a stall of theirs is no longer reported."""
    watch = StallWatch(after_s=5)
    watch.observe([view(0), view(1)], now=0)
    assert sorted(watch.observe([view(0), view(1)], now=5)) == [0, 1]
    watch.observe([view(1)], now=6)
    assert watch.stalled(now=6) == {1: 6}


def test_a_commit_ends_a_stall_at_once() -> None:
    """A stalled partition that commits is not stalled any more, before the next look."""
    watch = StallWatch(after_s=10)
    view = PartitionView(partition=0, lag=5, in_flight=0, committed_offset=3)
    watch.observe([view], now=0.0)
    assert watch.observe([view], now=10.0) == [0]
    watch.progressed(0)
    assert watch.stalled(now=11.0) == {}
