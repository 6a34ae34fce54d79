"""The group's state read from the state topic, and ``streamproc state show``.

:func:`watch_state` restores the state topic into a :class:`StateView` exactly as
``streamproc run`` restores it, so the view shows what the next instance to start would
believe, and keeps tailing the topic while inside. Read-only: the view is never attached
to the store, so nothing is written back (not even a lazy OPEN → HALF_OPEN transition).
The view is the guard's own pure fold of the state
(:meth:`streamproc.state.group_state.GroupState.reader`); the replayer's safety check
and ``state show`` take it as a parameter, so this package needs nothing above it.

The budget's day, limit and time zone are the group's, as the claims log fixed them (see
:mod:`streamproc.resilience.claims`), not this machine's settings. ``state_topic`` says how
many records the restore read and how many budget entries it kept: the first shrinks with
compaction, the second stays small (open claims and each writer's newest total) however old
the deployment.

With a ``waterfall/hits/`` record in the topic, ``waterfall`` is each provider's calls, hits,
credits, fill rate and credits per found answer, today (UTC) and over the order's window,
folded by the waterfall's own :class:`~streamproc.waterfall.ledger.HitLedger`.

Not shown: the health window and the leads being held, which live only in a running
process's memory (its ``/status`` endpoint has them).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

import orjson

from streamproc.records.status import StateStatus
from streamproc.state.config import StateConfig
from streamproc.state.group_state import GroupState
from streamproc.state.store import StateStore
from streamproc.timestamps import epoch_iso
from streamproc.waterfall.ledger import PREFIX as HITS_PREFIX
from streamproc.waterfall.ledger import HitLedger

__all__ = [
    "StateView",
    "load_state",
    "print_state",
    "read_state",
    "render_state_table",
    "state_of",
    "state_show",
    "watch_state",
]


class StateView(Protocol):
    """Folds the state topic's records into the group's status (breaker, budget, cache)."""

    def on_state(
        self, key: str, value: dict[str, Any] | None, partition: int, offset: int
    ) -> None: ...

    def status(self) -> StateStatus: ...

    def pacing_status(self) -> dict[str, Any] | None:
        """The group's latest pacing step (None: no step written yet)."""
        ...


@contextlib.asynccontextmanager
async def watch_state(config: StateConfig, view: StateView) -> AsyncIterator[StateStore]:
    """Restore the state topic into ``view`` and keep tailing it while inside."""
    store = StateStore(config.kafka, config.topic_state, view.on_state)
    try:
        await store.start()
        yield store
    finally:
        await store.stop()


