"""`dlq stats` and `state show` (--json) report exactly what the test put there."""

from __future__ import annotations

import time

import orjson

from streamproc.replay.filters import ReplayFilter
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.settings import Settings
from tests.integration.replay.dlq_io import (
    budget_spend,
    cli,
    every_kind,
    open_breaker,
    plant_dlq,
    write_state,
)


async def test_dlq_stats_json_matches_the_dlq(topics: Settings) -> None:
    """Counts by class, retriable, attempt and source, failure range and top messages match
    the planted records; after a filtered replay only the pending ones are counted."""
    planted = await plant_dlq(topics, every_kind())
    result = await cli(topics, "dlq", "stats", "--json")
    assert result.returncode == 0, result.stderr
    stats = orjson.loads(result.stdout)
    assert stats["total"] == len(planted) == 24
    assert stats["by_error_class"] == {
        **{p.error_class: 2 for p in planted if p.error_class != "unclassified"},
        "unclassified": 2,
    }
    assert stats["by_retriable"] == {"true": 12, "false": 10, "unknown": 2}
    assert stats["by_attempt"] == {"1": 13, "3": 11}
    assert stats["by_source"] == {"streamproc": 22, "spring": 1, "connect": 1}
    assert stats["replay_would"] == {"max_attempts": 3, "replay": 8, "park": 16}
    ours = [p for p in planted if p.error_class != "unclassified"]
    oldest = min(p.failed_at for p in ours).isoformat(timespec="milliseconds")
    assert stats["oldest_failure"] == oldest.replace("+00:00", "Z")
    messages = {(m["error_class"], m["message"]): m["count"] for m in stats["top_messages"]}
    assert messages[("provider_error", "provider_error happened")] == 2
    # Eleven classes of two records each fill the top ten; the Spring record's message
    # (one record) is read by the interop unit tests.
    assert len(messages) == 10 and set(messages.values()) == {2}

    filters = ReplayFilter(error_classes=frozenset({"internal"}))
    await Replayer(topics, ReplayOptions(filters=filters)).run()
    pending = orjson.loads((await cli(topics, "dlq", "stats", "--json")).stdout)
    assert pending["total"] == 22
    assert "internal" not in pending["by_error_class"]
    everything = orjson.loads((await cli(topics, "dlq", "stats", "--json", "--all")).stdout)
    assert everything["total"] == 24 + 22  # the originals and the put-back copies

    table = await cli(topics, "dlq", "stats")
    print(table.stdout)
    assert "22 records (pending for the replayer)" in table.stdout
    assert "provider_error happened" in table.stdout


async def test_state_show_json_matches_the_state_topic(topics: Settings) -> None:
    """An open breaker, 42 credits spent of a 60-credit claim and two cache entries are
    what `state show --json` reports."""
    now = time.time()
    await write_state(
        topics,
        [
            open_breaker(now),
            *budget_spend(topics, reserved=60, actual=42),
            ("cache/acme.example", {"data": {"company": "Acme"}, "stored_at": now}),
            ("cache/globex.example", {"data": {"company": "Globex"}, "stored_at": now}),
        ],
    )
    result = await cli(topics, "state", "show", "--json")
    assert result.returncode == 0, result.stderr
    state = orjson.loads(result.stdout)
    assert state["breaker"]["state"] == "open"
    assert state["breaker"]["reopens_at"] is not None
    assert state["budget"]["limit"] == topics.budget_daily_credits
    assert (state["budget"]["spent"], state["budget"]["reserved"]) == (42, 0)
    assert state["budget"]["remaining"] == topics.budget_daily_credits - 42
    assert state["budget"]["exhausted"] is False
    assert state["cache"]["entries"] == 2
    assert state["state_topic"]["records_restored"] == 5
    table = await cli(topics, "state", "show")
    print(table.stdout)
    assert "42 / 500 credits" in table.stdout
