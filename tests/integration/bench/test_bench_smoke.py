"""Smoke test of the benchmark harness (``python -m bench``): tiny N, no timing asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("psutil", reason="the benchmark needs the [bench] extra")

from bench.config import BenchConfig
from bench.metrics import Row
from bench.runner import Bench

LEADS = 200


async def test_bench_rows_count_every_lead_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    """streamproc and kafka-ceiling rows report all 200 leads, once each, in order."""
    cfg = BenchConfig(
        bootstrap=kafka_bootstrap,
        leads=LEADS,
        partitions=3,
        max_in_flight=100,
        scenarios=("kafka-ceiling", "streamproc"),
        processes=1,  # the default (2) adds a streamproc-x2 row: not what this checks
        kafka_ceiling_leads=LEADS,  # its default (200,000) is a real ceiling, not a smoke test
        latency_duration_s=1.0,
        idle_s=2.0,
        results_dir=tmp_path,
    )
    async with Bench(cfg, log=lambda _: None) as bench:
        rows = await bench.run()
    by_name: dict[str, Row] = {row.scenario: row for row in rows}
    assert set(by_name) == {"kafka-ceiling", "streamproc"}
    for row in rows:
        assert row.skipped is None, (row.scenario, row.skipped, row.notes)
        assert row.leads == LEADS, (row.scenario, row.notes)
        assert row.duplicates == 0
        assert row.order_ok is True
        assert row.throughput is not None and row.throughput > 0
        assert row.peak_rss_mb is not None and row.peak_rss_mb > 0
        assert row.cpu_s_per_1k is not None and row.cpu_s_per_1k >= 0
        assert row.to_json()["scenario"] == row.scenario
    streamproc = by_name["streamproc"]
    # Latency is streamproc's (at half load); the ceiling drives Kafka flat out and says
    # what limited it instead.
    assert streamproc.p50_ms is not None and streamproc.p95_ms is not None
    assert streamproc.p99_ms is not None
    assert 0 <= streamproc.p50_ms <= streamproc.p95_ms <= streamproc.p99_ms
    assert streamproc.latency_leads is not None and streamproc.latency_leads >= 100
    assert any(note.startswith("limit: ") for note in by_name["kafka-ceiling"].notes)
    assert streamproc.dlq == 0
    assert streamproc.provider["calls"] == LEADS
    assert streamproc.provider["duplicates_charged"] == 0
