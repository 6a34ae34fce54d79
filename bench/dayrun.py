"""``python -m bench.day --e2e [--minutes M] [--instances N] [--bootstrap HOST:PORT]``.

The simulator's base day (bench/daysim.py) end to end: a real broker, ``streamproc
mock-provider`` over HTTP, ``streamproc run`` process(es) with pacing and a score, and a
producer writing the day's leads into a fresh ``leads.raw``-like topic at their times, all
on one scaled clock (``bench_clock``): a budget day of 24 h passes in ``--minutes`` of wall
time. Then the same metrics as the simulator's, from what the run published, beside the
simulator's rows for the same seed and day.

Why 20 minutes (rate 72) by default: a 60 s controller step is then 0.83 wall seconds,
four times the commit interval (200 ms) and well above the state topic's round trip, so
the controller sees its own spend before its next step; a 20 ms provider call is 1.4 s of
the day; the morning peak (about 4.5 leads a wall second) is far below one process's
throughput on 2 loaded cores. At 5 minutes (rate 288) a step would be 0.2 s, the commit
interval itself, and a deferred lead's round trip through its topic (~0.3 s) 1.5 minutes
of the day.

What differs from the simulator, on purpose: every lead costs the same 6 credits (the
service reserves ``credits_per_lead`` before the call, it cannot rank by a price it does
not know), so the simulator is run with ``credits_min = credits_max = 6`` for the
comparison. The history the plan is learnt from is the simulator's, written into the raw
topic's past days (learnt hourly by the service, per quarter-hour by the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import kafka_io
from bench.config import ROOT
from bench.daysim import (
    BUCKETS,
    MINUTES,
    DayConfig,
    Outcome,
    Row,
    Scenario,
    _worth,
    measure,
    run,
    run_oracle,
    scenario,
)
from bench.kafka_io import STATE_TOPIC_CONFIG
from bench.procs import Child, spawn
from streamproc.resilience.pacing_step import SharedStep
from streamproc.timestamps import Clock

__all__ = ["E2EConfig", "run_e2e"]

DAY_S = 86_400.0
#: Score bands of the deferral topics: lognormal(0, 1) scores, so about a fifth of the
#: leads in each band (the top band, 6 and up, is the best 4 %).
BAND_EDGES = (0.7, 1.5, 3.0, 6.0)
CREDITS = 6


@dataclass(frozen=True, slots=True)
class E2EConfig:
    bootstrap: str = "127.0.0.1:9092"
    seed: int = 1
    #: Wall minutes a budget day lasts.
    minutes: float = 20.0
    instances: int = 1
    partitions: int = 3
    #: Wall seconds before the day starts: the processes start and join the group.
    lead_in_s: float = 45.0
    latency_ms: float = 20.0
    band_edges: tuple[float, ...] = BAND_EDGES
    #: ``deferral_window`` of the run: deferred leads held in memory per deferral partition.
    deferral_window: int = 8
    work: Path = field(default_factory=lambda: ROOT / "bench" / "results" / "day-e2e")
    keep_topics: bool = False

    @property
    def rate(self) -> float:
        return DAY_S / (self.minutes * 60.0)

    def __post_init__(self) -> None:
        if self.work == ROOT / "bench" / "results" / "day-e2e":
            # Each run's logs apart: two runs may go at once.
            object.__setattr__(self, "work", self.work / f"{self.minutes:g}min-{os.getpid()}")

    def day(self) -> DayConfig:
        return DayConfig(seed=self.seed, credits_min=CREDITS, credits_max=CREDITS)


@dataclass(frozen=True, slots=True)
class Topics:
    raw: str
    out: str
    dlq: str
    parked: str
    state: str
    deferred: str
    group: str
    edges: tuple[float, ...] = BAND_EDGES

    @classmethod
    def fresh(cls, edges: tuple[float, ...] = BAND_EDGES) -> Topics:
        run = f"day-{uuid.uuid4().hex[:8]}"
        return cls(
            f"{run}.raw",
            f"{run}.enriched",
            f"{run}.dlq",
            f"{run}.parked",
            f"{run}.state",
            f"{run}.deferred",
            f"{run}-group",
            edges,
        )

    def bands(self) -> list[str]:
        return [f"{self.deferred}.b{b}" for b in range(len(self.edges) + 1)]

    def all(self) -> list[str]:
        return [self.raw, self.out, self.dlq, self.parked, self.state, *self.bands()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _lead_value(key: str, score: float) -> bytes:
    domain = f"{key}.day.example"
    return orjson.dumps(
        {
            "lead_id": key,
            "email": f"ada@{domain}",
            "domain": domain,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": f"Company {key}",
            "score": score,
        }
    )


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMPROC_", "BENCH_"))}
    paths = [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class DayRun:
    """One end-to-end day: topics, history, provider, processes, producer, read-back."""

    def __init__(self, cfg: E2EConfig) -> None:
        self.cfg = cfg
        self.day_cfg = cfg.day()
        self.s: Scenario = scenario("base", self.day_cfg)
        self.t = Topics.fresh(cfg.band_edges)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        # Two days back: every timestamp of the run is in the broker's past (a broker
        # may refuse records from its future), and a day of leads is well within reach.
        self.midnight = today - timedelta(days=2)
        self.origin_s = self.midnight.timestamp()
        self.children: list[Child] = []
        self.http_ports: list[int] = []
        self.provider_base = ""
        self.wall_origin_s = 0.0
        self.clock = Clock()
        #: Wall seconds each lead was sent late (the producer's own lag).
        self.send_late_s: list[float] = []

    # --- setup ----------------------------------------------------------------------------

    async def topics(self) -> None:
        n = self.cfg.partitions
        specs: dict[str, tuple[int, dict[str, str]]] = {
            # The history is weeks old: never deleted under the run.
            self.t.raw: (n, {"retention.ms": "-1"}),
            self.t.out: (n, {}),
            self.t.dlq: (n, {}),
            self.t.parked: (n, {}),
            self.t.state: (1, STATE_TOPIC_CONFIG),
        }
        for band in self.t.bands():
            specs[band] = (n, {})
        await kafka_io.create_topics(self.cfg.bootstrap, specs)

    async def history(self) -> int:
        """The simulator's past days into the raw topic at their times (the plan is learnt
        from them), then the group's offsets past them (the service never reads them)."""
        rng = random.Random(self.cfg.seed + 101)
        days = len(self.s.history)
        width_s = DAY_S / BUCKETS
        stamps: list[float] = []
        for age, counts in enumerate(self.s.history):
            start = self.origin_s - (days - age) * DAY_S
            for bucket, count in enumerate(counts):
                at = start + bucket * width_s
                stamps += [at + rng.random() * width_s for _ in range(count)]
        stamps.sort()
        producer = AIOKafkaProducer(bootstrap_servers=self.cfg.bootstrap, linger_ms=20)
        await producer.start()
        try:
            pending = []
            for i, at in enumerate(stamps):
                key = f"past-{i}"
                pending.append(
                    await producer.send(
                        self.t.raw,
                        value=_lead_value(key, 1.0),
                        key=key.encode(),
                        timestamp_ms=int(at * 1000),
                    )
                )
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.cfg.bootstrap, group_id=self.t.group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.t.raw, p) for p in range(self.cfg.partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()
        return len(stamps)

    async def provider(self) -> None:
        port = _free_port()
        argv = [sys.executable, "-m", "streamproc", "mock-provider", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--latency-ms", str(self.cfg.latency_ms)]
        argv += ["--credits-per-call", str(CREDITS), "--seed", str(self.cfg.seed)]
        child = spawn("mock-provider", argv, env=_child_env({}), cwd=ROOT, log_dir=self.cfg.work)
        self.children.append(child)
        self.provider_base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.provider_base}/stats")).status_code == 200:
                        return
                if child.reap() or time.monotonic() > deadline:
                    raise RuntimeError(f"mock provider did not start:\n{child.stderr_tail()}")
                await asyncio.sleep(0.2)

    def streamproc_env(self, http_port: int) -> dict[str, str]:
        cfg, t = self.cfg, self.t
        spec = f"{cfg.rate!r}@{self.origin_s!r}@{self.wall_origin_s!r}"
        return _child_env(
            {
                "STREAMPROC_BOOTSTRAP_SERVERS": cfg.bootstrap,
                "STREAMPROC_GROUP_ID": t.group,
                "STREAMPROC_TOPIC_RAW": t.raw,
                "STREAMPROC_TOPIC_ENRICHED": t.out,
                "STREAMPROC_TOPIC_DLQ": t.dlq,
                "STREAMPROC_TOPIC_PARKED": t.parked,
                "STREAMPROC_TOPIC_STATE": t.state,
                "STREAMPROC_TOPIC_DEFERRED": t.deferred,
                "STREAMPROC_TOPIC_PARTITIONS": str(cfg.partitions),
                # The group's offsets were committed past the history; latest only if not.
                "STREAMPROC_START_OFFSET": "latest",
                "STREAMPROC_PROVIDER_URL": f"{self.provider_base}/enrich",
                "STREAMPROC_CREDITS_PER_LEAD": str(CREDITS),
                "STREAMPROC_BUDGET_DAILY_CREDITS": str(self.day_cfg.budget),
                "STREAMPROC_BUDGET_TIMEZONE": "UTC",
                # The clock's seconds: a lease lives 2 wall seconds, as by default.
                "STREAMPROC_BUDGET_CLAIM_MAX_AGE_S": str(round(2.0 * cfg.rate, 3)),
                "STREAMPROC_PRIORITY_SCORE": "double(lead.score)",
                "STREAMPROC_PRIORITY_HALFLIFE_S": str(self.day_cfg.halflife_min * 60),
                "STREAMPROC_PACING_ENABLED": "true",
                "STREAMPROC_PACING_BAND_EDGES": ",".join(str(e) for e in cfg.band_edges),
                "STREAMPROC_PACING_STEP_S": "60",
                "STREAMPROC_DEFERRAL_WINDOW": str(cfg.deferral_window),
                "STREAMPROC_PACING_HISTORY_DAYS": str(len(self.s.history)),
                "STREAMPROC_DEFERRAL_MAX_AGE_S": str(self.day_cfg.max_age_min * 60),
                "STREAMPROC_BENCH_CLOCK": spec,
                "STREAMPROC_HTTP_PORT": str(http_port),
                "STREAMPROC_LOG_FORMAT": "json",
                "STREAMPROC_LOG_LEVEL": "INFO",
            }
        )

    async def processes(self) -> None:
        for i in range(self.cfg.instances):
            port = _free_port()
            self.http_ports.append(port)
            argv = [sys.executable, "-m", "streamproc", "run"]
            env = self.streamproc_env(port)
            self.children.append(
                spawn(f"streamproc-{i}", argv, env=env, cwd=ROOT, log_dir=self.cfg.work)
            )
        deadline = time.monotonic() + self.cfg.lead_in_s
        async with httpx.AsyncClient(timeout=2) as http:
            for port, child in zip(self.http_ports, self.children[1:], strict=True):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    if child.reap():
                        raise RuntimeError(f"{child.name} exited:\n{child.stderr_tail()}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{child.name} not ready:\n{child.stderr_tail()}")
                    await asyncio.sleep(0.5)

    # --- the day --------------------------------------------------------------------------

    async def produce_day(self) -> None:
        """Each lead at its time of the day, stamped with it (the score decays from it)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.cfg.bootstrap, linger_ms=2, enable_idempotence=True
        )
        await producer.start()
        try:
            pending = []
            for lead in self.s.leads:
                at_s = self.origin_s + lead.arrival * 60
                due = self.wall_origin_s + lead.arrival * 60 / self.cfg.rate
                wait = due - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.send_late_s.append(max(0.0, time.time() - due))
                pending.append(
                    await producer.send(
                        self.t.raw,
                        value=_lead_value(lead.key, lead.score),
                        key=lead.key.encode(),
                        timestamp_ms=int(at_s * 1000),
                    )
                )
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    async def stop(self) -> None:
        for child in reversed(self.children):
            await child.stop()

    async def provider_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{self.provider_base}/stats")
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    # --- read back ------------------------------------------------------------------------

    async def read(self, topic: str) -> list[tuple[bytes | None, bytes | None, list[Any]]]:
        return [
            (r.key, r.value, list(r.headers))
            for r in await kafka_io.read_records(self.cfg.bootstrap, topic)
        ]


def _minute_of(moment: str, midnight_s: float, clock: Clock) -> float:
    """A wall-clock ISO time (``enriched_at``) as minutes into the budget day."""
    wall = datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    return (clock.at(wall) - midnight_s) / 60.0


@dataclass(slots=True)
class E2EResult:
    row: Row
    outcome: Outcome
    facts: dict[str, Any]


async def run_e2e(cfg: E2EConfig) -> E2EResult:
    cfg.work.mkdir(parents=True, exist_ok=True)
    day = DayRun(cfg)
    broker = kafka_io.Broker(cfg.bootstrap)
    broker.ensure()
    created = False
    try:
        await day.topics()
        created = True
        past = await day.history()
        await day.provider()
        day.wall_origin_s = time.time() + cfg.lead_in_s
        day.clock = Clock(cfg.rate, day.origin_s, day.wall_origin_s)
        await day.processes()
        ready_s = day.wall_origin_s - time.time()
        print(
            f"e2e: {len(day.s.leads)} leads, {past} past leads, rate {cfg.rate:g} "
            f"({cfg.minutes:g} wall min a day), ready {ready_s:.1f} s before midnight; "
            f"topics {day.t.raw[:-4]}.*, clock {day.clock}",
            file=sys.stderr,
        )
        await day.produce_day()
        end_wall = day.wall_origin_s + DAY_S / cfg.rate
        await asyncio.sleep(max(0.0, end_wall - time.time()))
        bill = await day.provider_stats()
        await day.stop()
        return await _results(day, bill, past)
    finally:
        await day.stop()
        if created and not cfg.keep_topics:
            await kafka_io.delete_topics(cfg.bootstrap, day.t.all())
        broker.release()


async def _results(day: DayRun, bill: Mapping[str, Any], past: int) -> E2EResult:
    s, cfg = day.s, day.day_cfg
    leads = {lead.key: lead for lead in s.leads}
    out = Outcome("e2e", s.name, cfg.budget)
    late = 0
    enriched = await day.read(day.t.out)
    for _key, value, _h in enriched:
        if value is None:
            continue
        data = orjson.loads(value)
        lead = leads.get(str(data.get("lead_id")))
        if lead is None:
            continue
        meta = data["enrichment_meta"]
        minute = _minute_of(str(meta["enriched_at"]), day.origin_s, day.clock)
        if minute >= MINUTES:
            late += 1  # bought after the reset: the next day's budget
            continue
        out.admitted[lead.key] = minute
        out.value += _worth(lead, minute, cfg)
    dlq: dict[str, int] = {}
    for key, _value, headers in await day.read(day.t.dlq):
        reason = next((v.decode() for k, v in headers if k == "streamproc.error.class"), "?")
        dlq[reason] = dlq.get(reason, 0) + 1
        if reason == "deferral_expired" and key is not None:
            out.expired.add(key.decode())
    deferred = {band: len(await day.read(band)) for band in day.t.bands()}
    steps: dict[int, dict[str, Any]] = {}
    day_name = day.midnight.date().isoformat()
    for key, value, _h in await day.read(day.t.state):
        if key == b"pacing/step" and value is not None:
            step = orjson.loads(value)
            if step["day"] == day_name:
                steps.setdefault(int(step["step"]), step)
    # Spend as the simulator counts it: credits at admission, minute by minute.
    by_minute = [0.0] * MINUTES
    for minute in out.admitted.values():
        by_minute[min(MINUTES - 1, int(minute))] += CREDITS
    running, plan, theta = 0.0, 0.0, 0.0
    for m in range(MINUTES):
        running += by_minute[m]
        out.spent_by_minute.append(running)
        nxt = steps.get(m + 1)
        if nxt is not None:
            plan = float(nxt["target"])
        current = steps.get(m)
        if current is not None:
            theta = SharedStep.from_dict(current).threshold.theta
        out.plan_by_minute.append(plan)
        out.theta_by_minute.append(theta)
    oracle = run_oracle(s, cfg)
    row = measure(out, s, cfg, oracle)
    lag = [float(st["at"]) - (day.origin_s + n * 60.0) for n, st in steps.items()]
    waits = sorted(
        minute - leads[key].arrival for key, minute in out.admitted.items() if key in leads
    )
    facts = {
        "leads": len(s.leads),
        "past_leads": past,
        "rate": day.cfg.rate,
        "enriched": len(out.admitted),
        "enriched_records": len(enriched),
        "enriched_after_reset": late,
        "provider_calls": bill.get("calls"),
        "provider_credits": bill.get("credits"),
        "provider_leads_charged_twice": bill.get("leads_charged_twice"),
        "ledger_spent_last_step": None if not steps else steps[max(steps)]["spent"],
        "dlq": dlq,
        "deferred_records": deferred,
        "steps": len(steps),
        "step_lag_s": _spread(lag),
        "admit_wait_min": _spread(waits),
        "send_late_s": _spread(day.send_late_s),
    }
    return E2EResult(row, out, facts)


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)], 3)

    return {"p50": q(0.5), "p95": q(0.95), "max": round(ordered[-1], 3)}


def sim_rows(cfg: E2EConfig) -> list[Row]:
    """The simulator's rows for the same day: today's, paced (the row the end-to-end run
    should agree with: ``streamproc run`` gates with the simulator's gate and lets a
    deferred lead wait with its worth decaying, as the simulator's pool does), and the
    oracle."""
    day = cfg.day()
    s = scenario("base", day)
    oracle = run_oracle(s, day)
    return [
        measure(run("first_come", s, day), s, day, oracle),
        measure(run("paced", s, day), s, day, oracle),
        measure(oracle, s, day, oracle),
    ]


def report(cfg: E2EConfig, result: E2EResult, table: Any) -> str:
    rows = [*sim_rows(cfg), replace(result.row, policy=f"e2e ({cfg.minutes:g} min)")]
    lines = [table(rows), "", "```", json.dumps(result.facts, indent=1), "```"]
    return "\n".join(lines)
