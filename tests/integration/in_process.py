"""Run a ``streamproc`` command in this process, as a shell would run it in a child.

A child process costs about 0.5 s of interpreter and import start-up per command (several
seconds on a loaded machine); the tests that check what a command prints run dozens of
them. Here :func:`streamproc.cli.main` runs in a thread of its own (it runs its own event
loop, as from a shell) with the given ``STREAMPROC_*`` environment in place of this
process's, its standard streams captured, and its exit code returned as a child's would
be. Tests that kill or signal the command, or need its process, start a child instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence

from streamproc.cli import main

__all__ = ["run_main"]


async def run_main(
    env: Mapping[str, str], argv: Sequence[str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``streamproc <argv>`` with the ``STREAMPROC_*`` variables of ``env`` (and no others)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        _streamproc_environment(env),
        _stdin(stdin),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = await asyncio.to_thread(_exit_code, list(argv))
    return subprocess.CompletedProcess(["streamproc", *argv], code, out.getvalue(), err.getvalue())


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's --help and usage errors exit
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1


@contextlib.contextmanager
def _streamproc_environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("STREAMPROC_")}
    for name in saved:
        del os.environ[name]
    os.environ.update({k: v for k, v in env.items() if k.startswith("STREAMPROC_")})
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("STREAMPROC_")]:
            del os.environ[name]
        os.environ.update(saved)


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved
