"""MetricsProgress: the replay metrics follow the committed report."""

from __future__ import annotations

from streamproc.ops.metrics import Metrics
from streamproc.replay.progress import MetricsProgress, NullProgress
from streamproc.replay.report import ReplayReport


def _value(metrics: Metrics, name: str) -> float | None:
    for line in metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


REPLAYED = 'streamproc_replay_records_total{action="replayed"}'
PARKED = 'streamproc_replay_records_total{action="parked"}'
REMAINING = "streamproc_replay_remaining_records"


def test_counts_and_remaining_follow_each_committed_report() -> None:
    metrics = Metrics()
    sink = MetricsProgress(metrics, NullProgress())
    report = ReplayReport(dry_run=False, filters="", max_attempts=3)
    sink.start(10)
    assert _value(metrics, REMAINING) == 10
    report.add("replay", "provider_error", 3)
    report.add("park", "invalid_payload", 1)
    sink.update(report)
    report.add("replay", "rate_limited", 2)
    report.add("skip", "provider_error", 1)
    sink.update(report)
    assert (_value(metrics, REPLAYED), _value(metrics, PARKED)) == (5, 1)
    assert _value(metrics, REMAINING) == 3


def test_a_dry_run_counts_nothing_as_moved() -> None:
    metrics = Metrics()
    sink = MetricsProgress(metrics, NullProgress())
    report = ReplayReport(dry_run=True, filters="", max_attempts=3)
    sink.start(4)
    report.add("replay", "provider_error", 4)
    sink.update(report)
    assert _value(metrics, REPLAYED) in (None, 0)
    assert _value(metrics, REMAINING) == 0
