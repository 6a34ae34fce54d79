"""The console API's inputs (filters from a query or a body) and its overview JSON."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from importlib import resources

import pytest

from streamproc.console.history import BurnSeries, Transition, day_bounds
from streamproc.console.payload import (
    Lag,
    filters_from_query,
    overview,
    replay_options_from_body,
    show_options_from_query,
)
from streamproc.errors import ConfigError
from streamproc.replay.filters import ReplayFilter

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_query_filters_are_the_cli_filters() -> None:
    """The same names and rules as the flags: repeatable and comma lists, durations, N+."""
    got = filters_from_query(
        {
            "error_class": ["rate_limited,internal"],
            "retriable": ["true", "unknown"],
            "attempt": ["2+"],
            "since": ["2h"],
            "key": ["lead-1"],
            "until": [""],  # an empty field of the form is no filter
        },
        NOW,
    )
    expected = ReplayFilter.parse(
        error_classes=["rate_limited", "internal"],
        retriable=["true", "unknown"],
        attempt="2+",
        since="2h",
        key="lead-1",
        now=NOW,
    )
    assert got == expected
    assert filters_from_query({}, NOW) == ReplayFilter()


def test_a_bad_filter_is_the_cli_line() -> None:
    """A typo in a class suggests the name, as ``--error-class`` does."""
    with pytest.raises(ConfigError, match="did you mean rate_limited"):
        filters_from_query({"error_class": ["rate_limted"]}, NOW)
    with pytest.raises(ConfigError, match="give one value"):
        filters_from_query({"key": ["a", "b"]}, NOW)


def test_a_page_is_bounded() -> None:
    """skip/limit/all/max_attempts parsed; a page of more than 200 records is refused."""
    options = show_options_from_query(
        {"skip": ["40"], "limit": ["20"], "all": ["true"], "max_attempts": ["5"]}, NOW
    )
    assert (options.skip, options.limit, options.include_all, options.max_attempts) == (
        40,
        20,
        True,
        5,
    )
    assert show_options_from_query({}, NOW).limit == 20
    with pytest.raises(ConfigError, match="at most 200"):
        show_options_from_query({"limit": ["500"]}, NOW)
    with pytest.raises(ConfigError, match="true or false"):
        show_options_from_query({"all": ["maybe"]}, NOW)


def test_a_replay_body_needs_an_explicit_dry_run_and_known_filters() -> None:
    """``dry_run`` must be a boolean; unknown filter names are refused; no follow, no force."""
    options = replay_options_from_body(
        {"filters": {"error_class": "rate_limited"}, "max_attempts": "4", "limit": None,
         "dry_run": True},
        NOW,
    )  # fmt: skip
    assert options.dry_run and not options.follow and not options.force
    assert (options.max_attempts, options.limit) == (4, None)
    assert options.filters.error_classes == frozenset({"rate_limited"})
    for body in ({}, {"dry_run": "yes"}, [], {"dry_run": True, "filters": {"class": "x"}}):
        with pytest.raises(ConfigError):
            replay_options_from_body(body, NOW)


def _status(day: str = "2026-11-30") -> dict[str, object]:
    return {
        "breaker": {"state": "closed", "reopens_at": None, "failures_in_window": 1},
        "budget": {"day": day, "timezone": "UTC", "limit": 500, "spent": 30, "reserved": 25,
                   "remaining": 445, "exhausted": False, "resets_at": "2026-12-01T00:00:00Z"},
        "cache": {"entries": 3},
    }  # fmt: skip


def test_standalone_overview_says_what_it_cannot_know() -> None:
    """Health and Clay are ``known: false`` with a reason; lag rows and total from offsets;
    transitions before the budget day's start are left out."""
    start, _ = day_bounds("2026-11-30", "UTC")
    burn = BurnSeries()
    burn.add(start + 3600, "2026-11-30", 30, 25)
    body = overview(
        mode="standalone",
        now=start + 7200,
        group_id="g",
        version="1",
        state=_status(),
        transitions=[
            Transition(start - 60, None, "open", "a"),
            Transition(start + 60, "open", "closed", "a"),
        ],
        burn=burn,
        lag=Lag("raw", {0: (5, 9), 1: (None, 4), 2: (7, 7)}),
        throughput=(None, 0.0),
        readiness=None,
        replay_enabled=False,
    )
    assert body["health"]["known"] is False and "processor" in body["health"]["why"]
    assert body["clay"]["known"] is False
    assert [t["to"] for t in body["breaker"]["transitions_today"]] == ["closed"]
    assert body["lag"]["total"] == 4 + 4 + 0
    assert [p["lag"] for p in body["lag"]["partitions"]] == [4, 4, 0]
    burn_json = body["budget"]["burn"]
    assert burn_json["points"] == [[start + 3600, 30, 25]]
    assert (burn_json["day_start_s"], burn_json["limit"]) == (start, 500)
    assert body["throughput"]["known"] is False
    assert body["budget"]["remaining"] == 445


def test_live_overview_carries_health_readiness_clay_and_counters() -> None:
    """A processor's status adds health with readiness, Clay capacity and its counters."""
    state = {
        **_status(),
        "health": {"status": "healthy", "success_rate": 0.98},
        "holding": 0,
        "clay": {"pending": 4, "current_webhook": "w1", "remaining_rows": 900,
                 "capacity_low": False, "webhooks": []},
        "processor": {"committed": 10, "enriched": 9, "dlq": 1},
    }  # fmt: skip
    body = overview(
        mode="live",
        now=time.time(),
        group_id="g",
        version="1",
        state=state,
        transitions=[],
        burn=BurnSeries(),
        lag=Lag("raw", {}, error="cannot read: KafkaError"),
        throughput=(2.5, 30.0),
        readiness=(False, ["consumer not in the group"]),
        replay_enabled=True,
    )
    assert body["health"] == {
        "known": True, "status": "healthy", "success_rate": 0.98, "ready": False,
        "reasons": ["consumer not in the group"], "holding": 0,
    }  # fmt: skip
    assert body["clay"]["remaining_rows"] == 900
    assert body["throughput"]["committed_per_s"] == 2.5
    assert body["throughput"]["this_process"]["committed"] == 10
    assert body["lag"] == {"known": False, "why": "cannot read: KafkaError", "topic": "raw"}


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    """The packaged page names no other host: no CDN, font or script from the internet."""
    static = resources.files("streamproc.console").joinpath("static")
    names = sorted(p.name for p in static.iterdir())
    assert names == ["console.css", "console.js", "index.html"]
    for name in names:
        text = static.joinpath(name).read_text()
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)
        assert urls == [] or set(urls) == {"http://www.w3.org"}, (name, urls)
