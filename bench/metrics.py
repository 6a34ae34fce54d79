"""The numbers, and exactly how each is computed from what the benchmark observed.

Definitions (also in ``bench/README.md``):

``throughput`` (leads/s)
    Leads published / (last output's commit time - first output's commit time), commit
    times being the output records' LogAppendTime. Start-up (imports, group join, state
    restore) is outside the span; the first commit's batch is inside it, a bias of at most
    one commit interval's worth of leads (under 2 % at 20,000 leads). ``steady`` is the
    same over the 5th..95th percentile of commit times; ``wall`` counts from the process
    spawn to the last commit.
``latency`` p50/p95/p99 (ms)
    From the lead's produce (its LogAppendTime on the input topic) to the moment its
    output became visible to a ``read_committed`` consumer (the benchmark's own tailing
    consumer, ``fetch_max_wait_ms`` 10 ms): that is, to its transaction's commit, as the
    downstream sees it. Measured in a separate *paced* phase: fresh topics, processor
    started and warmed up (its first outputs seen), then leads produced at a steady rate
    (a fraction of the drain throughput just measured); a drain's latencies would only
    measure the backlog. The JSON also has ``latency_append``: to the output's own
    LogAppendTime, which for pipelines that send inside an open transaction (Faust, Quix)
    is *before* the commit, so it flatters them.
``peak RSS`` (MB)
    The kernel's RSS high-water mark of the processor process (``VmHWM``, sampled every
    0.2 s until it exits; not ``ru_maxrss``, which Linux inflates with the forking parent's
    RSS), in 10^6 bytes; the largest one when there are several processes.
``CPU s / 1k leads``
    CPU seconds (user + system) of the processor process(es), sampled every 0.2 s and
    interpolated over the throughput span, per 1,000 leads published in that span.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.kafka_io import Read

__all__ = [
    "DrainStats",
    "LatencyStats",
    "Row",
    "append_times",
    "drain_stats",
    "latency_stats",
    "percentile",
]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in [0, 1])."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, round(q * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(len(sorted_values), rank) - 1]


@dataclass
class DrainStats:
    published: int
    unique: int
    duplicates: int
    t_first: float
    t_last: float
    throughput: float
    throughput_steady: float
    #: Per input partition, outputs came out in input-offset order.
    order_ok: bool


def drain_stats(inputs: Iterable[Read], outputs: Sequence[Read]) -> DrainStats:
    ts = sorted(r.timestamp_ms for r in outputs)
    n = len(ts)
    keys = [r.key for r in outputs]
    unique = len(set(keys))
    t_first, t_last = ts[0] / 1000, ts[-1] / 1000
    span = max(t_last - t_first, 1e-3)
    lo, hi = int(0.05 * n), min(n - 1, int(0.95 * n))
    steady_span = max((ts[hi] - ts[lo]) / 1000, 1e-3)
    return DrainStats(
        published=n,
        unique=unique,
        duplicates=n - unique,
        t_first=t_first,
        t_last=t_last,
        throughput=n / span,
        throughput_steady=(hi - lo) / steady_span,
        order_ok=_in_order(inputs, outputs),
    )


def _in_order(inputs: Iterable[Read], outputs: Sequence[Read]) -> bool:
    where = {r.key: (r.partition, r.offset) for r in inputs}
    last: dict[tuple[int, int], int] = {}  # (output partition, input partition) -> offset
    for out in sorted(outputs, key=lambda r: (r.partition, r.offset)):
        origin = where.get(out.key)
        if origin is None:
            continue
        slot = (out.partition, origin[0])
        if last.get(slot, -1) >= origin[1]:
            return False
        last[slot] = origin[1]
    return True


@dataclass
class LatencyStats:
    leads: int
    rate_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


def latency_stats(
    inputs: Iterable[Read],
    out_ms: Mapping[bytes | None, float],
    *,
    prefix: bytes,
    rate_per_s: float,
) -> LatencyStats | None:
    """Latencies of the leads whose key starts with ``prefix`` (the paced ones): output
    time (``out_ms``, by key, epoch ms) minus the input's LogAppendTime."""
    produced = {r.key: r.timestamp_ms for r in inputs if r.key and r.key.startswith(prefix)}
    lat = sorted(float(ms - produced[key]) for key, ms in out_ms.items() if key in produced)
    if not lat:
        return None
    return LatencyStats(
        leads=len(lat),
        rate_per_s=rate_per_s,
        p50_ms=round(percentile(lat, 0.50), 1),
        p95_ms=round(percentile(lat, 0.95), 1),
        p99_ms=round(percentile(lat, 0.99), 1),
        max_ms=round(lat[-1], 1),
        mean_ms=round(statistics.fmean(lat), 1),
    )


def append_times(outputs: Iterable[Read]) -> dict[bytes | None, float]:
    """Output LogAppendTime by key (the first, if a key was published twice)."""
    out: dict[bytes | None, float] = {}
    for r in outputs:
        out.setdefault(r.key, float(r.timestamp_ms))
    return out


@dataclass
class Row:
    """One line of the results table (and one object of the JSON)."""

    scenario: str
    kind: str  # "pipeline" (Kafka in and out) or "http" (no Kafka)
    leads: int | None = None
    throughput: float | None = None
    throughput_steady: float | None = None
    throughput_wall: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    latency_leads: int | None = None
    latency_rate_per_s: float | None = None
    peak_rss_mb: float | None = None
    peak_rss_mb_sum: float | None = None
    cpu_s_per_1k: float | None = None
    cpu_s_total: float | None = None
    #: CPU use during the measured span, in % of one core.
    cpu_pct: dict[str, float] = field(default_factory=dict)
    processes: int = 1
    duplicates: int | None = None
    dlq: int | None = None
    order_ok: bool | None = None
    provider: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
