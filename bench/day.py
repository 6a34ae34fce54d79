"""``python -m bench.day [--seed N] [--chart PATH] [--chart-variant NAME]``.

The budget-day simulator's table. ``--e2e [--minutes M] [--instances N] [--bootstrap B]``:
the base day end to end on a real broker with the clock scaled (bench/dayrun.py), beside
the simulator's rows for the same seed and day.

Every variant of issue 21's day against every policy, in one run (bench/daysim.py says
what each is); the goals checked below the table; one day drawn as an SVG.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from bench.daychart import draw
from bench.daysim import DayConfig, Row, scenario, simulate


def _hhmm(minute: float | None) -> str:
    if minute is None:
        return "never"
    m = round(minute)
    return f"{m // 60:02d}:{m % 60:02d}"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.{digits}f}"


HEADER = (
    "| variant | policy | spent % | 99 % spent at | max abs(spend-plan) % | RMSE % "
    "| max 1-min dev % | value % of oracle | top p95 wait min | top not served % | top expired % |"
)


def table(rows: Sequence[Row]) -> str:
    lines = [HEADER, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r.variant} | {r.policy} | {_num(r.spent_pct)} | {_hhmm(r.exhausted_at)} "
            f"| {_num(r.max_dev_pct)} | {_num(r.rmse_pct)} | {_num(r.max_step_dev_pct, 2)} "
            f"| {_num(r.value_pct)} | {_num(r.top_p95_wait_min)} | {_num(r.top_lost_pct)} "
            f"| {_num(r.top_expired_pct)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.day", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chart", type=Path, default=Path("docs/images/budget-day.svg"))
    parser.add_argument("--chart-variant", default="outage_10_12")
    parser.add_argument("--e2e", action="store_true", help="the base day end to end")
    parser.add_argument("--minutes", type=float, default=20.0, help="--e2e: wall min a day")
    parser.add_argument("--instances", type=int, default=1, help="--e2e: streamproc run's")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="--e2e: the broker")
    parser.add_argument("--keep-topics", action="store_true", help="--e2e: leave them")
    parser.add_argument(
        "--band-edges", default="0.7,1.5,3,6", help="--e2e: the deferral bands' score edges"
    )
    parser.add_argument(
        "--deferral-window", type=int, default=8, help="--e2e: deferred leads in memory a partition"
    )
    args = parser.parse_args(argv)
    if args.e2e:
        from bench.dayrun import E2EConfig, report, run_e2e

        e2e = E2EConfig(
            bootstrap=args.bootstrap,
            seed=args.seed,
            minutes=args.minutes,
            instances=args.instances,
            keep_topics=args.keep_topics,
            band_edges=tuple(float(e) for e in args.band_edges.split(",")),
            deferral_window=args.deferral_window,
        )
        started = time.perf_counter()
        result = asyncio.run(run_e2e(e2e))
        print(report(e2e, result, table))
        print(f"\nend to end in {time.perf_counter() - started:.0f} s")
        return
    cfg = DayConfig(seed=args.seed)
    started = time.perf_counter()
    rows, outcomes = simulate(cfg)
    print(table(rows))
    took = time.perf_counter() - started
    variant = args.chart_variant
    svg = draw(
        scenario(variant, cfg),
        outcomes[(variant, "paced")],
        outcomes[(variant, "first_come")],
        cfg.budget,
    )
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    args.chart.write_text(svg)
    print(f"\n{len(rows)} runs in {took:.1f} s; budget {cfg.budget}, {cfg.leads} leads")
    print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
