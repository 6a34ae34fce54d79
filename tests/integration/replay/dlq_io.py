"""Helpers for the replayer's integration tests: a DLQ of every kind, state records, CLI runs."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers
from streamproc.resilience.budget import budget_day
from streamproc.resilience.claims import Claim, Settle
from streamproc.settings import Settings
from tests.integration.in_process import run_main
from tests.integration.kafka_io import Read
from tests.integration.procs import settings_env

NOT_RETRIABLE = {
    ErrorClass.INVALID_PAYLOAD,
    ErrorClass.PROVIDER_REJECTED,
    ErrorClass.UNREADABLE_RECORD,
    ErrorClass.OUTPUT_TOO_LARGE,
    ErrorClass.OUTPUT_REFUSED,
    ErrorClass.UNDECODABLE_PAYLOAD,
    ErrorClass.BELOW_FLOOR,
}
#: The failure time of every planted record: one hour ago, minutes apart per class.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@dataclass(frozen=True)
class Planted:
    key: str
    error_class: str
    attempt: int
    expected: str  # "replay" or "park"
    failed_at: datetime


def lead(key: str, domain: str | None = None) -> bytes:
    """A valid lead; its domain is ``<key>.example`` unless given (``x.fail.test`` fails)."""
    domain = domain or f"{key}.example"
    return orjson.dumps({"lead_id": key, "domain": domain, "email": f"x@{domain}"})


def every_kind() -> list[tuple[bytes, bytes, list[tuple[str, bytes]], Planted]]:
    """Two records per error class (attempt 1 and 3), one Spring and one Connect record."""
    out: list[tuple[bytes, bytes, list[tuple[str, bytes]], Planted]] = []
    for i, error_class in enumerate(ErrorClass):
        for attempt in (1, 3):
            key = f"{error_class.value}-{attempt}"
            at = BASE + timedelta(minutes=i)
            retriable = error_class not in NOT_RETRIABLE
            headers = encode_dlq_headers(
                [("traceparent", b"00-t-01")],
                Failure(error_class, f"{error_class.value} happened", retriable),
                Origin("leads.raw", 0, 100 + i, 1),
                attempt,
                at,
            )
            value = b"{not json" if error_class is ErrorClass.INVALID_PAYLOAD else lead(key)
            expected = "replay" if retriable and attempt < 3 else "park"
            out.append(
                (
                    key.encode(),
                    value,
                    headers,
                    Planted(key, error_class.value, attempt, expected, at),
                )
            )
    spring = [
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", struct.pack(">i", 1)),
        ("kafka_dlt-original-offset", struct.pack(">q", 4242)),
        ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
        ("kafka_dlt-exception-message", b"listener failed"),
    ]
    connect = [
        ("__connect.errors.topic", b"crm.contacts"),
        ("__connect.errors.partition", b"0"),
        ("__connect.errors.offset", b"77"),
        ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
        ("__connect.errors.exception.message", b"conversion failed"),
    ]
    now = datetime.now(UTC)
    out.append(
        (
            b"spring-1",
            lead("spring-1"),
            spring,
            Planted("spring-1", "unclassified", 1, "replay", now),
        )
    )
    out.append(
        (
            b"connect-1",
            lead("connect-1"),
            connect,
            Planted("connect-1", "unclassified", 1, "replay", now),
        )
    )
    return out


async def plant_dlq(
    settings: Settings,
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]], Planted]],
    *,
    partition: int | None = None,
) -> list[Planted]:
    """The records on the DLQ, by their keys' partitions or all on ``partition``."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.topic_dlq, value=value, key=key, headers=headers, partition=partition
            )
            for key, value, headers, _ in records
        ]
        for fut in futures:
            await fut
    finally:
        await producer.stop()
    return [planted for *_, planted in records]


async def write_state(settings: Settings, records: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Append records to the state topic as a processor would (budget keys on partition 0)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in records:
            partition = 0 if key.startswith("budget/") else 1
            payload = None if value is None else orjson.dumps(value)
            await producer.send_and_wait(
                settings.topic_state, value=payload, key=key.encode(), partition=partition
            )
    finally:
        await producer.stop()


def open_breaker(now: float | None = None) -> tuple[str, dict[str, Any]]:
    at = time.time() if now is None else now
    return "breaker/provider", {
        "v": 1, "state": "open", "opened_at": at, "failures": [], "owner": "x", "at": at,
    }  # fmt: skip


def budget_spend(
    settings: Settings, reserved: int, actual: int
) -> list[tuple[str, dict[str, Any]]]:
    day = budget_day(time.time(), settings.budget_timezone)
    claim = Claim(uuid.uuid4().hex, "x", day, reserved, settings.budget_daily_credits)
    return [
        (f"budget/{day}/{claim.claim_id}/c", claim.to_dict()),
        (f"budget/{day}/{claim.claim_id}/s", Settle(claim.claim_id, day, actual).to_dict()),
    ]


async def cli(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """``streamproc <argv>`` with the settings in the environment, run in this process
    (tests/integration/in_process.py: no child's start-up per command)."""
    return await run_main(settings_env(settings), argv)


def keys(reads: list[Read]) -> Counter[str]:
    return Counter((r.key or b"").decode() for r in reads)


def start_cli(settings: Settings, log_path: Path, *argv: str) -> subprocess.Popen[bytes]:
    """Start ``python -m streamproc <argv>`` as a child (to SIGKILL it); output to a log file."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streamproc", *argv],
            env=settings_env(settings),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )


def retriable_records(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]], Planted]]:
    """``count`` retriable first-attempt DLQ records with valid leads, keys L000, L001, ..."""
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        key = f"L{i:03d}"
        headers = encode_dlq_headers(
            [], Failure(ErrorClass.PROVIDER_TIMEOUT, "timeout", True), Origin("r", 0, i, 0), 1, now
        )
        planted = Planted(key, "provider_timeout", 1, "replay", now)
        out.append((key.encode(), lead(key), headers, planted))
    return out
