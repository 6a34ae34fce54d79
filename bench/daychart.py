"""One simulated budget day as an SVG, drawn by hand (no plotting library needed).

Top: the share of the budget spent by the paced policy against its plan, first come beside
them, and the day's arrivals; bottom: the threshold θ over the day (log scale).
"""

# ruff: noqa: E501  (SVG markup reads best one element a line)
from __future__ import annotations

import math
from collections.abc import Sequence

from bench.daysim import MINUTES, Outcome, Scenario

WIDTH, HEIGHT = 900, 560
LEFT, RIGHT = 70, 20
TOP_Y, TOP_H = 40, 300
BOT_Y, BOT_H = 390, 130


def _x(minute: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * minute / MINUTES


def _path(
    points: Sequence[tuple[float, float]], colour: str, width: float = 2, dash: str = ""
) -> str:
    d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width}"{extra}/>'


def draw(s: Scenario, paced: Outcome, first_come: Outcome, budget: int) -> str:
    def top_y(share: float) -> float:
        return TOP_Y + TOP_H * (1 - share)

    arrived = [0] * MINUTES
    for lead in s.leads:
        arrived[min(MINUTES - 1, int(lead.arrival))] += 1
    running, cumulative = 0, []
    for count in arrived:
        running += count
        cumulative.append(running / max(1, len(s.leads)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">One simulated budget day '
        f"({s.name}): spend against plan, and the threshold</text>",
    ]
    if s.outage is not None:
        x0, x1 = _x(s.outage[0]), _x(s.outage[1])
        for y, h in ((TOP_Y, TOP_H), (BOT_Y, BOT_H)):
            parts.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{x1 - x0:.1f}" height="{h}" fill="#fde2e2"/>'
            )
    for share in (0, 0.25, 0.5, 0.75, 1.0):
        y = top_y(share)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    for hour in range(0, 25, 3):
        x = _x(hour * 60)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP_Y}" y2="{BOT_Y + BOT_H}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{BOT_Y + BOT_H + 18}" text-anchor="middle">{hour:02d}:00</text>'
        )
    parts.append(_path([(_x(m), top_y(v)) for m, v in enumerate(cumulative)], "#bbb", 2, "4 3"))
    fc = [(_x(m), top_y(v / budget)) for m, v in enumerate(first_come.spent_by_minute)]
    parts.append(_path(fc, "#d62728", 1.5))
    parts.append(
        _path(
            [(_x(m), top_y(v / budget)) for m, v in enumerate(paced.plan_by_minute)], "#1f77b4", 3
        )
    )
    parts.append(
        _path(
            [(_x(m), top_y(v / budget)) for m, v in enumerate(paced.spent_by_minute)],
            "#ff7f0e",
            1.5,
        )
    )
    legend = [
        ("#1f77b4", "plan S*(t)"),
        ("#ff7f0e", "spent, paced"),
        ("#d62728", "spent, first come (today)"),
        ("#bbb", "leads arrived (share of the day)"),
    ]
    for i, (colour, label) in enumerate(legend):
        y = TOP_Y + 16 + 18 * i
        parts.append(
            f'<line x1="{LEFT + 12}" x2="{LEFT + 40}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="3"/>'
        )
        parts.append(f'<text x="{LEFT + 46}" y="{y}">{label}</text>')
    parts.append(
        f'<text x="16" y="{TOP_Y + TOP_H / 2}" transform="rotate(-90 16 {TOP_Y + TOP_H / 2})" text-anchor="middle">share of the budget</text>'
    )
    thetas = [t for t in paced.theta_by_minute if t > 0]
    lo = math.floor(math.log2(min(thetas))) if thetas else -4
    hi = math.ceil(math.log2(max(thetas))) if thetas else 2
    hi = max(hi, lo + 1)

    def bot_y(theta: float) -> float:
        return BOT_Y + BOT_H * (1 - (math.log2(theta) - lo) / (hi - lo))

    for level in range(lo, hi + 1):
        y = bot_y(2.0**level)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{2.0**level:g}</text>'
        )
    points = [(_x(m), bot_y(t)) for m, t in enumerate(paced.theta_by_minute) if t > 0]
    if points:
        parts.append(_path(points, "#2ca02c", 1.2))
    parts.append(
        f'<text x="16" y="{BOT_Y + BOT_H / 2}" transform="rotate(-90 16 {BOT_Y + BOT_H / 2})" text-anchor="middle">θ (score/credit)</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
