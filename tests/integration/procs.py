"""Run ``streamproc run`` as a real child process, to kill it like production would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from streamproc.settings import Settings


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    defaults = Settings.model_construct()
    values = {**settings.model_dump(), **extra}
    for name, value in values.items():
        if value is None or (name not in extra and value == getattr(defaults, name, object())):
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | tuple | dict):
            env[f"STREAMPROC_{name.upper()}"] = orjson.dumps(value, default=str).decode()
        else:
            env[f"STREAMPROC_{name.upper()}"] = str(getattr(value, "value", value))
    env["STREAMPROC_LOG_FORMAT"] = "json"
    return env


class ProcessorProcess:
    """One ``streamproc run`` child; its stderr goes to a log file for post-mortems."""

    def __init__(self, settings: Settings, log_dir: Path, name: str, **extra: Any) -> None:
        self.env = settings_env(settings, **extra)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *args: str) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamproc", "run", *args],
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=30)

    def logged(self, event: str) -> bool:
        """Whether the process has logged ``event`` (a JSON log line's ``event``) so far."""
        try:
            return f'"event":"{event}"' in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def until(predicate: Callable[[], Awaitable[bool] | bool], timeout_s: float) -> None:
    """Return once ``predicate`` holds (polled every 0.2 s without blocking the event loop,
    which may serve the test's provider); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = predicate()
        if held if isinstance(held, bool) else await held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {predicate}")
        await asyncio.sleep(0.2)


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


async def wait_for_no_members(settings: Settings, timeout_s: float = 60) -> None:
    """Wait until the consumer group has no members: a SIGKILLed process stays a member,
    holding its partitions, until its session times out. A run started before that gets
    only part of the topic, and with --stop-when-idle-s it can call itself idle early."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            (response,) = await admin.describe_consumer_groups([settings.group_id])
            members = response.groups[0][5]
            if not members:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"group {settings.group_id} still has members after {timeout_s}s")
    finally:
        await admin.close()
