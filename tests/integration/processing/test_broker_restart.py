"""The (single) broker killed with SIGKILL and started again on the same data, several
times while one processor runs: no partition is left behind.

A private broker on its own port (scripts/kafka-local with KAFKA_PORT/KAFKA_HOME), never
the shared one. Each cycle adds leads, lets the processor work on them, kills the broker
for longer than the consumer's session (aiokafka then logs "Heartbeat session expired -
marking coordinator dead"), and starts it again. At the end the group's lag is 0 on every
partition and every lead is in leads.enriched or leads.dlq exactly once. The stall watch
is set far beyond the test, so it cannot mend what the processor itself left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamproc.kafka.config import TopicsConfig
from streamproc.kafka.topics import create_topics
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import wait_for_topics
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess
from tests.integration.security.broker import (
    KAFKA_LOCAL,
    ROOT,
    _env,
    _free_base_port,
    _run,
    requires_java,
)

pytestmark = [requires_java, pytest.mark.slow]

CYCLES = 3
#: About two seconds of work at the test's pace (~300 leads/s): in flight when the broker
#: dies 1.5 s after they were written, and a drain after the last restart that is short.
LEADS_PER_CYCLE = 600
#: Longer than aiokafka's session timeout (10 s): the consumer marks its coordinator dead.
DOWN_S = 11.0


@dataclass
class PrivateBroker:
    home: Path
    port: int
    #: How long the last start took (seconds): a restart's part of the time it is away.
    start_s: float = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def extra(self) -> Path:
        return self.home.parent / "kafka-extra.properties"

    def start(self) -> None:
        began = time.monotonic()
        _run([str(KAFKA_LOCAL), "start"], ROOT, _env(self.home, self.port, self.extra))
        self.start_s = time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL, as a crashed broker: no controlled shutdown, no flush."""
        pid = int((self.home / "broker.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise AssertionError(f"broker pid {pid} survived SIGKILL")

    def stop(self) -> None:
        subprocess.run(
            [str(KAFKA_LOCAL), "stop"],
            cwd=ROOT,
            env=_env(self.home, self.port, self.extra),
            capture_output=True,
            check=False,
        )


#: A restarted broker cannot register until its controller has expired the killed
#: incarnation's session (9 s by default, most of a restart's 13 s here). The clients see
#: the broker away for DOWN_S either way.
FAST_RESTART = "broker.session.timeout.ms=4000\nbroker.heartbeat.interval.ms=1000\n"


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path / "kafka", _free_base_port())
    broker.home.mkdir()
    broker.extra.write_text(FAST_RESTART)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def _lags(settings: Settings) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.group_id)
        tps = [TopicPartition(settings.topic_raw, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(tps)
        return {
            tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps
        }
    finally:
        await consumer.stop()
        await admin.close()


async def test_broker_killed_and_restarted_leaves_no_partition_behind(
    private_broker: PrivateBroker, tmp_path: Path
) -> None:
    """Three SIGKILLs of the only broker mid-run, each restarted on the same data after
    the consumer's session expired: lag 0 on every partition, every lead once."""
    run = os.urandom(4).hex()
    settings = Settings(
        bootstrap_servers=private_broker.bootstrap,
        group_id=f"restart-{run}",
        topic_raw=f"r{run}.leads.raw",
        topic_enriched=f"r{run}.leads.enriched",
        topic_dlq=f"r{run}.leads.dlq",
        topic_parked=f"r{run}.leads.parked",
        topic_state=f"r{run}.state",
        topic_partitions=3,
        http_port=0,
        log_format="json",
    )
    await create_topics(TopicsConfig.from_settings(settings))
    await wait_for_topics(settings)
    keys: list[str] = []
    restarts: list[float] = []
    async with serve_mock_provider(
        MockProviderConfig(port=0, latency_ms=50, latency_jitter_ms=20, seed=11)
    ) as url:
        proc = ProcessorProcess(
            settings,
            tmp_path,
            "restart",
            provider_url=f"{url}/enrich",
            provider_max_retries=1,
            provider_backoff_base_s=0.01,
            provider_backoff_max_s=0.02,
            budget_daily_credits=10**9,
            breaker_failure_threshold=10_000,
            commit_interval_ms=100,
            # About 300 leads a second (16 calls of 50 ms at a time), as in the report:
            # each cycle's leads are still being worked on when the broker dies.
            max_in_flight=16,
            max_in_flight_per_partition=8,
            stall_after_s=3600,
        )
        try:
            proc.start()
            deadline = time.monotonic() + 60
            while "partitions.assigned" not in proc.log_path.read_text(errors="replace"):
                assert proc.alive() and time.monotonic() < deadline, proc.log_tail()
                await asyncio.sleep(0.2)
            for cycle in range(CYCLES):
                batch = [f"c{cycle}-{i}" for i in range(LEADS_PER_CYCLE)]
                keys += batch
                await produce(
                    settings,
                    [
                        (k.encode(), orjson.dumps({"lead_id": k, "domain": f"{k}.example"}))
                        for k in batch
                    ],
                )
                await asyncio.sleep(1.5)  # leads in flight and commits under way
                await asyncio.to_thread(private_broker.kill)
                # Away for about DOWN_S in all: a start that is slow (a loaded machine)
                # is part of the time away.
                await asyncio.sleep(max(DOWN_S - private_broker.start_s, 0.5))
                await asyncio.to_thread(private_broker.start)
                restarts.append(private_broker.start_s)
                assert proc.alive(), proc.log_tail()

            # A condition, not a timing target: the drain after the last restart (the leads
            # of every cycle not done before its kill) took 24-35 s with 1,200 leads a cycle,
            # more under load (printed below as drained_s). The limit leaves the test within
            # pytest's 300 s, so a partition left behind fails here with its lags and log.
            drain_limit_s = 180
            deadline = time.monotonic() + drain_limit_s
            lags: dict[int, int] = {}
            while time.monotonic() < deadline:
                try:
                    lags = await _lags(settings)
                except Exception:  # the group coordinator still loading after the restart
                    lags = {}
                if lags and not any(lags.values()):
                    break
                await asyncio.sleep(1)
            assert proc.alive(), proc.log_tail()
            assert lags and not any(lags.values()), (lags, proc.log_tail(60))
            drained_s = time.monotonic() - deadline + drain_limit_s
        finally:
            proc.stop()

    out = await read_all(settings, settings.topic_enriched)
    out += await read_all(settings, settings.topic_dlq)
    landed = Counter((r.key or b"").decode() for r in out)
    missing = set(keys) - set(landed)
    twice = [k for k, n in landed.items() if n > 1]
    assert not missing, f"{len(missing)} leads missing, e.g. {sorted(missing)[:5]}"
    assert not twice, f"{len(twice)} leads twice, e.g. {twice[:5]}"
    assert set(landed) == set(keys)
    log = proc.log_path.read_text(errors="replace")
    print(
        f"broker restarts: {CYCLES}, leads: {len(keys)}, "
        f"coordinator dead: {log.count('marking coordinator dead')}, "
        f"commit failures: {log.count('lane.commit_failed')}, "
        f"stand-downs: {log.count('lane.stood_down')}, "
        f"broker restarts took {[round(r, 1) for r in restarts]} s, drained in {drained_s:.1f} s"
    )


async def test_a_partition_left_paused_is_noticed_and_fetched_again(topics: Settings) -> None:
    """A partition paused with no reason (what a stand-down racing a rebalance used to
    leave): the stall watch reports it, readiness fails while it lasts, and its fetching
    is restarted, so every lead behind it is processed (the shared broker: nothing here
    stops it, so no private one is started for it)."""
    from streamproc.app import App
    from streamproc.logs import configure_logging

    configure_logging("INFO", "json")
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=3)) as url:
        settings = Settings.model_validate(
            {
                **topics.model_dump(),
                "provider_url": f"{url}/enrich",
                "commit_interval_ms": 100,
                "stall_after_s": 2.0,
            }
        )
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            processor = app.processor
            deadline = time.monotonic() + 60
            while len(processor.lane_status()) < 3 or not all(
                lane.open for lane in processor.lane_status()
            ):
                assert time.monotonic() < deadline and not running.done()
                await asyncio.sleep(0.1)
            stuck = TopicPartition(settings.topic_raw, 0)
            assert processor._consumer is not None
            processor._consumer.pause(stuck)
            keys = [f"s-{i}" for i in range(60)]
            await produce(
                settings,
                [
                    (k.encode(), orjson.dumps({"lead_id": k, "domain": f"{k}.example"}))
                    for k in keys
                ],
            )
            not_ready: list[str] = []
            deadline = time.monotonic() + 60
            while processor.stats.committed < len(keys):
                assert time.monotonic() < deadline, processor.lane_status()
                ready, reasons = app.readiness()
                if not ready:
                    not_ready += reasons
                await asyncio.sleep(0.05)
            assert processor.stats.stalls >= 1
            assert "partitions stalled: 0" in not_ready
            assert app.readiness()[0] is True, app.readiness()
        finally:
            app.request_stop()
            await asyncio.wait_for(running, timeout=60)
    landed = Counter(
        (r.key or b"").decode() for r in await read_all(settings, settings.topic_enriched)
    )
    assert landed == Counter(keys)
