"""``state show`` shows the group's pacing step folded from the state topic."""

from __future__ import annotations

import io

from streamproc.resilience.pacer import PacerConfig
from streamproc.resilience.pacing_step import STEP_KEY, PlanShape, next_step
from streamproc.resilience.spend_plan import uniform_shape
from streamproc.settings import Settings
from streamproc.state.config import StateConfig
from streamproc.state.group_state import GroupState
from streamproc.state.view import render_state_table


def test_state_show_prints_the_latest_pacing_step_and_none_before_one() -> None:
    """No step written: ``pacing`` None; after a ``pacing/step`` record: its day, step,
    writer, threshold and spend against the plan, in the JSON and the table."""
    view = GroupState.reader(StateConfig.from_settings(Settings()), clock=lambda: 1_796_640_000.0)
    assert view.pacing_status() is None
    step = next_step(
        None,
        (),
        config=PacerConfig(),
        shape=PlanShape(uniform_shape(24)),
        day="2026-12-07",
        t=36_000.0,
        now=1_796_637_600.0,
        writer="host-1",
        limit=1_000,
        spent=200.0,
        frozen=False,
    )
    view.on_state(STEP_KEY, step.to_dict(), 1, 0)
    shown = view.pacing_status()
    assert shown is not None
    assert (shown["day"], shown["step"], shown["writer"]) == ("2026-12-07", 600, "host-1")
    assert shown["spent"] == 200.0 and shown["frozen"] is False
    state = {
        **view.status().to_dict(),
        "pacing": shown,
        "state_topic": {"topic": "streamproc.state", "records_restored": 1,
                        "budget_entries_kept": 0, "partitions": 3},
    }  # fmt: skip
    out = io.StringIO()
    render_state_table(state, out)
    text = out.getvalue()
    assert "pacing step" in text and "2026-12-07 #600 by host-1" in text
    assert "200 / " in text
