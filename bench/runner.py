"""The scenarios: each sets up fresh topics, runs its pipeline as child processes, reads the
results back from Kafka and turns them into a :class:`~bench.metrics.Row`.

Every pipeline scenario has two phases:

* **drain**: ``N`` leads are produced *before* the pipeline starts; the pipeline consumes
  the backlog as fast as it can. Throughput, CPU and peak RSS come from this phase.
* **paced** (latency): fresh topics; the pipeline is started and warmed up (its first
  outputs seen), then leads are produced at a steady rate, ``latency_load`` x the
  drain throughput, for ``latency_duration_s``. Latency percentiles come from this phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import kafka_io
from bench.config import ROOT, BenchConfig
from bench.kafka_io import LOG_APPEND_TIME, STATE_TOPIC_CONFIG, Broker, Read
from bench.metrics import LatencyStats, Row, append_times, drain_stats, latency_stats
from bench.procs import Child, Monitor, spawn
from bench.profiling import (
    summarize_callgrind,
    summarize_cprofile,
    summarize_py_spy,
    wrap_argv,
)

__all__ = ["Bench", "Topics"]

#: Leads produced before the paced phase, to know the pipeline is up (not measured).
WARMUP_LEADS = 50
MB = 1_000_000
#: The http-ceiling clients stop starting calls after this long (httpx's default transport
#: does ~60 calls/s at 1,000 concurrency here: 20,000 calls would take 6 minutes).
HTTP_MAX_S = 45.0


@dataclass(frozen=True)
class Topics:
    raw: str
    out: str
    dlq: str
    parked: str
    state: str
    group: str

    def all(self) -> list[str]:
        return [self.raw, self.out, self.dlq, self.parked, self.state]


@dataclass
class _Pipeline:
    """How to run one pipeline: its command and its environment for given topics."""

    name: str
    argv: list[str]
    env: Callable[[Topics, int], dict[str, str]]
    processes: int = 1
    #: Whether it needs streamproc's DLQ, parked and state topics.
    streamproc_topics: bool = False
    #: Rough floor of its speed (leads/s), to bound how long the benchmark waits for it.
    min_rate: float = 5.0


@dataclass
class _Offered:
    """What a paced run left: its processes, when pacing began (epoch s), the latencies,
    and everything read back from the input and output topics."""

    children: list[Child]
    began: float
    latency: LatencyStats
    inputs: list[Read]
    outputs: list[Read]


class Bench:
    """One benchmark run: the broker, the mock provider, and the scenarios in order."""

    def __init__(self, cfg: BenchConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        self.run_id = uuid.uuid4().hex[:6]
        self.started = datetime.now(UTC)
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        self.stamp = stamp
        self.work = cfg.results_dir / f"{stamp}-{self.run_id}"
        self.broker = Broker(cfg.bootstrap)
        self.mock: Child | None = None
        self.provider_url = ""
        self._provider_base = ""
        self.rows: list[Row] = []
        self.profile: dict[str, Any] | None = None
        self._created: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Bench:
        self.work.mkdir(parents=True, exist_ok=True)
        self.broker.ensure()
        await self._start_mock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.mock is not None:
            await self.mock.stop()
        if not self.cfg.keep_topics and self._created:
            await kafka_io.delete_topics(self.cfg.bootstrap, self._created)
        self.broker.release()

    async def _start_mock(self) -> None:
        env = self._child_env(
            {
                "BENCH_LATENCY_MS": str(self.cfg.latency_ms),
                "BENCH_LATENCY_JITTER_MS": str(self.cfg.latency_jitter_ms),
            }
        )
        argv = [sys.executable, "-m", "bench.apps.mock_provider"]
        self.mock = spawn("mock-provider", argv, env=env, cwd=self.work, log_dir=self.work)
        deadline = time.monotonic() + 30
        while not (report := self.mock.report()):
            if self.mock.reap() or time.monotonic() > deadline:
                raise RuntimeError(f"mock provider did not start:\n{self.mock.stderr_tail()}")
            await asyncio.sleep(0.1)
        self.provider_url = report["url"]
        self._provider_base = report["base_url"]

    async def run(self) -> list[Row]:
        order = list(self.cfg.scenarios)
        for name in order:
            self.log(f"[bench] scenario {name}")
            began = time.monotonic()
            if name == "http-ceiling":
                for transport in self.cfg.http_transports:
                    self.rows.append(await self.http_ceiling(transport))
            elif name == "soak":
                self.rows.append(await self.soak())
            elif name == "streamproc-scaleout":
                self.rows += await self.scaleout()
            else:
                self.rows.append(await self.pipeline(self._pipeline(name, 1)))
                if name in ("streamproc", "streamproc-noclaim") and self.cfg.processes > 1:
                    self.rows.append(await self.pipeline(self._pipeline(name, self.cfg.processes)))
            self.log(f"[bench] {name} done in {time.monotonic() - began:.0f}s")
        if self.cfg.profile:
            self.log(f"[bench] profiling a streamproc drain with {self.cfg.profile}")
            self.profile = await self.profile_streamproc(self.cfg.profile)
        return self.rows

    # --- environment ----------------------------------------------------------------------

    def _child_env(
        self, extra: Mapping[str, str], *, streamproc_path: bool = False
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMPROC_", "BENCH_"))}
        paths = [str(ROOT)]
        if streamproc_path and self.cfg.streamproc_path is not None:
            paths.insert(0, str(self.cfg.streamproc_path.resolve()))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def _app_env(self, t: Topics, expected: int) -> dict[str, str]:
        return self._child_env(
            {
                "BENCH_BOOTSTRAP": self.cfg.bootstrap,
                "BENCH_TOPIC_IN": t.raw,
                "BENCH_TOPIC_OUT": t.out,
                "BENCH_GROUP": t.group,
                "BENCH_PROVIDER_URL": self.provider_url,
                "BENCH_EXPECTED": str(expected),
                "BENCH_IDLE_S": str(max(self.cfg.idle_s, 10.0)),
                "BENCH_COMMIT_INTERVAL_MS": str(self.cfg.commit_interval_ms),
                "BENCH_MAX_IN_FLIGHT": str(self.cfg.max_in_flight),
            }
        )

    def _batch_env(self, t: Topics) -> dict[str, str]:
        """streamproc with the declarative provider on the mock's bulk endpoint
        (examples/providers/mock_bulk.toml): batches of 10, the same mock, the same latency
        per request as the single-call row."""
        table = tomllib.loads((ROOT / "examples" / "providers" / "mock_bulk.toml").read_text())
        settings = table["streamproc"]
        env = self._streamproc_env(t)
        env.update(
            {
                "STREAMPROC_PROVIDER": settings["provider"],
                "STREAMPROC_PROVIDER_BATCH_SIZE": str(settings["provider_batch_size"]),
                "STREAMPROC_PROVIDER_DECLARATIVE": json.dumps(settings["provider_declarative"]),
                "MOCK_PROVIDER_URL": self._provider_base,
            }
        )
        return env

    def _streamproc_env(
        self, t: Topics, credits_per_lead: int | None = None, in_flight: int | None = None
    ) -> dict[str, str]:
        cfg = self.cfg
        env = {
            "STREAMPROC_BOOTSTRAP_SERVERS": cfg.bootstrap,
            "STREAMPROC_GROUP_ID": t.group,
            "STREAMPROC_TOPIC_RAW": t.raw,
            "STREAMPROC_TOPIC_ENRICHED": t.out,
            "STREAMPROC_TOPIC_DLQ": t.dlq,
            "STREAMPROC_TOPIC_PARKED": t.parked,
            "STREAMPROC_TOPIC_STATE": t.state,
            "STREAMPROC_TOPIC_PARTITIONS": str(cfg.partitions),
            # The leads are produced before the pipeline starts.
            "STREAMPROC_START_OFFSET": "earliest",
            "STREAMPROC_PROVIDER_URL": self.provider_url,
            "STREAMPROC_MAX_IN_FLIGHT": str(in_flight or cfg.max_in_flight),
            "STREAMPROC_COMMIT_INTERVAL_MS": str(cfg.commit_interval_ms),
            # Never the limit being measured: a budget and a breaker that cannot trip.
            "STREAMPROC_BUDGET_DAILY_CREDITS": str(10**15),
            "STREAMPROC_BREAKER_FAILURE_THRESHOLD": "10000",
            "STREAMPROC_HTTP_PORT": "0",
            "STREAMPROC_LOG_FORMAT": "json",
        }
        if cfg.per_partition is not None:
            env["STREAMPROC_MAX_IN_FLIGHT_PER_PARTITION"] = str(cfg.per_partition)
        if credits_per_lead is not None:
            env["STREAMPROC_CREDITS_PER_LEAD"] = str(credits_per_lead)
        return self._child_env(env, streamproc_path=True)

    def _peer_python(self, module: str) -> str | None:
        candidates = [
            self.cfg.peer_python,
            Path(sys.executable),
            ROOT / ".cache" / "bench-peers" / "bin" / "python",
        ]
        for python in candidates:
            if python is None or not Path(python).exists():
                continue
            probe = subprocess.run(
                [str(python), "-c", f"import {module}, httpx, orjson"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return str(python)
        return None

    def _pipeline(self, name: str, processes: int) -> _Pipeline:
        py = sys.executable
        idle = ["--stop-when-idle-s", str(self.cfg.idle_s)]
        if name == "streamproc":
            label = name if processes == 1 else f"streamproc-x{processes}"
            return _Pipeline(
                label,
                [py, "-m", "streamproc", "run", *idle],
                lambda t, _: self._streamproc_env(t),
                processes=processes,
                streamproc_topics=True,
                min_rate=50.0,
            )
        if name == "streamproc-batch":
            return _Pipeline(
                name if processes == 1 else f"{name}-x{processes}",
                [py, "-m", "streamproc", "run", *idle],
                lambda t, _: self._batch_env(t),
                processes=processes,
                streamproc_topics=True,
                min_rate=50.0,
            )
        if name == "streamproc-noclaim":
            return _Pipeline(
                name if processes == 1 else f"{name}-x{processes}",
                [py, "-m", "streamproc", "run", *idle],
                lambda t, _: self._streamproc_env(t, credits_per_lead=0),
                processes=processes,
                streamproc_topics=True,
                min_rate=50.0,
            )
        if name == "streamproc-window256":
            # The same pipeline with a smaller window: CPU per lead should not depend on it.
            window = self.cfg.small_window
            return _Pipeline(
                f"streamproc-if{window}",
                [py, "-m", "streamproc", "run", *idle],
                lambda t, _: self._streamproc_env(t, in_flight=window),
                processes=processes,
                streamproc_topics=True,
                min_rate=50.0,
            )
        if name == "kafka-ceiling":
            argv = [py, "-m", "bench.apps.kafka_ceiling"]
            window = self.cfg.kafka_ceiling_in_flight or self.cfg.kafka_ceiling_leads

            def ceiling_env(t: Topics, expected: int) -> dict[str, str]:
                return {**self._app_env(t, expected), "BENCH_MAX_IN_FLIGHT": str(window)}

            return _Pipeline(name, argv, ceiling_env, min_rate=500.0)
        if name == "sequential":
            return _Pipeline(name, [py, "-m", "bench.apps.sequential"], self._app_env)
        if name == "faust":
            fpy = self._peer_python("faust") or ""
            return _Pipeline(name, [fpy, "-m", "bench.apps.faust_app", "worker"], self._app_env)
        if name == "quix":
            qpy = self._peer_python("quixstreams") or ""
            return _Pipeline(name, [qpy, "-m", "bench.apps.quix_app"], self._app_env)
        raise ValueError(f"unknown scenario {name}")

    # --- topics ----------------------------------------------------------------------------

    async def _topics(self, scenario: str, phase: str, *, streamproc: bool) -> Topics:
        base = f"bench-{self.run_id}-{scenario}-{phase}"
        t = Topics(
            raw=f"{base}.leads.raw",
            out=f"{base}.leads.enriched",
            dlq=f"{base}.leads.dlq",
            parked=f"{base}.leads.parked",
            state=f"{base}.state",
            group=f"{base}.group",
        )
        n = self.cfg.partitions
        specs: dict[str, tuple[int, dict[str, str]]] = {
            t.raw: (n, LOG_APPEND_TIME),
            t.out: (n, LOG_APPEND_TIME),
        }
        if streamproc:
            specs[t.dlq] = (n, LOG_APPEND_TIME)
            specs[t.parked] = (n, {})
            specs[t.state] = (n, STATE_TOPIC_CONFIG)
        await kafka_io.create_topics(self.cfg.bootstrap, specs)
        self._created += list(specs)
        return t

    async def _drop(self, t: Topics) -> None:
        if self.cfg.keep_topics:
            return
        names = [n for n in t.all() if n in self._created]
        await kafka_io.delete_topics(self.cfg.bootstrap, names)
        self._created = [n for n in self._created if n not in names]

    # --- the mock provider ----------------------------------------------------------------

    async def _provider(self, action: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            if action == "reset":
                response = await http.post(f"{self._provider_base}/admin/reset")
            else:
                response = await http.get(f"{self._provider_base}/stats")
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    async def _provider_config(self, changes: Mapping[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{self._provider_base}/admin/config", json=changes)
            response.raise_for_status()

    def _watch_common(self, monitor: Monitor) -> None:
        assert self.mock is not None
        monitor.watch("mock", self.mock.pid)
        monitor.watch("broker", self.broker.pid())

    # --- scenarios ------------------------------------------------------------------------

    async def http_ceiling(self, transport: str) -> Row:
        cfg = self.cfg
        row = Row(scenario=f"http-ceiling[{transport}]", kind="http")
        module = {"httpx": "httpx", "httpx-aiohttp": "httpx_aiohttp", "aiohttp": "aiohttp"}.get(
            transport
        )
        if module is None or not self._importable(sys.executable, module):
            row.skipped = f"{transport}: not installed (pip install {transport})"
            return row
        await self._provider("reset")
        env = self._child_env(
            {
                "BENCH_PROVIDER_URL": self.provider_url,
                "BENCH_COUNT": str(cfg.leads),
                "BENCH_CONCURRENCY": str(cfg.max_in_flight),
                "BENCH_TRANSPORT": transport,
                "BENCH_MAX_S": str(HTTP_MAX_S),
                "BENCH_RUN": f"{self.run_id}{transport}",
            }
        )
        monitor = Monitor()
        self._watch_common(monitor)
        child = spawn(
            f"http-ceiling-{transport}",
            [sys.executable, "-m", "bench.apps.http_ceiling"],
            env=env,
            cwd=self.work,
            log_dir=self.work,
        )
        monitor.watch("client", child.pid)
        monitor.start()
        finished = await child.wait(cfg.leads / 50 + 120)
        await monitor.stop()
        if not finished:
            await child.stop()
        rep = child.report()
        if child.returncode != 0 or not rep:
            row.skipped = f"failed (exit {child.returncode}): {child.stderr_tail(5)}"
            return row
        calls, wall = int(rep["calls"]), float(rep["wall_s"])
        row.leads = calls
        row.throughput = calls / wall
        row.throughput_wall = calls / max(1e-3, time.time() - child.started_at)
        row.p50_ms, row.p95_ms, row.p99_ms = rep["p50_ms"], rep["p95_ms"], rep["p99_ms"]
        row.latency_leads = calls
        row.peak_rss_mb = (monitor.peak_rss("client") or 0) / MB
        row.cpu_s_per_1k = float(rep["cpu_s"]) / calls * 1000
        row.cpu_s_total = child.cpu_s
        t0, t1 = float(rep["t0"]), float(rep["t1"])
        row.cpu_pct = self._cpu_pct(monitor, {"client": ["client"]}, t0, t1)
        row.provider = await self._provider("stats")
        row.notes.append("latency = HTTP call at full load, no Kafka")
        if calls < cfg.leads:
            row.notes.append(f"stopped after {HTTP_MAX_S:g} s: {calls} of {cfg.leads} calls")
        if rep.get("errors"):
            row.notes.append(f"{rep['errors']} non-200 answers")
        return row

    @staticmethod
    def _importable(python: str, module: str) -> bool:
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
        return probe.returncode == 0

    def _cpu_pct(
        self, monitor: Monitor, groups: Mapping[str, list[str]], t0: float, t1: float
    ) -> dict[str, float]:
        span = max(t1 - t0, 1e-3)
        out: dict[str, float] = {}
        for name, labels in {**groups, "mock": ["mock"], "broker": ["broker"]}.items():
            used = [monitor.cpu_between(label, t0, t1) for label in labels]
            if used and all(u is not None for u in used):
                out[name] = round(100 * sum(u for u in used if u is not None) / span, 1)
        return out

    async def pipeline(self, p: _Pipeline, *, leads: int | None = None, paced: bool = True) -> Row:
        row = Row(scenario=p.name, kind="pipeline", processes=p.processes)
        if not p.argv[0]:
            module = "faust" if p.name == "faust" else "quixstreams"
            pkg = "faust-streaming" if p.name == "faust" else "quixstreams"
            row.skipped = f"{module} not importable: pip install {pkg} (or --peer-python)"
            return row
        one_at_a_time = p.name in ("sequential", "faust", "quix")
        n = leads or (self.cfg.baseline_leads if one_at_a_time else self.cfg.leads)
        if one_at_a_time:
            row.notes.append(f"throughput measured on {n} leads, not {self.cfg.leads}")
        if p.name == "kafka-ceiling":
            # Its throughput and CPU are what it is for; its latency at half of a ceiling's
            # rate would need 100,000s of paced leads and measure nothing streamproc needs.
            n, paced = self.cfg.kafka_ceiling_leads, False
        await self._drain(p, n, row)
        if p.name == "kafka-ceiling" and row.skipped is None:
            _ceiling_limit(row)
        if paced and row.skipped is None and row.throughput and self.cfg.latency_duration_s > 0:
            await self._paced(p, row, rate=row.throughput * self.cfg.latency_load)
        return row

    async def scaleout(self) -> list[Row]:
        """streamproc with 1 and with 2 processes where the window, not the CPU, is the
        limit: a slow provider (``scaleout_latency_ms``, set on the mock for these two rows)
        and a small window (``scaleout_in_flight`` per process). Drain only."""
        cfg = self.cfg
        window = cfg.scaleout_in_flight
        rows: list[Row] = []
        await self._provider_config({"latency_ms": cfg.scaleout_latency_ms})
        try:
            for processes in (1, 2):
                name = "streamproc-slow" if processes == 1 else f"streamproc-slow-x{processes}"
                p = _Pipeline(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "streamproc",
                        "run",
                        "--stop-when-idle-s",
                        str(cfg.idle_s),
                    ],
                    lambda t, _: self._streamproc_env(t, in_flight=window),
                    processes=processes,
                    streamproc_topics=True,
                    min_rate=20.0,
                )
                row = await self.pipeline(p, leads=cfg.scaleout_leads, paced=False)
                row.notes.append(
                    f"provider latency {cfg.scaleout_latency_ms:g} ms, {window} in flight "
                    "per process"
                )
                rows.append(row)
        finally:
            await self._provider_config({"latency_ms": cfg.latency_ms})
        return rows

    async def _spawn_all(
        self, p: _Pipeline, t: Topics, expected: int, phase: str, monitor: Monitor
    ) -> list[Child]:
        children = []
        for i in range(p.processes):
            child = spawn(
                f"{p.name}-{phase}-{i}",
                p.argv,
                env=p.env(t, expected),
                cwd=self.work,
                log_dir=self.work,
            )
            monitor.watch(f"proc{i}", child.pid)
            children.append(child)
        return children

    async def _wait_all(self, children: list[Child], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        ok = True
        for child in children:
            if not await child.wait(max(0.0, deadline - time.monotonic())):
                ok = False
                await child.stop()
        return ok

    def _failure(self, children: list[Child]) -> str | None:
        for child in children:
            if child.returncode not in (0, None):
                return f"{child.name} exited {child.returncode}: {child.stderr_tail(6)}"
        return None

    async def _drain(self, p: _Pipeline, n: int, row: Row) -> None:
        cfg = self.cfg
        t = await self._topics(p.name, "drain", streamproc=p.streamproc_topics)
        try:
            run = f"{self.run_id}-{p.name}-d"
            await kafka_io.produce_bulk(cfg.bootstrap, t.raw, kafka_io.lead_records(n, run))
            await self._provider("reset")
            monitor = Monitor()
            self._watch_common(monitor)
            children = await self._spawn_all(p, t, n, "drain", monitor)
            monitor.start()
            finished = await self._wait_all(children, n / p.min_rate + 120)
            await monitor.stop()
            if not finished:
                row.notes.append("timed out: stopped with SIGTERM")
            failure = self._failure(children)
            outputs = await kafka_io.read_topic(cfg.bootstrap, t.out)
            inputs = await kafka_io.read_topic(cfg.bootstrap, t.raw)
            dlq: list[Read] = []
            if p.streamproc_topics:
                dlq = await kafka_io.read_topic(cfg.bootstrap, t.dlq)
            row.provider = await self._provider("stats")
            if not outputs:
                row.skipped = failure or "no output"
                return
            if failure:
                row.notes.append(failure)
            self._fill_drain(row, p, n, inputs, outputs, dlq, children, monitor)
        finally:
            await self._drop(t)

    def _fill_drain(
        self,
        row: Row,
        p: _Pipeline,
        n: int,
        inputs: list[Read],
        outputs: list[Read],
        dlq: list[Read],
        children: list[Child],
        monitor: Monitor,
    ) -> None:
        st = drain_stats(inputs, outputs)
        row.leads = st.unique
        row.duplicates = st.duplicates
        row.dlq = len(dlq)
        row.order_ok = st.order_ok
        row.throughput = st.throughput
        row.throughput_steady = st.throughput_steady
        spawned = min(c.started_at for c in children)
        row.throughput_wall = st.unique / max(1e-3, st.t_last - spawned)
        if st.unique != n:
            row.notes.append(f"published {st.unique} of {n} leads")
        labels = [f"proc{i}" for i in range(len(children))]
        cpu = [monitor.cpu_between(label, st.t_first, st.t_last) for label in labels]
        if all(c is not None for c in cpu):
            row.cpu_s_per_1k = sum(c for c in cpu if c is not None) / st.published * 1000
        row.cpu_pct = self._cpu_pct(monitor, {"proc": labels}, st.t_first, st.t_last)
        rss = [monitor.peak_rss(label) for label in labels]
        rss = [r for r in rss if r]
        if rss:
            row.peak_rss_mb = max(rss) / MB
            row.peak_rss_mb_sum = sum(rss) / MB
        row.cpu_s_total = sum(c.cpu_s or 0.0 for c in children)
        reports = [c.report() for c in children]
        if any(reports):
            row.extra["child"] = reports if len(reports) > 1 else reports[0]

    async def _paced(self, p: _Pipeline, row: Row, rate: float) -> None:
        count = max(100, math.ceil(rate * self.cfg.latency_duration_s))
        t = await self._topics(p.name, "lat", streamproc=p.streamproc_topics)
        try:
            monitor = Monitor(interval_s=1.0)
            run = await self._offer(p, t, row, count, rate, monitor, phase="lat")
            if run is not None and run.latency.leads != count:
                row.notes.append(f"latency phase: {run.latency.leads} of {count} paced leads seen")
        finally:
            await self._drop(t)

    async def _offer(
        self,
        p: _Pipeline,
        t: Topics,
        row: Row,
        count: int,
        rate: float,
        monitor: Monitor,
        *,
        phase: str,
    ) -> _Offered | None:
        """Start ``p``, warm it up, offer ``count`` leads at ``rate`` and fill the latency
        columns of ``row``; None (with a note in ``row``) if it produced nothing."""
        cfg = self.cfg
        self._watch_common(monitor)
        tail = kafka_io.Tail(cfg.bootstrap, t.out)
        await tail.start()
        children: list[Child] = []
        try:
            children = await self._spawn_all(p, t, WARMUP_LEADS + count, phase, monitor)
            monitor.start()
            warm = f"{self.run_id}-{p.name}-{phase}-w"
            await kafka_io.produce_bulk(
                cfg.bootstrap, t.raw, kafka_io.lead_records(WARMUP_LEADS, warm)
            )
            if not await tail.wait_count(WARMUP_LEADS, timeout_s=120):
                row.notes.append(f"{phase}: no warm-up output within 120 s")
                return None
            if p.processes > 1:
                await asyncio.sleep(3)  # let the group settle before measuring
            run = f"{self.run_id}-{p.name}-{phase}-p"
            began = time.time()
            sent, took = await kafka_io.produce_paced(
                cfg.bootstrap, t.raw, kafka_io.lead_records(count, run), rate
            )
            await tail.wait_count(WARMUP_LEADS + count, timeout_s=count / p.min_rate + 60)
            await self._wait_all(children, 120)
            await monitor.stop()
            await tail.stop()
            inputs = await kafka_io.read_topic(cfg.bootstrap, t.raw)
            outputs = await kafka_io.read_topic(cfg.bootstrap, t.out)
            prefix = f"{run}-".encode()
            lat = latency_stats(inputs, tail.seen_ms, prefix=prefix, rate_per_s=sent / took)
            appended = latency_stats(
                inputs, append_times(outputs), prefix=prefix, rate_per_s=sent / took
            )
            if lat is None:
                row.notes.append(f"{phase}: no paced output")
                return None
            row.p50_ms, row.p95_ms, row.p99_ms = lat.p50_ms, lat.p95_ms, lat.p99_ms
            row.latency_leads = lat.leads
            row.latency_rate_per_s = round(lat.rate_per_s, 1)
            row.extra["latency"] = {"max_ms": lat.max_ms, "mean_ms": lat.mean_ms}
            if appended is not None:
                row.extra["latency_append"] = asdict(appended)
            return _Offered(children, began, lat, inputs, outputs)
        finally:
            await tail.stop()
            await monitor.stop()
            for child in children:
                await child.stop()

    async def soak(self) -> Row:
        """streamproc at a sustained rate for ``soak_leads``: RSS every 2 s, latency too."""
        cfg = self.cfg
        p = self._pipeline("streamproc", 1)
        streamproc_env = p.env
        cache_cap = {"STREAMPROC_CACHE_MAX_ENTRIES": str(cfg.soak_cache_entries)}
        p.env = lambda t, n: {**streamproc_env(t, n), **cache_cap}
        row = Row(scenario="soak", kind="pipeline")
        t = await self._topics("soak", "soak", streamproc=True)
        monitor = Monitor(interval_s=2.0)
        try:
            await self._provider("reset")
            run = await self._offer(p, t, row, cfg.soak_leads, cfg.soak_rate, monitor, phase="soak")
            if run is None:
                row.skipped = "; ".join(row.notes) or "failed"
                return row
            began, lat = run.began, run.latency
            dlq = await kafka_io.read_topic(cfg.bootstrap, t.dlq)
            row.provider = await self._provider("stats")
            prefix = f"{self.run_id}-{p.name}-soak-p-".encode()
            paced = [r for r in run.outputs if r.key and r.key.startswith(prefix)]
            self._fill_drain(row, p, cfg.soak_leads, run.inputs, paced, dlq, run.children, monitor)
            series = monitor.series.get("proc0", [])
            row.extra["rss_series_mb"] = [
                (round(s.t - began, 1), round(s.rss / MB, 1)) for s in series
            ]
            took = cfg.soak_leads / max(lat.rate_per_s, 1e-9)
            row.extra["rss_trend"] = _rss_trend(
                [(s.t - began, s.rss / MB) for s in series if s.t >= began], took
            )
            row.notes.append(
                f"offered {lat.rate_per_s:.0f} leads/s for {took:.0f} s; "
                f"cache_max_entries={cfg.soak_cache_entries}"
            )
            return row
        finally:
            await self._drop(t)

    async def profile_streamproc(self, kind: str) -> dict[str, Any]:
        """One more streamproc drain, under a profiler; returns the summary."""
        cfg = self.cfg
        p = self._pipeline("streamproc", 1)
        name = {"py-spy": "streamproc.pyspy.txt", "callgrind": "streamproc.callgrind"}
        out = self.work / name.get(kind, "streamproc.prof")
        p.argv = wrap_argv(kind, p.argv, out)
        if kind == "callgrind":
            # ~50x slower: a drain's deadline must allow for it.
            p.min_rate = 2.0
        row = Row(scenario=f"streamproc[{kind}]", kind="pipeline")
        await self._drain(p, cfg.leads, row)
        # The measured process was the profiler (the parent): its CPU and memory are not
        # the processor's, and sampling slows the processor down anyway.
        row.cpu_s_per_1k = row.cpu_s_total = row.peak_rss_mb = row.peak_rss_mb_sum = None
        row.cpu_pct = {}
        row.notes.append("under the profiler: throughput only indicative")
        summary: dict[str, Any] = {"kind": kind, "file": str(out), "row": row.to_json()}
        with contextlib.suppress(OSError):
            if kind == "py-spy":
                summary.update(summarize_py_spy(out))
            elif kind == "callgrind":
                summary.update(summarize_callgrind(out))
            else:
                summary.update(summarize_cprofile(out))
        return summary


#: A process at or above this share of one core is CPU-bound (what sampling leaves of 100).
CPU_BOUND_PCT = 85.0


def _ceiling_limit(row: Row) -> None:
    """Say what bounded kafka-ceiling: its own CPU (a core: the process is single-threaded),
    the machine's CPU, or else the broker (its round trips: the CPU is left idle)."""
    proc = row.cpu_pct.get("proc", 0.0)
    total = proc + row.cpu_pct.get("mock", 0.0) + row.cpu_pct.get("broker", 0.0)
    cores = os.cpu_count() or 1
    if proc >= CPU_BOUND_PCT:
        limit = f"CPU: the process at {proc:.0f} % of a core"
    elif total >= CPU_BOUND_PCT * cores:
        limit = f"CPU: the machine at {total:.0f} % of {cores} cores"
    else:
        limit = (
            f"broker: the process at {proc:.0f} % of a core, the broker at "
            f"{row.cpu_pct.get('broker', 0.0):.0f} %"
        )
    row.extra["limit"] = limit
    row.notes.append(f"limit: {limit}")


def _rss_trend(points: list[tuple[float, float]], span_s: float) -> dict[str, Any]:
    """RSS at quarters of the paced span and the growth from the first quarter to the end."""
    if len(points) < 4:
        return {}

    def near(t: float) -> float:
        return min(points, key=lambda p: abs(p[0] - t))[1]

    q = {f"{int(f * 100)}%": round(near(f * span_s), 1) for f in (0.25, 0.5, 0.75, 1.0)}
    start, end = near(0.25 * span_s), near(span_s)
    return {"rss_mb_at": q, "growth_after_first_quarter_pct": round(100 * (end - start) / start, 1)}
