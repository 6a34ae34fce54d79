"""The console API's JSON and its inputs: pure.

* The DLQ filters come from a query string (``GET /console/api/dlq``) or a JSON body
  (``POST /console/api/replay``) with the names of the CLI flags (``error_class``,
  ``since``, ``until``, ``key``, ``retriable``, ``attempt``) and are parsed by the same
  :meth:`ReplayFilter.parse`, so the page filters exactly as ``dlq show`` and ``replay``;
  a bad value is the same one-line :class:`~streamproc.errors.ConfigError`.
* :func:`overview` assembles ``GET /console/api/overview`` from what the process knows;
  what it cannot know (the standalone console has no health window, no Clay webhook
  counts) is ``{"known": false, "why": ...}``, so the page can say so instead of a zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamproc.console.history import BurnSeries, Transition, day_bounds
from streamproc.errors import ConfigError
from streamproc.replay.command import whole_number
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.replayer import ReplayOptions
from streamproc.replay.show import DEFAULT_LIMIT, ShowOptions
from streamproc.timestamps import epoch_iso

__all__ = [
    "FILTER_FIELDS",
    "MAX_PAGE",
    "Lag",
    "overview",
    "replay_options_from_body",
    "show_options_from_query",
]

#: The most records one page of the browser asks for: the page renders them all at once.
MAX_PAGE = 200
#: The filter names, as the CLI's flags without the dashes.
FILTER_FIELDS = ("error_class", "since", "until", "key", "retriable", "attempt")

#: A query string or a JSON body's filter part: each name to its values (repeatable
#: names, and comma-separated lists, as the CLI takes them).
Query = Mapping[str, Sequence[str]]


def _one(query: Query, name: str) -> str | None:
    values = [v.strip() for v in query.get(name, ()) if v.strip()]
    if len(values) > 1:
        raise ConfigError(f"{name}: give one value, not {len(values)}")
    return values[0] if values else None


def _flag(query: Query, name: str) -> bool:
    value = (_one(query, name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ConfigError(f"{name} {value!r}: expected true or false")
    return value in ("true", "1")


def filters_from_query(query: Query, now: datetime) -> ReplayFilter:
    """The DLQ filters of a query (empty values count as absent)."""
    return ReplayFilter.parse(
        error_classes=query.get("error_class", ()),
        since=_one(query, "since"),
        until=_one(query, "until"),
        key=_one(query, "key"),
        retriable=query.get("retriable", ()),
        attempt=_one(query, "attempt"),
        now=now,
    )


def show_options_from_query(query: Query, now: datetime) -> ShowOptions:
    """A page of the DLQ list: the filters, ``skip``, ``limit`` (at most :data:`MAX_PAGE`),
    ``all`` (the whole retained topic) and ``max_attempts`` (for "replay would")."""
    limit = whole_number(_one(query, "limit"), "limit", 1) or DEFAULT_LIMIT
    if limit > MAX_PAGE:
        raise ConfigError(f"limit {limit}: a page holds at most {MAX_PAGE} records")
    return ShowOptions(
        filters=filters_from_query(query, now),
        skip=whole_number(_one(query, "skip"), "skip", 0) or 0,
        limit=limit,
        include_all=_flag(query, "all"),
        max_attempts=whole_number(_one(query, "max_attempts"), "max_attempts", 1) or 3,
    )


def _as_query(filters: Any) -> dict[str, list[str]]:
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise ConfigError("filters: expected an object of filter names and values")
    unknown = sorted(set(filters) - set(FILTER_FIELDS))
    if unknown:
        raise ConfigError(
            f"filters: unknown {', '.join(unknown)}; known: {', '.join(FILTER_FIELDS)}"
        )
    out: dict[str, list[str]] = {}
    for name, value in filters.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        out[name] = [str(v) for v in values if v is not None]
    return out


def replay_options_from_body(body: Any, now: datetime) -> ReplayOptions:
    """A replay from the page: ``{"filters": {...}, "max_attempts": N, "limit": N,
    "dry_run": bool}``. No ``follow`` and no ``force``: those stay on the command line,
    where their consequences are spelt out."""
    if not isinstance(body, Mapping):
        raise ConfigError("expected a JSON object: {filters, max_attempts, limit, dry_run}")
    dry_run = body.get("dry_run")
    if not isinstance(dry_run, bool):
        raise ConfigError("dry_run: expected true (count only) or false (move the records)")

    def number(name: str, minimum: int) -> int | None:
        value = body.get(name)
        return None if value in (None, "") else whole_number(str(value), name, minimum)

    return ReplayOptions(
        filters=filters_from_query(_as_query(body.get("filters")), now),
        limit=number("limit", 1),
        max_attempts=number("max_attempts", 1) or 3,
        dry_run=dry_run,
    )


@dataclass(frozen=True, slots=True)
class Lag:
    """The group's position on the input topic: per partition ``(committed or None, end)``;
    ``error`` when it could not be read."""

    topic: str
    partitions: Mapping[int, tuple[int | None, int]]
    error: str | None = None


def _unknown(why: str) -> dict[str, Any]:
    return {"known": False, "why": why}


def _lag_json(lag: Lag | None) -> dict[str, Any]:
    if lag is None:
        return {**_unknown("not read yet"), "topic": None}
    if lag.error is not None:
        return {**_unknown(lag.error), "topic": lag.topic}
    rows = []
    for partition, (committed, end) in sorted(lag.partitions.items()):
        # No committed offset: the group has not started here; all of it is behind.
        behind = end if committed is None else max(end - committed, 0)
        rows.append({"partition": partition, "committed": committed, "end": end, "lag": behind})
    return {
        "known": True,
        "topic": lag.topic,
        "partitions": rows,
        "total": sum(r["lag"] for r in rows),
    }


def _burn_json(budget: Mapping[str, Any], burn: BurnSeries) -> dict[str, Any]:
    day, zone = budget.get("day"), budget.get("timezone")
    if not isinstance(day, str) or not isinstance(zone, str):
        return _unknown("no budget day yet")
    start, end = day_bounds(day, zone)
    points = burn.points if burn.day == day else []
    return {
        "known": True,
        "day_start": epoch_iso(start),
        "day_end": epoch_iso(end),
        "day_start_s": start,
        "day_end_s": end,
        "limit": budget.get("limit"),
        "observed_since": epoch_iso(points[0].at) if points else None,
        "points": [[p.at, p.spent, p.reserved] for p in points],
    }


def overview(
    *,
    mode: str,
    now: float,
    group_id: str,
    version: str,
    state: Mapping[str, Any],
    transitions: Sequence[Transition],
    burn: BurnSeries,
    lag: Lag | None,
    throughput: tuple[float | None, float],
    readiness: tuple[bool, list[str]] | None,
    replay_enabled: bool,
) -> dict[str, Any]:
    """The overview: ``state`` is ``/status`` of a processor (``mode`` ``live``) or the
    state topic's view (``standalone``: breaker, budget and cache only)."""
    live = mode == "live"
    budget = dict(state.get("budget", {}))
    breaker = dict(state.get("breaker", {}))
    day_start = None
    if isinstance(budget.get("day"), str) and isinstance(budget.get("timezone"), str):
        day_start = day_bounds(budget["day"], budget["timezone"])[0]
    today = [t for t in transitions if day_start is None or t.at >= day_start]
    rate, window_s = throughput
    processor = state.get("processor") if live else None
    health: dict[str, Any]
    if live and "health" in state:
        ready, reasons = readiness if readiness is not None else (None, [])
        health = {"known": True, **dict(state["health"]), "ready": ready, "reasons": reasons}
        health["holding"] = state.get("holding")
    else:
        health = _unknown(
            "the health window lives in a running processor's memory: open this console "
            "on a processor's ops port, or read its /status"
        )
    clay: dict[str, Any]
    if live and isinstance(state.get("clay"), Mapping):
        c = state["clay"]
        clay = {
            "known": True,
            "pending": c.get("pending"),
            "current_webhook": c.get("current_webhook"),
            "remaining_rows": c.get("remaining_rows"),
            "capacity_low": c.get("capacity_low"),
            "webhooks": c.get("webhooks"),
        }
    elif live:
        clay = _unknown("this processor runs provider_mode sync: no Clay webhooks")
    else:
        clay = _unknown(
            "webhook row counts live in a running Clay-mode processor: open this console "
            "on its ops port"
        )
    return {
        "mode": mode,
        "generated_at": epoch_iso(now),
        "group_id": group_id,
        "version": version,
        "replay_enabled": replay_enabled,
        "breaker": {
            **breaker,
            "transitions_today": [
                {"at": epoch_iso(t.at), "from": t.from_state, "to": t.to_state, "owner": t.owner}
                for t in today
            ],
        },
        "budget": {**budget, "burn": _burn_json(budget, burn)},
        "cache": dict(state.get("cache", {})),
        "throughput": {
            "known": rate is not None,
            "committed_per_s": None if rate is None else round(rate, 2),
            "window_s": round(window_s, 1),
            # Offsets, not leads: each committed transaction also takes one offset per
            # partition for its marker, so this reads a little above the leads' rate.
            "source": "the group's committed offsets on the input topic, transaction "
            "markers included",
            "this_process": None if processor is None else dict(processor),
        },
        "lag": _lag_json(lag),
        "health": health,
        "clay": clay,
    }
