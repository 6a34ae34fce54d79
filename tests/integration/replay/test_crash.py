"""A replayer SIGKILLed mid-run and started again replays each record exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from streamproc.settings import Settings
from tests.integration.kafka_io import read_all
from tests.integration.replay.dlq_io import cli, keys, plant_dlq, retriable_records, start_cli

RECORDS = 120


async def test_sigkill_mid_run_then_restart_replays_each_record_once(
    topics: Settings, tmp_path: Path
) -> None:
    """`replay --rate 40` is SIGKILLed after some transactions committed; a second run
    finishes the job, and every DLQ record is in leads.raw exactly once."""
    await plant_dlq(topics, retriable_records(RECORDS))
    log_path = tmp_path / "replay.log"
    proc = start_cli(topics, log_path, "replay", "--rate", "40", "--no-progress")
    try:
        for _ in range(100):
            await asyncio.sleep(0.2)
            if len(await read_all(topics, topics.topic_raw)) >= 20:
                break
        assert proc.poll() is None, log_path.read_text()
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = len(await read_all(topics, topics.topic_raw))
    assert 20 <= before < RECORDS, "the kill must land mid-run"

    again = await cli(topics, "replay", "--json", "--no-progress")
    assert again.returncode == 0, again.stderr
    raw = keys(await read_all(topics, topics.topic_raw))
    assert raw == Counter({f"L{i:03d}": 1 for i in range(RECORDS)})
    third = await cli(topics, "replay", "--json", "--no-progress")
    assert '"read": 0' in third.stdout


async def test_sigterm_stops_after_the_current_transaction_and_says_so(
    topics: Settings, tmp_path: Path
) -> None:
    """SIGTERM during a paced run: exit 130, a summary of what was committed, and exactly
    that many records in leads.raw."""
    await plant_dlq(topics, retriable_records(60))
    log_path = tmp_path / "replay.log"
    proc = start_cli(topics, log_path, "replay", "--rate", "20", "--no-progress", "--json")
    try:
        for _ in range(100):
            await asyncio.sleep(0.2)
            if len(await read_all(topics, topics.topic_raw)) >= 10:
                break
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log_path.read_text()
    assert code == 130, output
    summary = output[output.index("{\n") :]
    assert '"stop_reason": "interrupted"' in summary
    raw = len(await read_all(topics, topics.topic_raw))
    assert f'"replayed": {raw},' in summary
    assert 10 <= raw < 60


async def test_a_second_replayer_fences_the_first_and_nothing_is_moved_twice(
    topics: Settings, tmp_path: Path
) -> None:
    """Two replayers at once: the second fences the first (exit 1, one clear line), and
    every record is in leads.raw exactly once."""
    await plant_dlq(topics, retriable_records(RECORDS))
    log_path = tmp_path / "first.log"
    first = start_cli(topics, log_path, "replay", "--rate", "30", "--no-progress")
    try:
        for _ in range(100):
            await asyncio.sleep(0.2)
            if len(await read_all(topics, topics.topic_raw)) >= 10:
                break
        second = await cli(topics, "replay", "--json", "--no-progress")
        assert second.returncode == 0, second.stderr
        code = await asyncio.to_thread(first.wait, 30)
    finally:
        if first.poll() is None:
            first.kill()
    output = log_path.read_text()
    assert code == 1, output
    assert "another replayer of group" in output
    raw = keys(await read_all(topics, topics.topic_raw))
    assert raw == Counter({f"L{i:03d}": 1 for i in range(RECORDS)})