@contextlib.asynccontextmanager
async def read_state(
    config: StateConfig, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[GroupState]:
    """A fresh reader of the group's state (:meth:`GroupState.reader`), restored from the
    state topic and kept tailing it while inside."""
    view = GroupState.reader(config, clock=clock)
    async with watch_state(config, view):
        yield view


class _WithHits:
    """``view``, with the waterfall's hit records folded into a ledger beside it."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.ledger = HitLedger()

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        self.view.on_state(key, value, partition, offset)
        if key.startswith(HITS_PREFIX):
            self.ledger.apply(key, value)

    def status(self) -> StateStatus:
        return self.view.status()

    def pacing_status(self) -> dict[str, Any] | None:
        return self.view.pacing_status()


async def load_state(
    config: StateConfig, view: StateView, *, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """The state as JSON-able data: breaker, budget, cache, each waterfall provider's
    numbers, and where it was read from."""
    both = _WithHits(view)
    async with watch_state(config, both) as store:
        return state_of(view, store, config, ledger=both.ledger, now=clock())


def state_of(
    view: StateView,
    store: StateStore,
    config: StateConfig,
    *,
    ledger: HitLedger | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    status = view.status()
    shared = status.to_dict()
    state: dict[str, Any] = {
        "breaker": shared["breaker"],
        "budget": shared["budget"],
        "cache": shared["cache"],
        "pacing": view.pacing_status(),
    }
    if ledger is not None:
        today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
        summary = ledger.summary(today, config.window_days)
        if summary["providers"]:
            state["waterfall"] = summary
    state["state_topic"] = {
        "topic": config.topic_state,
        "partitions": store.partitions,
        "records_restored": store.records_restored,
        "budget_entries_kept": status.budget.kept,
    }
    return state


def render_state_table(state: dict[str, Any], file: TextIO) -> None:
    """The state as a rich table (plain text when ``file`` is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    breaker, budget, cache = state["breaker"], state["budget"], state["cache"]
    table = Table(title=f"streamproc state ({state['state_topic']['topic']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    colour = {"closed": "green", "half_open": "yellow", "open": "red"}.get(breaker["state"], "")
    table.add_row("breaker", f"[{colour}]{breaker['state']}[/]" if colour else breaker["state"])
    if breaker.get("reopens_at"):
        table.add_row("  half-open at", str(breaker["reopens_at"]))
    table.add_row("  failures in window", str(breaker["failures_in_window"]))
    spent_line = (
        f"{budget['spent']} / {budget['limit']} credits ({budget['day']}, {budget['timezone']})"
    )
    table.add_row("budget spent / limit", spent_line)
    table.add_row("  reserved (in flight)", str(budget["reserved"]))
    table.add_row("  remaining", str(budget["remaining"]))
    exhausted = "[red]yes[/]" if budget["exhausted"] else "no"
    table.add_row("  exhausted (402)", exhausted)
    table.add_row("  resets at", str(budget["resets_at"]))
    table.add_row("  spending", "[red]paused[/]" if budget.get("paused") else "on")
    control = budget.get("control")
    if control:
        limit = (
            f", limit {control['limit']} for {control['day']}"
            if control.get("limit") is not None
            else ""
        )
        table.add_row(
            "  last change",
            f"{control['action']} by {control['by']} at {epoch_iso(control['at'])}: "
            f"{control['why']}{limit}",
        )
    pacing = state.get("pacing")
    if pacing:
        frozen = " [red]frozen[/]" if pacing["frozen"] else ""
        table.add_row(
            "pacing step",
            f"{pacing['day']} #{pacing['step']} by {pacing['writer']} at "
            f"{epoch_iso(pacing['at'])}{frozen}",
        )
        table.add_row("  threshold (density)", f"{pacing['theta']:g} (admit {pacing['admit']:.3g})")
        table.add_row("  spent / plan", f"{pacing['spent']:g} / {pacing['target']:g}")
    table.add_row("cache entries", str(cache["entries"]))
    waterfall = state.get("waterfall")
    if waterfall:
        days = waterfall["window_days"]
        table.add_row("waterfall providers", f"today ({waterfall['day']}, UTC); last {days} days")
        for row in waterfall["providers"]:
            table.add_row(f"  {row['provider']} today", _numbers(row["today"]))
            table.add_row(f"  {row['provider']} {days} days", _numbers(row["window"]))
    table.add_row("state records read", str(state["state_topic"]["records_restored"]))
    table.add_row("  budget entries kept", str(state["state_topic"]["budget_entries_kept"]))
    Console(file=file, highlight=False).print(table)


def _numbers(counted: dict[str, Any]) -> str:
    """Calls, hits, credits, fill rate and credits per found answer, on one line."""
    rate, cost = counted["fill_rate"], counted["credits_per_found"]
    return (
        f"{counted['calls']} calls, {counted['hits']} found, {counted['credits']} cr, "
        f"fill {'-' if rate is None else f'{rate:.0%}'}, "
        f"{'-' if cost is None else f'{cost:g}'} cr/found"
    )


def print_state(state: dict[str, Any], *, as_json: bool, file: TextIO | None = None) -> None:
    out = file or sys.stdout
    if as_json:
        out.write(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render_state_table(state, out)


async def state_show(config: StateConfig, view: StateView, *, as_json: bool) -> int:
    """The ``state show`` command: exit code 0."""
    print_state(await load_state(config, view), as_json=as_json)
    return 0
