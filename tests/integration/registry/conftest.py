"""A real schema registry (Apicurio, Confluent-compatible API) for the whole test run.

If ``STREAMPROC_TEST_REGISTRY`` names one that answers (CI starts one with
``scripts/registry-local start`` and exports its URL), the tests use it; otherwise the
fixture starts one on a free port with the same script (about 3 s, once per session) and
stops it at the end. Tests name their own topics, hence their own subjects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "registry-local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class LocalRegistry:
    """One registry process of ``scripts/registry-local`` on its own port and directory."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.env = {**os.environ, "REGISTRY_PORT": str(self.port), "REGISTRY_HOME": str(home)}
        self.url = f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    def start(self) -> None:
        subprocess.run([str(SCRIPT), "start"], check=True, env=self.env, timeout=120)

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop"], check=False, env=self.env, timeout=60)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this registry's JVM (the pid its script recorded)."""
        os.kill(int((self.home / "registry.pid").read_text()), signum)


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Confluent-compatible API of a running registry (started here when none is)."""
    given = os.environ.get("STREAMPROC_TEST_REGISTRY")
    if given and answers(given):
        yield given.rstrip("/")
        return
    registry = LocalRegistry(tmp_path_factory.mktemp("registry"))
    registry.start()
    try:
        yield registry.url
    finally:
        registry.stop()
