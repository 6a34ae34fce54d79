"""``streamproc state show``: the group's breaker, budget and cache, read from the state topic.

The state topic is restored exactly as ``streamproc run`` restores it (a
:class:`~streamproc.state.store.StateStore` feeding a
:class:`~streamproc.processing.guard.ResilienceGuard`), so this shows what the next
instance to start would believe. Read-only: the guard is never attached to the store, so
nothing is written back (not even a lazy OPEN → HALF_OPEN transition).

The budget's day, limit and time zone are the group's, as the claims log fixed them (see
:mod:`streamproc.resilience.claims`), not this machine's settings. ``state_topic`` says how
many records the restore read and how many budget entries it kept: the first shrinks with
compaction, the second stays small (open claims and each writer's newest total) however old
the deployment.

Not shown: the health window and the leads being held, which live only in a running
process's memory (its ``/status`` endpoint has them).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

import orjson

from streamproc.processing.guard import ResilienceGuard
from streamproc.settings import Settings
from streamproc.state.store import StateStore

__all__ = [
    "load_state",
    "print_state",
    "render_state_table",
    "state_of",
    "state_show",
    "watch_state",
]


def _reader_owner() -> str:
    # An owner id no processor has: the guard must never take a record for its own.
    return f"state-reader-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def watch_state(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[tuple[ResilienceGuard, StateStore]]:
    """Restore the state topic into a read-only guard and keep tailing it while inside."""
    guard = ResilienceGuard(settings, clock=clock, owner=_reader_owner())
    store = StateStore(settings, guard.on_state)
    try:
        await store.start()
        yield guard, store
    finally:
        await store.stop()


async def load_state(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """The state as JSON-able data: breaker, budget, cache, and where it was read from."""
    async with watch_state(settings, clock=clock) as (guard, store):
        return state_of(guard, store, settings)


def state_of(guard: ResilienceGuard, store: StateStore, settings: Settings) -> dict[str, Any]:
    status = guard.status()
    return {
        "breaker": status["breaker"],
        "budget": status["budget"],
        "cache": status["cache"],
        "state_topic": {
            "topic": settings.topic_state,
            "partitions": store.partitions,
            "records_restored": store.records_restored,
            "budget_entries_kept": status["budget"]["kept"],
        },
    }


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
    table.add_row("cache entries", str(cache["entries"]))
    table.add_row("state records read", str(state["state_topic"]["records_restored"]))
    table.add_row("  budget entries kept", str(state["state_topic"]["budget_entries_kept"]))
    Console(file=file, highlight=False).print(table)


def print_state(state: dict[str, Any], *, as_json: bool, file: TextIO | None = None) -> None:
    out = file or sys.stdout
    if as_json:
        out.write(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render_state_table(state, out)


async def state_show(settings: Settings, *, as_json: bool) -> int:
    """The ``state show`` command: exit code 0."""
    print_state(await load_state(settings), as_json=as_json)
    return 0
