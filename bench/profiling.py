"""Where a profiled processor spent its time: py-spy's collapsed stacks or cProfile stats,
reduced to the top functions by own time and by inclusive time."""

from __future__ import annotations

import gzip
import io
import pstats
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = [
    "py_spy_available",
    "summarize_callgrind",
    "summarize_cprofile",
    "summarize_py_spy",
    "wrap_argv",
]


def py_spy_available() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def wrap_argv(kind: str, argv: list[str], out: Path) -> list[str]:
    """The command that runs ``argv`` (``python -m ...``) under the profiler ``kind``.

    py-spy is the parent (it spawns the program): attaching to a running pid needs ptrace
    rights that containers often withhold, spawning does not.
    """
    if kind == "py-spy":
        spy = py_spy_available()
        if spy is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        return [spy, "record", "--rate", "100", "--format", "raw", "-o", str(out), "--", *argv]
    if kind == "cprofile":
        python, dash_m, *rest = argv
        assert dash_m == "-m"
        return [python, "-m", "cProfile", "-o", str(out), "-m", *rest]
    if kind == "callgrind":
        # Instruction counts do not depend on the machine's load, unlike time: two drains
        # of different sizes, subtracted, give the instructions per lead.
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            raise RuntimeError("valgrind is not installed")
        return [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", *argv]
    raise ValueError(kind)


def _short(frame: str) -> str:
    # "handle (streamproc/processing/handler.py:140)" -> "handle (processing/handler.py:140)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    parts = Path(path).parts
    for anchor in ("site-packages", "streamproc", "lib"):
        if anchor in parts:
            idx = len(parts) - 1 - parts[::-1].index(anchor)
            path = "/".join(parts[idx + 1 :] if anchor != "streamproc" else parts[idx:])
            break
    return f"{name} ({path}:{line})" if line else f"{name} ({path})"


def _module(frame: str) -> str:
    """The package a frame belongs to: the first path component after site-packages/lib."""
    where = frame.partition(" (")[2].rstrip(")")
    path = where.rpartition(":")[0]
    parts = Path(path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "streamproc" in parts:
        idx = len(parts) - 1 - parts[::-1].index("streamproc")
        return "streamproc/" + "/".join(parts[idx + 1 : idx + 2])
    if "python3.11" in parts or "lib" in parts:
        name = parts[-1] if len(parts) else path
        return f"stdlib:{name.removesuffix('.py')}"
    return path or "?"


def _read(raw: Path) -> str:
    """A py-spy raw file, gzipped (``*.gz``, as kept in ``bench/profiles/raw/``) or not."""
    if raw.suffix == ".gz":
        return gzip.decompress(raw.read_bytes()).decode(errors="replace")
    return raw.read_text(errors="replace")


def summarize_py_spy(raw: Path, top: int = 25) -> dict[str, Any]:
    """Own and inclusive sample shares per function (and own share per package)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in _read(raw).splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        # Skip py-spy's thread header frames ("thread (0x...)") and the idle ones.
        frames = [f for f in frames if not f.startswith("thread (")]
        if not frames:
            continue
        total += count
        own[_short(frames[-1])] += count
        packages[_module(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "own_pct": share(own),
        "inclusive_pct": share(inclusive),
        "own_pct_by_package": share(packages),
    }


def summarize_cprofile(path: Path, top: int = 25) -> dict[str, Any]:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    by_own = out.getvalue()
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    return {"by_tottime": by_own, "by_cumulative": out.getvalue()}


def summarize_callgrind(path: Path) -> dict[str, Any]:
    """The total instructions (Ir) of a callgrind run, from its ``summary:`` line."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return {"instructions": int(line.split()[1])}
    return {}


def render_summary(raw: Path, title: str, top: int = 25) -> str:
    """The top entries of a py-spy raw profile as text (kept in ``bench/profiles/``)."""
    s = summarize_py_spy(raw, top)
    lines = [title, f"py-spy samples: {s['samples']} (100 Hz, idle excluded)", ""]
    for key, head in (
        ("own_pct", "own time, top functions (%)"),
        ("inclusive_pct", "inclusive time, top functions (%)"),
        ("own_pct_by_package", "own time by module (%)"),
    ):
        lines += [head, *(f"  {pct:5.1f}  {name}" for name, pct in s[key]), ""]
    return "\n".join(lines)


def frame_shares(raw: Path, names: list[str]) -> str:
    """The inclusive share of chosen frames: a name matches any frame whose function or
    file name contains it (``Request.__init__`` matches aiohttp's ``ClientRequest`` too)."""
    hits: Counter[str] = Counter()
    total = 0
    for line in _read(raw).splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = {_short(f) for f in stack.split(";") if " (" in f}
        for name in names:
            if any(name in frame for frame in frames):
                hits[name] += count
    lines = [f"inclusive share of chosen frames (% of {total} samples):"]
    lines += [f"  {100 * hits[n] / max(total, 1):5.1f}  {n}" for n in names]
    return "\n".join(lines)


#: Where a sample goes in :func:`split`: the first of these found in its stack.
_PARTS = (
    ("ProviderClient.call", "http: ProviderClient.call (httpx + aiohttp)"),
    ("StateStore", "state store: tail + send"),
    ("aiokafka", "kafka: aiokafka, lane commits"),
    ("PartitionLane.commit", "kafka: aiokafka, lane commits"),
    ("LeadHandler", "handler minus http: decode, guard, calls, driver, encode"),
    ("importlib", "start-up: imports"),
    ("Processor", "processor: fetch loop, lanes"),
)


def split(raw: Path) -> str:
    """The process's samples by part (each sample counted once, for the first part whose
    marker its stack contains; the rest is the event loop and other callbacks)."""
    parts: Counter[str] = Counter()
    total = 0
    for line in _read(raw).splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        part = next((name for marker, name in _PARTS if marker in stack), "event loop / other")
        parts[part] += count
    lines = [f"the process's samples by part (% of {total}):"]
    lines += [f"  {100 * n / max(total, 1):5.1f}  {name}" for name, n in parts.most_common()]
    return "\n".join(lines)


if __name__ == "__main__":
    # python -m bench.profiling <py-spy raw file> [title]           top entries
    # python -m bench.profiling <py-spy raw file> --frames a b ...   chosen frames' shares
    # python -m bench.profiling <py-spy raw file> --split           samples by part
    if len(sys.argv) > 2 and sys.argv[2] == "--split":
        print(split(Path(sys.argv[1])))
    elif len(sys.argv) > 2 and sys.argv[2] == "--frames":
        print(frame_shares(Path(sys.argv[1]), sys.argv[3:]))
    else:
        print(render_summary(Path(sys.argv[1]), " ".join(sys.argv[2:]) or sys.argv[1]))
