"""What every benchmark child program shares: its settings (``BENCH_*`` env) and helpers.

Kept free of Kafka and HTTP imports so that each program pays only for what it uses, and
free of anything newer than the peers' own virtualenv has (the Quix app may run under
another interpreter: orjson and the standard library only).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from streamproc.timestamps import utc_iso

__all__ = [
    "AppEnv",
    "emit",
    "enriched_value",
    "idempotency_key",
    "run_main",
]


@dataclass(frozen=True, slots=True)
class AppEnv:
    """A child program's settings, from ``BENCH_*`` environment variables."""

    bootstrap: str
    topic_in: str
    topic_out: str
    group: str
    provider_url: str
    #: Stop once this many leads were published (and committed, where transactional).
    expected: int
    #: Stop when nothing was consumed for this long (a safety net: expected should win).
    idle_s: float
    commit_interval_ms: int
    max_in_flight: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> AppEnv:
        return cls(
            bootstrap=environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092"),
            topic_in=environ.get("BENCH_TOPIC_IN", ""),
            topic_out=environ.get("BENCH_TOPIC_OUT", ""),
            group=environ.get("BENCH_GROUP", "bench"),
            provider_url=environ.get("BENCH_PROVIDER_URL", ""),
            expected=int(environ.get("BENCH_EXPECTED", "0")),
            idle_s=float(environ.get("BENCH_IDLE_S", "10")),
            commit_interval_ms=int(environ.get("BENCH_COMMIT_INTERVAL_MS", "200")),
            max_in_flight=int(environ.get("BENCH_MAX_IN_FLIGHT", "1000")),
        )


def enriched_value(lead: dict[str, Any], data: dict[str, Any], credits: int, app: str) -> bytes:
    """The output record every pipeline publishes: streamproc's enriched-lead shape."""
    return orjson.dumps(
        {
            **lead,
            "enrichment": data,
            "enrichment_meta": {
                "source": "provider",
                "credits": credits,
                "attempt": 1,
                "enriched_at": utc_iso(datetime.now(UTC), "auto"),
                "processor": {"name": app, "version": "bench"},
            },
        }
    )


def idempotency_key(lead: Mapping[str, Any]) -> bytes:
    return str(lead["lead_id"]).encode()


def emit(**fields: Any) -> None:
    """One JSON line on stdout for the benchmark driver (the last such line wins)."""
    sys.stdout.write(orjson.dumps({"bench": fields}).decode() + "\n")
    sys.stdout.flush()


def run_main(coro: Coroutine[Any, Any, None]) -> None:
    """Run a program's main coroutine on uvloop when installed, as ``streamproc run`` does."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.run(coro)
        return
    asyncio.run(coro)


class Progress:
    """Counts outputs and says when a program should stop (expected reached, or idle)."""

    def __init__(self, env: AppEnv) -> None:
        self._env = env
        self.done = 0
        self.consumed = 0
        self._last_change = time.monotonic()

    def consumed_one(self, n: int = 1) -> None:
        self.consumed += n
        self._last_change = time.monotonic()

    def published(self, n: int = 1) -> None:
        self.done += n
        self._last_change = time.monotonic()

    def finished(self) -> bool:
        if self._env.expected and self.done >= self._env.expected:
            return True
        return time.monotonic() - self._last_change > self._env.idle_s
