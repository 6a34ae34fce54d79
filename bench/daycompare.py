"""``python -m bench.daycompare RUN --clock SPEC [--seed N]``: an end-to-end day, lead by lead.

Reads back the topics an ``python -m bench.day --e2e --keep-topics`` run left (``RUN`` is
their prefix, ``day-xxxxxxxx``; ``SPEC`` the clock it printed, ``RATE@ORIGIN_S@WALL_S``)
and compares them with the simulator's ``paced`` policy on the same day: the leads each
bought, the value gap split into leads only the simulator bought (and what became of them
in the run), leads only the run bought, and decay on the leads both bought; then θ, the
plan and the spend hour by hour in both.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from bench.dayrun import CREDITS, E2EConfig
from bench.daysim import MINUTES, Lead, _worth, run, run_oracle, scenario
from bench.kafka_io import read_records
from streamproc.resilience.pacer import Threshold, bucket_floor, tie_draw
from streamproc.resilience.pacing_step import SharedStep
from streamproc.resilience.priority import decay
from streamproc.timestamps import Clock


@dataclass(slots=True)
class RunDay:
    bought: dict[str, float] = field(default_factory=dict)
    #: Per lead, the deferral records written for it: (band, minute first deferred).
    deferrals: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    dlq: dict[str, str] = field(default_factory=dict)
    #: Per minute of the day, the group's θ and top layer in force (the step of that minute).
    thresholds: list[tuple[Threshold, Threshold | None]] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    #: Offers records written after a step had taken their step.
    late_offers: int = 0


async def read_run(prefix: str, bootstrap: str, clock: Clock, bands: int) -> RunDay:
    day = RunDay()
    origin = clock.origin_s
    for r in await read_records(bootstrap, f"{prefix}.enriched"):
        data = orjson.loads(r.value)
        wall = datetime.fromisoformat(
            str(data["enrichment_meta"]["enriched_at"]).replace("Z", "+00:00")
        ).timestamp()
        day.bought[str(data["lead_id"])] = (clock.at(wall) - origin) / 60.0
    for b in range(bands):
        for r in await read_records(bootstrap, f"{prefix}.deferred.b{b}"):
            headers = dict(r.headers)
            at = int(headers["streamproc.deferred.at"]) / 1000
            day.deferrals[r.key.decode()].append((b, (at - origin) / 60.0))
    for r in await read_records(bootstrap, f"{prefix}.dlq"):
        reason = next((v.decode() for k, v in r.headers if k == "streamproc.error.class"), "?")
        day.dlq[r.key.decode()] = reason
    every: list[SharedStep] = []
    observed = -1
    state = sorted(await read_records(bootstrap, f"{prefix}.state"), key=lambda r: r.offset)
    for r in state:
        if r.value is None:
            continue
        if r.key == b"pacing/step":
            every.append(SharedStep.from_dict(orjson.loads(r.value)))
            observed = max(observed, every[-1].observed)
        elif r.key.startswith(b"pacing/offers/"):
            day.late_offers += orjson.loads(r.value)["step"] <= observed
    # The lead-in's day and the next one's first steps are in the topic too.
    main_day = Counter(s.day for s in every).most_common(1)[0][0]
    steps: dict[int, SharedStep] = {}
    for step in every:
        if step.day == main_day:
            steps.setdefault(step.step, step)
    current: SharedStep | None = None
    for m in range(MINUTES):
        current = steps.get(m, current)
        if current is None:
            day.thresholds.append((Threshold(None, 1.0), None))
            day.targets.append(0.0)
        else:
            day.thresholds.append((current.threshold, current.top))
            day.targets.append(current.target)
    return day


def _density(lead: Lead, minute: float, halflife_min: float) -> float:
    return lead.score * decay((minute - lead.arrival) * 60, halflife_min * 60) / CREDITS


def _clears(th: tuple[Threshold, Threshold | None], density: float, key: str) -> bool:
    theta, top = th
    draw = tie_draw(key)
    return theta.admits(density, draw) or (top is not None and top.admits(density, draw))


def compare(day: RunDay, seed: int) -> str:
    """The comparison's text: the value gap split lead by lead, then hour by hour."""
    cfg = E2EConfig(seed=seed).day()
    s = scenario("base", cfg)
    leads = {lead.key: lead for lead in s.leads}
    sim = run("paced", s, cfg)
    oracle = run_oracle(s, cfg)
    hl = cfg.halflife_min
    lines: list[str] = []
    say = lines.append

    def worth(key: str, minute: float) -> float:
        return _worth(leads[key], minute, cfg)

    def pts(v: float) -> str:
        return f"{v:.1f} ({100 * v / oracle.value:.1f} pts)"

    def scores(keys: Iterable[str]) -> float:
        return sum(leads[k].score for k in keys)

    def on_arrival(bought: dict[str, float]) -> int:
        return sum(1 for k, m in bought.items() if m - leads[k].arrival < 1.0)

    bought = {k: m for k, m in day.bought.items() if k in leads and m < MINUTES}
    sim_v = sum(worth(k, m) for k, m in sim.admitted.items())
    run_v = sum(worth(k, m) for k, m in bought.items())
    say(
        f"oracle value {oracle.value:.1f}; sim paced {sim_v:.1f} "
        f"({100 * sim_v / oracle.value:.1f} %), run {run_v:.1f} "
        f"({100 * run_v / oracle.value:.1f} %); gap {pts(sim_v - run_v)}"
    )
    sim_only = set(sim.admitted) - set(bought)
    run_only = set(bought) - set(sim.admitted)
    common = set(sim.admitted) & set(bought)
    a = sum(worth(k, sim.admitted[k]) for k in sim_only)
    b = sum(worth(k, bought[k]) for k in run_only)
    c = sum(worth(k, sim.admitted[k]) - worth(k, bought[k]) for k in common)
    say(
        f"leads: sim {len(sim.admitted)}, run {len(bought)}, common {len(common)}, "
        f"sim only {len(sim_only)}, run only {len(run_only)}"
    )
    say(f"gap = sim-only worth {pts(a)} - run-only worth {pts(b)} + decay on common {pts(c)}")
    say(
        f"scores (undecayed): sim-only {scores(sim_only):.1f}, run-only "
        f"{scores(run_only):.1f}; sim set {scores(sim.admitted):.1f}, run set "
        f"{scores(bought):.1f}, oracle set {scores(oracle.admitted):.1f}"
    )
    say(
        f"decay: sim loses {scores(sim.admitted) - sim_v:.1f}, "
        f"run loses {scores(bought) - run_v:.1f}"
    )
    deltas = [bought[k] - sim.admitted[k] for k in common]
    late = [k for k in common if bought[k] - sim.admitted[k] > 1]
    lost = sum(worth(k, sim.admitted[k]) - worth(k, bought[k]) for k in late)
    say(
        f"common leads bought >1 min later by run: {len(late)} (decay {pts(lost)}; "
        f"deferred in the run: {sum(1 for k in late if k in day.deferrals)}), earlier: "
        f"{sum(1 for d in deltas if d < -1)}; median delta {statistics.median(deltas):.1f} min"
    )
    say(f"bought within 1 min of arrival: sim {on_arrival(sim.admitted)}, run {on_arrival(bought)}")

    def fate(k: str) -> str:
        lead = leads[k]
        arr = int(lead.arrival)
        if _clears(day.thresholds[arr], _density(lead, lead.arrival, hl), k):
            cleared = "cleared run θ at arrival"
        elif any(
            _clears(day.thresholds[m], _density(lead, m + 1.0, hl), k)
            for m in range(arr, min(MINUTES, arr + int(cfg.max_age_min)))
        ):
            cleared = "cleared run θ later"
        else:
            cleared = "never cleared run θ"
        deferred = len(day.deferrals.get(k, []))
        end = day.dlq.get(k, "waiting at reset" if deferred else "never deferred")
        return f"{end}; {cleared}; deferral records {min(deferred, 3)}{'+' * (deferred > 3)}"

    groups: dict[str, list[str]] = defaultdict(list)
    for k in sim_only:
        groups[fate(k)].append(k)
    say("sim-only leads, by their fate in the run (worth as the sim bought them):")
    for g, ks in sorted(
        groups.items(), key=lambda kv: -sum(worth(k, sim.admitted[k]) for k in kv[1])
    ):
        v = sum(worth(k, sim.admitted[k]) for k in ks)
        arr_h = statistics.median(leads[k].arrival for k in ks) / 60
        wait = statistics.median(sim.admitted[k] - leads[k].arrival for k in ks)
        say(
            f"  {len(ks):4d} leads, worth {pts(v)}: {g} (median arrival {arr_h:.1f} h, "
            f"sim bought after {wait:.1f} min)"
        )
    groups = defaultdict(list)
    for k in run_only:
        lead = leads[k]
        at = _clears(
            sim.threshold_by_minute[int(lead.arrival)], _density(lead, lead.arrival, hl), k
        )
        groups["cleared sim θ at arrival" if at else "not at arrival"].append(k)
    say("run-only leads:")
    for g, ks in groups.items():
        v = sum(worth(k, bought[k]) for k in ks)
        wait = statistics.median(bought[k] - leads[k].arrival for k in ks)
        say(f"  {len(ks):4d} leads, worth {pts(v)}: {g}; run bought after {wait:.1f} min")
    say(
        "hour | θ sim | θ run | top sim | top run | plan sim | plan run | spend sim "
        "| spend run | bought on arrival sim/run"
    )
    spend = {"sim": [0.0] * 24, "run": [0.0] * 24}
    fresh = {"sim": [0] * 24, "run": [0] * 24}
    for name, admitted in (("sim", sim.admitted), ("run", bought)):
        for k, m in admitted.items():
            hour = min(23, int(m // 60))
            spend[name][hour] += CREDITS
            fresh[name][hour] += m - leads[k].arrival < 1.0

    def floor(th: Threshold | None) -> float:
        return float("nan") if th is None or th.bucket is None else bucket_floor(th.bucket)

    for h in range(24):
        ms = range(h * 60, h * 60 + 60)
        ts = statistics.fmean(floor(sim.threshold_by_minute[m][0]) for m in ms)
        tr = statistics.fmean(floor(day.thresholds[m][0]) for m in ms)
        ps = statistics.fmean(floor(sim.threshold_by_minute[m][1]) for m in ms)
        pr = statistics.fmean(floor(day.thresholds[m][1]) for m in ms)
        end = h * 60 + 59
        say(
            f"{h:02d} | {ts:.3f} | {tr:.3f} | {ps:.3f} | {pr:.3f} "
            f"| {sim.plan_by_minute[end]:.0f} | {day.targets[end]:.0f} "
            f"| {spend['sim'][h]:.0f} | {spend['run'][h]:.0f} "
            f"| {fresh['sim'][h]}/{fresh['run'][h]}"
        )
    say(f"offers records written after their step was taken: {day.late_offers}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.daycompare", description=__doc__)
    parser.add_argument("run", help="the topics' prefix, day-xxxxxxxx")
    parser.add_argument("--clock", required=True, help="RATE@ORIGIN_S@WALL_ORIGIN_S")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--bands", type=int, default=5)
    args = parser.parse_args(argv)
    day = asyncio.run(read_run(args.run, args.bootstrap, Clock.parse(args.clock), args.bands))
    print(compare(day, args.seed))


if __name__ == "__main__":
    main()
