"""Child processes and what they cost: spawn, reap with ``wait4`` (exact peak RSS and CPU
seconds from the kernel's rusage), and sample RSS and CPU over time with psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

__all__ = ["Child", "Monitor", "Sample", "spawn"]


@dataclass
class Child:
    """One child process; ``rusage`` is filled in when it has been reaped."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started_at: float
    returncode: int | None = None
    #: Kernel accounting at exit: ``ru_maxrss`` (bytes; includes the forking parent's RSS
    #: before exec, so not used as the peak) and CPU seconds (user + system).
    max_rss_bytes: int | None = None
    cpu_s: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.returncode is None

    def reap(self) -> bool:
        """Collect the exit status if the child has exited; True once it has."""
        if self.returncode is not None:
            return True
        try:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.returncode = self.popen.returncode if self.popen.returncode is not None else -1
            return True
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.returncode  # so Popen never waits for it again
        self.max_rss_bytes = usage.ru_maxrss * 1024  # Linux reports KiB
        self.cpu_s = usage.ru_utime + usage.ru_stime
        return True

    async def wait(self, timeout_s: float) -> bool:
        """Wait for the child to exit by itself; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while not self.reap():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; harmless if it already exited."""
        if self.reap():
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        if await self.wait(grace_s):
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGKILL)
        await self.wait(10.0)

    def report(self) -> dict[str, Any]:
        """The last ``{"bench": {...}}`` line the child printed on stdout, or {}."""
        found: dict[str, Any] = {}
        with contextlib.suppress(OSError):
            for line in self.stdout_path.read_bytes().splitlines():
                # Faust routes stdout through its logging, which prefixes every line.
                at = line.find(b'{"bench"')
                if at >= 0:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        found = orjson.loads(line[at:].rstrip())["bench"]
        return found

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = log_dir / f"{name}.out"
    stderr_path = log_dir / f"{name}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    return Child(name, popen, stdout_path, stderr_path, time.time())


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of a process: wall time (epoch s), RSS (bytes), CPU seconds so far."""

    t: float
    rss: int
    cpu_s: float
    #: The kernel's RSS high-water mark of this process image (VmHWM), 0 where unknown.
    hwm: int = 0


@dataclass
class Monitor:
    """Samples RSS and CPU of named processes every ``interval_s`` while running."""

    interval_s: float = 0.2
    series: dict[str, list[Sample]] = field(default_factory=dict)
    _procs: dict[str, psutil.Process] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def watch(self, label: str, pid: int | None) -> None:
        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            self._procs[label] = psutil.Process(pid)
            self.series.setdefault(label, [])
            self._sample_one(label, self._procs[label], time.time())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        self.sample()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def sample(self) -> None:
        now = time.time()
        for label, proc in list(self._procs.items()):
            self._sample_one(label, proc, now)

    def _sample_one(self, label: str, proc: psutil.Process, now: float) -> None:
        try:
            with proc.oneshot():
                cpu = proc.cpu_times()
                rss = proc.memory_info().rss
        except psutil.Error:
            self._procs.pop(label, None)
            return
        self.series[label].append(Sample(now, rss, cpu.user + cpu.system, _vm_hwm(proc.pid)))

    def cpu_between(self, label: str, t0: float, t1: float) -> float | None:
        """CPU seconds ``label`` used between wall times t0 and t1 (linear interpolation)."""
        series = self.series.get(label) or []
        if len(series) < 2:
            return None
        return _cpu_at(series, t1) - _cpu_at(series, t0)

    def peak_rss(self, label: str) -> int | None:
        """The highest RSS seen: VmHWM where the kernel gives it, else the sampled RSS."""
        series = self.series.get(label) or []
        return max((max(s.rss, s.hwm) for s in series), default=None)


def _vm_hwm(pid: int) -> int:
    """``VmHWM`` of /proc/<pid>/status in bytes (Linux), 0 if unavailable.

    Unlike ``ru_maxrss`` from ``wait4``, it is the peak of the current program image only:
    Linux carries the pre-``exec`` peak (the forking parent's RSS) into ``ru_maxrss``.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_at(series: list[Sample], t: float) -> float:
    times = [s.t for s in series]
    i = bisect_left(times, t)
    if i <= 0:
        return series[0].cpu_s
    if i >= len(series):
        return series[-1].cpu_s
    a, b = series[i - 1], series[i]
    if b.t == a.t:
        return b.cpu_s
    return a.cpu_s + (b.cpu_s - a.cpu_s) * (t - a.t) / (b.t - a.t)
