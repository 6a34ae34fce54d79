"""`streamproc replay` against the real broker: dry run, filters, recovery, the safety check."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
from collections import Counter

import httpx
import orjson
import pytest

from streamproc.app import App
from streamproc.replay.command import replay_command
from streamproc.replay.config import ReplayConfig
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.progress import NullProgress
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.replay.safety import ReplayRefused
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import read_all
from tests.integration.replay.dlq_io import (
    Planted,
    budget_spend,
    cli,
    every_kind,
    keys,
    open_breaker,
    plant_dlq,
    write_state,
)


def _would(planted: list[Planted]) -> tuple[int, int]:
    """How many of ``planted`` a replay moves to the input and to parked (max attempts 3):
    counted from what was planted, so a new error class does not change the test."""
    return (
        sum(p.expected == "replay" for p in planted),
        sum(p.expected == "park" for p in planted),
    )


async def test_dry_run_counts_every_class_and_moves_nothing(topics: Settings) -> None:
    """A DLQ of every error class plus Spring and Connect records: the dry run reports the
    right replay/park counts per class, and nothing is written or committed."""
    planted = await plant_dlq(topics, every_kind())
    out = io.StringIO()
    code = await replay_command(
        ReplayConfig.from_settings(topics),
        ReplayOptions(dry_run=True),
        as_json=True,
        progress=NullProgress(),
        file=out,
    )
    report = orjson.loads(out.getvalue())
    assert code == 0
    assert report["dry_run"] is True
    expected: dict[str, Counter[str]] = {}
    for p in planted:
        expected.setdefault(p.error_class, Counter())[p.expected] += 1
    assert {
        cls: {k: v for k, v in row.items() if v} for cls, row in report["by_error_class"].items()
    } == {cls: dict(c) for cls, c in expected.items()}
    replay, park = _would(planted)
    assert (report["replayed"], report["parked"], report["skipped"]) == (replay, park, 0)
    assert await read_all(topics, topics.topic_raw) == []
    assert await read_all(topics, topics.topic_parked) == []
    # nothing committed: a second dry run sees every record again
    again = await Replayer(ReplayConfig.from_settings(topics), ReplayOptions(dry_run=True)).run()
    assert again.read == len(planted)


async def test_dry_run_text_shows_the_table(topics: Settings) -> None:
    """The text summary of a dry run is the by-class table with totals."""
    replay, park = _would(await plant_dlq(topics, every_kind()))
    out = io.StringIO()
    await replay_command(
        ReplayConfig.from_settings(topics),
        ReplayOptions(dry_run=True),
        progress=NullProgress(),
        file=out,
    )
    text = out.getvalue()
    print(text)
    assert text.startswith("DRY RUN: nothing was written or committed.")
    assert "invalid_payload            0       2       0" in text
    assert "unclassified               2       0       0" in text
    assert re.search(rf"^total +{replay} +{park} +0$", text, re.M), text


async def test_filtered_replay_moves_exactly_the_matching_records(topics: Settings) -> None:
    """--error-class provider_error,rate_limited moves exactly those records; the others are
    put back, and a later unfiltered run moves each of them exactly once."""
    planted = await plant_dlq(topics, every_kind())
    chosen = {"provider_error", "rate_limited"}
    filters = ReplayFilter(error_classes=frozenset(chosen))
    first = await Replayer(ReplayConfig.from_settings(topics), ReplayOptions(filters=filters)).run()
    assert first.stop_reason == "end"
    raw = keys(await read_all(topics, topics.topic_raw))
    parked = keys(await read_all(topics, topics.topic_parked))
    assert raw == Counter(
        p.key for p in planted if p.error_class in chosen and p.expected == "replay"
    )
    assert parked == Counter(
        p.key for p in planted if p.error_class in chosen and p.expected == "park"
    )
    assert first.total("skip") == len(planted) - 4

    second = await Replayer(ReplayConfig.from_settings(topics), ReplayOptions()).run()
    assert (second.read, second.total("skip")) == (len(planted) - 4, 0)
    raw = keys(await read_all(topics, topics.topic_raw))
    parked = keys(await read_all(topics, topics.topic_parked))
    assert raw == Counter(p.key for p in planted if p.expected == "replay")
    assert parked == Counter(p.key for p in planted if p.expected == "park")
    # a third run finds nothing left
    third = await Replayer(ReplayConfig.from_settings(topics), ReplayOptions()).run()
    assert third.read == 0


async def test_key_since_and_limit_filters(topics: Settings) -> None:
    """--key moves one record; --since with --limit 2 stops after two matching records."""
    planted = await plant_dlq(topics, every_kind())
    by_key = await Replayer(
        ReplayConfig.from_settings(topics), ReplayOptions(filters=ReplayFilter(key=b"internal-1"))
    ).run()
    assert (by_key.total("replay"), by_key.total("park")) == (1, 0)
    assert keys(await read_all(topics, topics.topic_raw)) == Counter({"internal-1": 1})
    recent = [p for p in planted if p.error_class == "unclassified"]
    since = ReplayFilter(since=min(p.failed_at for p in recent))
    limited = await Replayer(
        ReplayConfig.from_settings(topics), ReplayOptions(filters=since, limit=1)
    ).run()
    assert limited.stop_reason == "limit"
    assert limited.total("replay") == 1
    assert len(await read_all(topics, topics.topic_raw)) == 2


async def test_after_recovery_retriable_leads_are_enriched_and_the_rest_parked(
    topics: Settings,
) -> None:
    """Replay every kind, then run the processor against a healthy provider: every
    retriable lead ends in leads.enriched (attempt 2), the rest in leads.parked."""
    planted = await plant_dlq(topics, every_kind())
    await Replayer(ReplayConfig.from_settings(topics), ReplayOptions()).run()
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=2, seed=5)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich", commit_interval_ms=100)
        await asyncio.wait_for(App(settings).run(stop_when_idle_s=1.5), timeout=60)
    enriched = await read_all(topics, topics.topic_enriched)
    assert keys(enriched) == Counter(p.key for p in planted if p.expected == "replay")
    assert {orjson.loads(r.value or b"")["enrichment_meta"]["attempt"] for r in enriched} == {2}
    assert keys(await read_all(topics, topics.topic_parked)) == Counter(
        p.key for p in planted if p.expected == "park"
    )
    assert await read_all(topics, topics.topic_dlq) != []  # the DLQ keeps its history
    assert len(await read_all(topics, topics.topic_dlq)) == len(planted)


async def test_refuses_while_breaker_open_unless_forced(topics: Settings) -> None:
    """With the breaker open in the state topic, `replay` exits 1 with one line and moves
    nothing; the dry run says a real run would refuse; --force replays."""
    planted = await plant_dlq(topics, every_kind())
    await write_state(topics, [open_breaker()])
    refused = await cli(topics, "replay", "--no-progress")
    assert refused.returncode == 1, refused.stderr
    assert "streamproc: refusing to replay: the circuit breaker is open until" in refused.stderr
    assert await read_all(topics, topics.topic_raw) == []
    dry = await cli(topics, "replay", "--dry-run", "--no-progress")
    assert dry.returncode == 0, dry.stderr
    assert "NOTE: a real run would refuse to start now: the circuit breaker is open" in dry.stdout
    forced = await cli(topics, "replay", "--force", "--json", "--no-progress")
    assert forced.returncode == 0, forced.stderr
    assert orjson.loads(forced.stdout)["replayed"] == _would(planted)[0]
    assert len(await read_all(topics, topics.topic_raw)) == sum(
        p.expected == "replay" for p in planted
    )


async def test_refuses_when_the_budget_is_spent(topics: Settings) -> None:
    """With today's budget spent in the state topic, a replay is refused before anything
    is read, and the refusal says when the budget resets."""
    await plant_dlq(topics, every_kind())
    limit = topics.budget_daily_credits
    await write_state(topics, budget_spend(topics, reserved=limit, actual=limit))
    with pytest.raises(ReplayRefused, match=r"daily credit budget is spent .* resets at"):
        await Replayer(ReplayConfig.from_settings(topics), ReplayOptions()).run()
    assert await read_all(topics, topics.topic_raw) == []


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_port_serves_replay_progress_while_it_runs(topics: Settings) -> None:
    """--metrics-port: while a paced replay runs, /metrics shows records replayed so far and
    the remaining count going down; the server is gone when the command returns."""
    planted = await plant_dlq(topics, every_kind())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = configure(topics, http_host="127.0.0.1")
    run = asyncio.ensure_future(
        replay_command(
            ReplayConfig.from_settings(settings),
            ReplayOptions(rate_per_s=4),
            progress=NullProgress(),
            file=io.StringIO(),
            metrics_port=port,
        )
    )
    seen: list[tuple[float | None, float | None]] = []
    async with httpx.AsyncClient() as client:
        while not run.done():
            with contextlib.suppress(httpx.TransportError):
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                seen.append(
                    (
                        _metric(text, 'streamproc_replay_records_total{action="replayed"}'),
                        _metric(text, "streamproc_replay_remaining_records"),
                    )
                )
            await asyncio.sleep(0.05)
        assert await run == 0
        with pytest.raises(httpx.TransportError):
            await client.get(f"http://127.0.0.1:{port}/metrics")
    print(f"replay metrics samples: {seen[:3]} ... {seen[-3:]}")
    replayed = [r for r, _ in seen if r is not None]
    remaining = [r for _, r in seen if r is not None]
    assert replayed and 0 < max(replayed) <= _would(planted)[0]
    assert remaining and min(remaining) < max(remaining)
