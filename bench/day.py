"""``python -m bench.day [--seed N] [--chart PATH] [--chart-variant NAME]``.

The budget-day simulator's table.

Every variant of issue 21's day against every policy, in one run (bench/daysim.py says
what each is); the goals checked below the table; one day drawn as an SVG.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
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
