"""`dlq stats` and `state show` (--json) report exactly what the test put there."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from streamproc.errors import ErrorClass
from streamproc.replay.config import ReplayConfig
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.settings import Settings
from tests.integration.replay.dlq_io import (
    NOT_RETRIABLE,
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
    # Two records per error class (attempts 1 and 3), a Spring and a Connect record.
    total = len(planted)
    assert total == 2 * len(ErrorClass) + 2
    assert stats["by_error_class"] == {
        **{p.error_class: 2 for p in planted if p.error_class != "unclassified"},
        "unclassified": 2,
    }
    not_retriable = 2 * len(NOT_RETRIABLE)
    assert stats["by_retriable"] == {
        "true": total - 2 - not_retriable, "false": not_retriable, "unknown": 2
    }  # fmt: skip
    assert stats["by_attempt"] == {
        str(n): sum(p.attempt == n for p in planted) for n in (1, 3)
    }  # fmt: skip
    assert stats["by_source"] == {"streamproc": total - 2, "spring": 1, "connect": 1}
    assert stats["replay_would"] == {
        "max_attempts": 3,
        "replay": sum(p.expected == "replay" for p in planted),
        "park": sum(p.expected == "park" for p in planted),
    }
    ours = [p for p in planted if p.error_class != "unclassified"]
    oldest = min(p.failed_at for p in ours).isoformat(timespec="milliseconds")
    assert stats["oldest_failure"] == oldest.replace("+00:00", "Z")
    messages = {(m["error_class"], m["message"]): m["count"] for m in stats["top_messages"]}
    # More classes of two records each than the top ten holds: ten of them, each with its
    # own message; the Spring record's message (one record) is read by the interop unit
    # tests.
    assert len(messages) == 10 and set(messages.values()) == {2}, messages
    planted_messages = {(p.error_class, f"{p.error_class} happened") for p in ours}
    assert set(messages) <= planted_messages, messages

    filters = ReplayFilter(error_classes=frozenset({"internal"}))
    await Replayer(ReplayConfig.from_settings(topics), ReplayOptions(filters=filters)).run()
    pending = orjson.loads((await cli(topics, "dlq", "stats", "--json")).stdout)
    assert pending["total"] == total - 2
    assert "internal" not in pending["by_error_class"]
    everything = orjson.loads((await cli(topics, "dlq", "stats", "--json", "--all")).stdout)
    assert everything["total"] == total + total - 2  # the originals and the put-back copies

    table = await cli(topics, "dlq", "stats")
    print(table.stdout)
    assert f"{total - 2} records (pending for the replayer)" in table.stdout
    assert "provider_error happened" in table.stdout


async def test_state_show_json_matches_the_state_topic(topics: Settings) -> None:
    """An open breaker, 42 credits spent of a 60-credit claim, two cache entries and two
    instances' waterfall hit totals (summed per provider) are what `state show --json`
    reports."""
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).date().isoformat()
    await write_state(
        topics,
        [
            open_breaker(now),
            *budget_spend(topics, reserved=60, actual=42),
            ("cache/acme.example", {"data": {"company": "Acme"}, "stored_at": now}),
            ("cache/globex.example", {"data": {"company": "Globex"}, "stored_at": now}),
            (f"waterfall/hits/smb/finder/{today}/i1", {"calls": 3, "hits": 2, "credits": 2}),
            (f"waterfall/hits/ent/finder/{today}/i2", {"calls": 1, "hits": 0, "credits": 1}),
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
    (finder,) = state["waterfall"]["providers"]
    assert finder["provider"] == "finder"
    assert finder["today"] == {
        "calls": 4,
        "hits": 2,
        "credits": 3,
        "fill_rate": 0.5,
        "credits_per_found": 1.5,
    }
    assert state["state_topic"]["records_restored"] == 7
    table = await cli(topics, "state", "show")
    print(table.stdout)
    assert "42 / 500 credits" in table.stdout
    assert "4 calls, 2 found, 3 cr, fill 50%, 1.5 cr/found" in table.stdout
