"""The benchmark's parameters: one frozen dataclass, built from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["ALL_SCENARIOS", "DEFAULT_SCENARIOS", "BenchConfig", "parse_args"]

ROOT = Path(__file__).resolve().parents[1]

#: Run by default, in this order (baselines first, so streamproc's ratios have them).
DEFAULT_SCENARIOS = (
    "http-ceiling",
    "kafka-ceiling",
    "sequential",
    "faust",
    "quix",
    "streamproc",
    "streamproc-batch",
    "streamproc-window256",
    "streamproc-scaleout",
)
#: Also selectable with --only: streamproc with credits_per_lead=0 (no budget claims:
#: isolates the cost of the claims round trip), and the soak.
ALL_SCENARIOS = (*DEFAULT_SCENARIOS, "streamproc-noclaim", "soak")


@dataclass(frozen=True)
class BenchConfig:
    bootstrap: str = "127.0.0.1:9092"
    leads: int = 20_000
    #: Leads for the one-at-a-time pipelines (sequential, Faust, Quix): at ~20 leads/s,
    #: 20,000 would take 17 minutes each. Their throughput is measured on this subset.
    baseline_leads: int = 500
    partitions: int = 6
    latency_ms: float = 50.0
    latency_jitter_ms: float = 0.0
    max_in_flight: int = 1000
    max_in_flight_per_partition: int | None = None
    commit_interval_ms: int = 200
    #: streamproc (and streamproc-noclaim) also run with this many processes in one group.
    processes: int = 2
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    http_transports: tuple[str, ...] = ("httpx", "httpx-aiohttp", "aiohttp")
    #: kafka-ceiling drives Kafka until the CPU or the broker is the limit: more leads than
    #: the others (a 20,000-lead drain at its speed is over within a few commit rounds)...
    kafka_ceiling_leads: int = 200_000
    #: ...and a window this large (0: every lead at once), so that neither its window nor
    #: its commit pacing is what bounds it.
    kafka_ceiling_in_flight: int = 0
    #: ``streamproc-window256``: streamproc again with this many leads in flight (the
    #: default per-partition window), to show whether CPU per lead grows with the window.
    small_window: int = 256
    #: ``streamproc-scaleout``: 1 and 2 processes where the window, not the CPU, is the
    #: limit: a slow provider (this latency, set on the mock for these rows only) and a
    #: small window (this many in flight per process), on this many leads.
    scaleout_latency_ms: float = 500.0
    scaleout_in_flight: int = 200
    scaleout_leads: int = 10_000
    #: The paced latency phase offers this fraction of the drain throughput...
    latency_load: float = 0.5
    #: ...for this long (0 disables the latency phase).
    latency_duration_s: float = 15.0
    soak_leads: int = 200_000
    soak_rate: float = 1000.0
    #: The soak's in-memory cache cap (STREAMPROC_CACHE_MAX_ENTRIES): every soak lead has a
    #: domain of its own, so the cache fills to its cap and then stays there; a cap reached
    #: early in the soak shows whether anything else grows.
    soak_cache_entries: int = 20_000
    #: A process exits once nothing was consumed for this long.
    idle_s: float = 4.0
    profile: str | None = None
    streamproc_path: Path | None = None
    peer_python: Path | None = None
    results_dir: Path = ROOT / "bench" / "results"
    keep_topics: bool = False
    quick: bool = False
    label: str = ""

    @property
    def per_partition(self) -> int | None:
        """streamproc's per-partition window: None keeps streamproc's own default."""
        return self.max_in_flight_per_partition

    @property
    def provider_p99_ms(self) -> float:
        """The mock's configured p99 (latency uniform in ``latency ± jitter``)."""
        return self.latency_ms + 0.98 * self.latency_jitter_ms


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput benchmark: streamproc against its baselines and peers. "
        "Uses the local broker (started if needed) and the mock provider.",
    )
    d = BenchConfig()
    p.add_argument("--bootstrap", default=d.bootstrap)
    p.add_argument("--leads", type=int, default=d.leads, help="leads per scenario")
    p.add_argument(
        "--baseline-leads",
        type=int,
        default=d.baseline_leads,
        help="leads for sequential, faust and quix (one lead at a time each)",
    )
    p.add_argument("--partitions", type=int, default=d.partitions)
    p.add_argument("--latency-ms", type=float, default=d.latency_ms, help="provider latency")
    p.add_argument("--latency-jitter-ms", type=float, default=d.latency_jitter_ms)
    p.add_argument("--in-flight", type=int, default=d.max_in_flight, help="max_in_flight")
    p.add_argument("--in-flight-per-partition", type=int, default=None)
    p.add_argument("--commit-interval-ms", type=int, default=d.commit_interval_ms)
    p.add_argument(
        "--processes",
        type=int,
        default=d.processes,
        help="also run streamproc with this many processes in one group (scale-out)",
    )
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated scenarios, of: {', '.join(ALL_SCENARIOS)}",
    )
    p.add_argument(
        "--transports",
        default=",".join(d.http_transports),
        help="http-ceiling clients: httpx, httpx-aiohttp, aiohttp",
    )
    p.add_argument("--kafka-ceiling-leads", type=int, default=d.kafka_ceiling_leads)
    p.add_argument(
        "--kafka-ceiling-in-flight",
        type=int,
        default=d.kafka_ceiling_in_flight,
        help="kafka-ceiling's window (0: unbounded, every lead at once)",
    )
    p.add_argument("--small-window", type=int, default=d.small_window)
    p.add_argument("--scaleout-latency-ms", type=float, default=d.scaleout_latency_ms)
    p.add_argument("--scaleout-in-flight", type=int, default=d.scaleout_in_flight)
    p.add_argument("--scaleout-leads", type=int, default=d.scaleout_leads)
    p.add_argument("--latency-load", type=float, default=d.latency_load)
    p.add_argument("--latency-duration-s", type=float, default=d.latency_duration_s)
    p.add_argument("--quick", action="store_true", help="small N: a smoke run (~2 min)")
    p.add_argument(
        "--soak",
        action="store_true",
        help="run the soak (streamproc at a sustained rate, RSS sampled) after the rest",
    )
    p.add_argument("--soak-leads", type=int, default=d.soak_leads)
    p.add_argument("--soak-rate", type=float, default=d.soak_rate, help="leads/s offered")
    p.add_argument(
        "--soak-cache-entries",
        type=int,
        default=d.soak_cache_entries,
        help="the soak processor's cache_max_entries (each soak lead has its own domain)",
    )
    p.add_argument("--idle-s", type=float, default=d.idle_s)
    p.add_argument(
        "--profile",
        choices=["py-spy", "cprofile", "callgrind"],
        default=None,
        help="after the measured runs, profile one streamproc drain run",
    )
    p.add_argument(
        "--streamproc-path",
        type=Path,
        default=None,
        help="directory put first on the processor's PYTHONPATH (measure a patched copy)",
    )
    p.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="interpreter for the Quix/Faust apps (default: this one, else "
        ".cache/bench-peers/bin/python)",
    )
    p.add_argument("--keep-topics", action="store_true")
    p.add_argument("--label", default="", help="free text stored with the results")
    a = p.parse_args(argv)
    scenarios: tuple[str, ...] = d.scenarios
    if a.only:
        scenarios = tuple(s.strip() for s in a.only.split(",") if s.strip())
        unknown = sorted(set(scenarios) - set(ALL_SCENARIOS))
        if unknown:
            p.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(ALL_SCENARIOS)}")
    if a.soak and "soak" not in scenarios:
        scenarios = (*scenarios, "soak")
    cfg = BenchConfig(
        bootstrap=a.bootstrap,
        leads=a.leads,
        baseline_leads=a.baseline_leads,
        partitions=a.partitions,
        latency_ms=a.latency_ms,
        latency_jitter_ms=a.latency_jitter_ms,
        max_in_flight=a.in_flight,
        max_in_flight_per_partition=a.in_flight_per_partition,
        commit_interval_ms=a.commit_interval_ms,
        processes=a.processes,
        scenarios=scenarios,
        http_transports=tuple(t.strip() for t in a.transports.split(",") if t.strip()),
        kafka_ceiling_leads=a.kafka_ceiling_leads,
        kafka_ceiling_in_flight=a.kafka_ceiling_in_flight,
        small_window=a.small_window,
        scaleout_latency_ms=a.scaleout_latency_ms,
        scaleout_in_flight=a.scaleout_in_flight,
        scaleout_leads=a.scaleout_leads,
        latency_load=a.latency_load,
        latency_duration_s=a.latency_duration_s,
        soak_leads=a.soak_leads,
        soak_rate=a.soak_rate,
        soak_cache_entries=a.soak_cache_entries,
        idle_s=a.idle_s,
        profile=a.profile,
        streamproc_path=a.streamproc_path,
        peer_python=a.peer_python,
        keep_topics=a.keep_topics,
        quick=a.quick,
        label=a.label,
    )
    if a.quick:
        cfg = replace(
            cfg,
            leads=min(cfg.leads, 2000),
            baseline_leads=min(cfg.baseline_leads, 100),
            latency_duration_s=min(cfg.latency_duration_s, 5.0),
            soak_leads=min(cfg.soak_leads, 10_000),
            kafka_ceiling_leads=min(cfg.kafka_ceiling_leads, 10_000),
            scaleout_leads=min(cfg.scaleout_leads, 2000),
        )
    return cfg
