"""One real Kafka broker for the whole test run.

If a broker already answers at ``STREAMPROC_TEST_BOOTSTRAP`` (default 127.0.0.1:9092; CI
starts one with ``scripts/kafka-local start``), the tests use it; otherwise the fixture
starts one with the same script and stops it at the end. Each test gets its own topics and
group id, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streamproc.errors import KafkaSetupError
from streamproc.kafka.config import KafkaConnection, TopicsConfig
from streamproc.kafka.preflight import check_kafka
from streamproc.kafka.topics import create_topics
from streamproc.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("STREAMPROC_TEST_BOOTSTRAP", "127.0.0.1:9092")


def _answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a running broker (started here when none is).

    Under pytest-xdist every worker runs this fixture: a lock file in the run's temporary
    directory, which the workers share, lets the first one start the broker, and the last
    one done stops it (a worker stopping it under another's tests would fail them)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        started = _start_broker_unless_one_answers()
        try:
            yield BOOTSTRAP
        finally:
            if started:
                _stop_broker()
        return
    shared = tmp_path_factory.getbasetemp().parent
    users, ours = shared / "kafka-broker.users", shared / "kafka-broker.ours"
    with _locked(shared / "kafka-broker.lock"):
        if _start_broker_unless_one_answers():
            ours.touch()
        users.write_text(str(_count(users) + 1))
    try:
        yield BOOTSTRAP
    finally:
        with _locked(shared / "kafka-broker.lock"):
            left = _count(users) - 1
            users.write_text(str(left))
            if left == 0 and ours.exists():
                ours.unlink()
                _stop_broker()


def _broker_env() -> dict[str, str]:
    return {**os.environ, "KAFKA_PORT": BOOTSTRAP.rsplit(":", 1)[1]}


def _start_broker_unless_one_answers() -> bool:
    """Start a broker at ``BOOTSTRAP`` when none answers there; True if this started it."""
    if _answers(BOOTSTRAP):
        return False
    subprocess.run([str(ROOT / "scripts" / "kafka-local"), "start"], check=True, env=_broker_env())
    return True


def _stop_broker() -> None:
    subprocess.run([str(ROOT / "scripts" / "kafka-local"), "stop"], check=False, env=_broker_env())


def _count(path: Path) -> int:
    return int(path.read_text() or 0) if path.exists() else 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def configure(settings: Settings, **changes: Any) -> Settings:
    """A validated copy of ``settings`` with ``changes`` (model_copy would skip validation)."""
    return Settings.model_validate({**settings.model_dump(), **changes})


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[Settings]:
    """Settings naming fresh topics (3 partitions each) and a fresh group on the broker;
    the topics are deleted afterwards.

    Deleting them keeps the broker's partition count flat over a session: a broker left
    with the topics of every test (and of a developer's day of test runs: 15,000
    partitions) ran out of its heap mid-run."""
    run = uuid.uuid4().hex[:10]
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-{run}",
        topic_raw=f"t{run}.leads.raw",
        topic_enriched=f"t{run}.leads.enriched",
        topic_dlq=f"t{run}.leads.dlq",
        topic_parked=f"t{run}.leads.parked",
        topic_state=f"t{run}.state",
        topic_partitions=3,
        http_port=0,
        log_format="json",
        # The tests write their leads before the processor joins.
        start_offset="earliest",
    )
    await create_topics(TopicsConfig.from_settings(settings))
    await wait_for_topics(settings)
    yield settings
    await delete_topics(settings)


async def delete_topics(settings: Settings) -> None:
    """Delete the five topics of ``settings`` (best effort: a test may have deleted one)."""
    names = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq,
             settings.topic_parked, settings.topic_state]  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        async with asyncio.timeout(15):
            await admin.start()
            await admin.delete_topics(names)
    except (KafkaError, TimeoutError, OSError):
        pass  # the broker reclaims nothing, the test's outcome stands
    finally:
        await admin.close()


async def wait_for_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Return once the broker's metadata names every topic of ``settings``.

    CreateTopics returns when the controller has the topics; the broker that answers
    metadata learns of them a moment later, and until then ``run``'s start-up check says
    "topic ... does not exist". A fixed sleep lost that race now and then on a loaded
    machine; this asks the same check ``run`` asks until it passes.
    """
    names = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq,
             settings.topic_parked, settings.topic_state]  # fmt: skip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await check_kafka(KafkaConnection.from_settings(settings), topics=names)
            return
        except KafkaSetupError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
