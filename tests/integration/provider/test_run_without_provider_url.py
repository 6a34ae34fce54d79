"""``streamproc run`` with a provider that has its own URLs starts with no ``provider_url``:
the declarative example exactly as its comment says, and a plugin selected by name (real
broker, real HTTP, the command as a child process)."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson

from streamproc.settings import Settings
from streamproc.simulators.apis import ApiSimConfig, serve_api
from tests.integration.conftest import ROOT
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import settings_env


def _records(domains: list[str]) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (f"l{i}".encode(), orjson.dumps({"lead_id": f"l{i}", "email": f"pat@{d}", "domain": d}))
        for i, d in enumerate(domains)
    ]


@dataclass(frozen=True)
class _Done:
    returncode: int
    stderr: str


async def _run(env: dict[str, str], *args: str) -> _Done:
    """The command as a child process, awaited: the simulator it calls runs on this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamproc", "run", "--stop-when-idle-s", "2", *args,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return _Done(proc.returncode, stderr.decode())


async def test_run_with_the_person_match_example_and_no_provider_url(topics: Settings) -> None:
    """`run --config examples/providers/person_match.toml` with only the example's two
    variables set enriches the matches and dead-letters the miss as no_match (it exited 2,
    "provider_url is not set", before)."""
    await produce(topics, _records(["a.example", "b.example", "x.nomatch.test"]))
    async with serve_api(ApiSimConfig("person-match")) as url:
        env = settings_env(topics) | {"PERSON_API_URL": url, "PERSON_API_KEY": "test-key"}
        assert "STREAMPROC_PROVIDER_URL" not in env
        done = await _run(env, "--config", "examples/providers/person_match.toml")
    assert done.returncode == 0, done.stderr[-2000:]
    enriched = await read_all(topics, topics.topic_enriched)
    dlq = await read_all(topics, topics.topic_dlq)
    assert sorted((r.key or b"").decode() for r in enriched) == ["l0", "l1"], done.stderr[-3000:]
    assert [(r.key, r.headers["streamproc.error.class"]) for r in dlq] == [(b"l2", b"no_match")]


def _example_plugin_on_path(tmp_path: Path) -> str:
    """A PYTHONPATH on which ``example-domain`` is this tree's examples/custom_provider: its
    source and its entry point (the metadata pip would write), ahead of whatever version
    the shared environment has installed."""
    dist = tmp_path / "streamproc_example_provider-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: streamproc-example-provider\nVersion: 0.0.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[streamproc.providers]\nexample-domain = streamproc_example_provider:DomainProvider\n"
    )
    source = ROOT / "examples" / "custom_provider" / "src"
    return ":".join([str(ROOT), str(source), str(tmp_path)])


async def test_run_with_a_plugin_provider_and_no_provider_url(
    topics: Settings, tmp_path: Path
) -> None:
    """STREAMPROC_PROVIDER=example-domain (the example plugin) runs with no provider_url."""
    await produce(topics, _records(["a.example", "b.example"]))
    env = settings_env(topics, provider="example-domain")
    env["PYTHONPATH"] = _example_plugin_on_path(tmp_path)
    assert "STREAMPROC_PROVIDER_URL" not in env
    done = await _run(env)
    assert done.returncode == 0, done.stderr[-2000:]
    enriched = await read_all(topics, topics.topic_enriched)
    assert Counter(orjson.loads(r.value or b"")["enrichment"]["company"] for r in enriched) == {
        "A": 1,
        "B": 1,
    }


async def test_the_http_provider_still_needs_its_url(topics: Settings) -> None:
    """The `http` provider (the default) still refuses to start without provider_url: one
    line, exit 2."""
    done = await _run(settings_env(topics))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "streamproc: provider_url is not set: set STREAMPROC_PROVIDER_URL or --provider-url "
        "(e.g. http://127.0.0.1:8099/enrich from `streamproc mock-provider`)"
    ]
