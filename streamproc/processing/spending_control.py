"""``streamproc budget``: read the group's budget and pull its levers (pause, resume, today's
limit), from the CLI and the console alike.

A change restores the state topic (as ``state show`` does), writes the records and waits
until it has read them back, so what it returns is what every instance will see: for a
limit, a :class:`~streamproc.resilience.claims.SetLimit` in the claims log (partition 0,
where the ledger decides claims against it in log order) and then, for every change, the
:data:`~streamproc.resilience.spending.CONTROL_KEY` record with who, why and when.
"""

from __future__ import annotations

import getpass
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from streamproc.errors import ConfigError
from streamproc.resilience.claims import SetLimit
from streamproc.resilience.journal import limit_key
from streamproc.resilience.spending import CONTROL_KEY, SpendingAction, change
from streamproc.state.config import StateConfig
from streamproc.state.group_state import GroupState
from streamproc.state.view import state_of, watch_state
from streamproc.timestamps import epoch_iso

__all__ = [
    "budget_of",
    "change_spending",
    "default_by",
    "load_budget",
    "print_budget",
    "validate_change",
]


def default_by() -> str:
    """Who a change is by when not said: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def validate_change(action: SpendingAction, *, by: str, why: str, limit: int | None = None) -> None:
    """``ConfigError`` (one line) for a request that no state could make valid, before any
    connection is made."""
    try:
        change(None, action, by=by, why=why, now=0.0, limit=limit, day="1970-01-01")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def budget_of(state: dict[str, Any]) -> dict[str, Any]:
    """The budget part of a state document (``state_of``)."""
    return dict(state["budget"])


async def load_budget(config: StateConfig) -> dict[str, Any]:
    view = GroupState.reader(config)
    async with watch_state(config, view) as store:
        return budget_of(state_of(view, store, config))


async def change_spending(
    config: StateConfig,
    action: SpendingAction,
    *,
    by: str,
    why: str,
    limit: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Apply one change for the group and return the budget as it then stands."""
    validate_change(action, by=by, why=why, limit=limit)
    view = GroupState.reader(config, clock=clock)
    async with watch_state(config, view) as store:
        now = clock()
        day = view.ledger.day_at(now) if action is SpendingAction.SET_LIMIT else None
        try:
            control = change(
                view.spending.current, action, by=by, why=why, now=now, limit=limit, day=day
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        written = []
        if control.limit is not None and day is not None and action is SpendingAction.SET_LIMIT:
            event = SetLimit(day, control.limit)
            written.append(store.append(limit_key(day, uuid.uuid4().hex), event.to_dict()))
        written.append(store.append(CONTROL_KEY, control.to_dict()))
        for future in written:
            partition, offset = await future
            await store.wait_applied(partition, offset)
        return budget_of(state_of(view, store, config))


def print_budget(budget: dict[str, Any], *, as_json: bool, file: TextIO | None = None) -> None:
    """The budget, with the pause and the last change, as JSON or a few lines of text."""
    out = file or sys.stdout
    if as_json:
        out.write(orjson.dumps(budget, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    paused = "PAUSED" if budget.get("paused") else "spending"
    out.write(
        f"budget {budget['day']} ({budget['timezone']}): {paused}; {budget['spent']} spent + "
        f"{budget['reserved']} reserved of {budget['limit']}, {budget['remaining']} "
        f"remaining; resets at {budget['resets_at']}\n"
    )
    control = budget.get("control")
    if control:
        limit = "" if control.get("limit") is None else f" (limit {control['limit']} set for "
        limit += f"{control['day']})" if limit else ""
        out.write(
            f"last change: {control['action']} by {control['by']} at "
            f"{epoch_iso(control['at'])}: {control['why']}{limit}\n"
        )
