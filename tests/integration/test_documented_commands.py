"""Every ``streamproc ...`` command that the README and the user guide show is run against
the test broker, and the command's documented output, where shown, is what it prints.

The commands run as documented, with this test's own topics and group put in the
environment in place of the documented names (``leads.raw`` becomes ``t<run>.leads.raw``),
in this process through the CLI's ``main`` (tests/integration/in_process.py: a child
process costs about 0.5 s of start-up per command). Long-running commands get a short
stop: ``run`` is given ``--stop-when-idle-s``; the servers (``mock-provider``,
``console``) run as child processes on a free port and are stopped with SIGTERM once they
answer. A command the pages
gain that is in no list below fails :func:`test_every_documented_command_has_a_plan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers
from streamproc.settings import Settings
from tests.integration.conftest import ROOT, delete_topics
from tests.integration.in_process import run_main
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import settings_env

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: A code block's command line: an optional ``$`` prompt and ``NAME=value`` assignments,
#: then ``streamproc`` and a subcommand; a trailing ``# comment`` is not part of it.
_BLOCK_LINE = re.compile(
    r"^\s*(?:\$\s+)?((?:[A-Z][A-Z0-9_]*=\S*\s+)*streamproc\s+[a-z].*?)\s*(?:#.*)?$"
)
#: An inline code span holding a command.
_INLINE = re.compile(r"`(streamproc\s+[a-z][^`]*)`")
#: A synopsis rather than a command: optional parts, alternatives, placeholders (FILE, N).
_SYNOPSIS = re.compile(r"[\[|…]|\.\.\.|(?<![\w=-])[A-Z][A-Z_]*\b(?!=)")


@dataclass(frozen=True)
class Documented:
    command: str
    #: The lines a ``$``-prompted example shows as the command's output.
    output: tuple[str, ...]
    where: str


def documented_commands() -> dict[str, Documented]:
    """Each distinct command of the pages (code blocks, and inline spans that are whole
    commands rather than synopses), with the output shown after it, if any."""
    found: dict[str, Documented] = {}
    for page in PAGES:
        where = page.relative_to(ROOT).as_posix()
        lines = page.read_text().splitlines()
        in_block, prompted, current = False, False, None
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                in_block, current = not in_block, None
                continue
            if not in_block:
                for span in _INLINE.findall(line):
                    if not _SYNOPSIS.search(span):
                        found.setdefault(span, Documented(span, (), f"{where}:{number}"))
                continue
            match = _BLOCK_LINE.match(line)
            if match:
                prompted = line.lstrip().startswith("$")
                current = match.group(1)
                found.setdefault(current, Documented(current, (), f"{where}:{number}"))
            elif prompted and current is not None and line.strip() and not line.startswith("$"):
                doc = found[current]
                found[current] = Documented(current, (*doc.output, line.strip()), doc.where)
    return found


#: Commands run by another test, which is named (its name is checked to exist).
ELSEWHERE = {
    "streamproc run --config examples/providers/person_match.toml": (
        "tests/integration/provider/test_run_without_provider_url.py",
        "test_run_with_the_person_match_example_and_no_provider_url",
    ),
}

#: Commands that cannot run here, and why.
NOT_RUNNABLE: dict[str, str] = {}

#: The commands this test runs itself (each exactly as the pages write it).
RUN_HERE = {
    "streamproc topics create",
    "streamproc config show",
    "streamproc run",
    "streamproc run --help",
    "STREAMPROC_MAX_IN_FLIGHT=-3 streamproc run",
    "STREAMPROC_MAX_INFLIGHT=64 streamproc run",
    "streamproc try",
    "streamproc state show",
    "streamproc group describe",
    "streamproc group reset-offsets --to-datetime 2026-12-01T00:00:00Z",
    "streamproc group reset-offsets --to-datetime 2026-12-01T00:00:00Z --execute",
    "streamproc group reset-offsets --to-latest --partition 3 --execute",
    "streamproc dlq stats",
    "streamproc dlq show",
    "streamproc dlq show --error-class provider_error --since 2h",
    "streamproc dlq show --partition 1 --offset 57",
    "streamproc replay --dry-run",
    "streamproc replay --key lead-000042",
    "streamproc replay --error-class provider_error --since 2h --rate 50",
    "streamproc replay",
    "streamproc mock-provider",
    "streamproc mock-provider --mode clay",
    "streamproc console",
    "streamproc mock-provider --mode email-finder --port 8101 --misses .corp.test",
    "streamproc mock-provider --mode person-match --port 8102",
    "streamproc mock-provider --mode email-verifier --port 8103 --misses .bad.test",
    "streamproc run --config examples/waterfall/email_waterfall.toml",
    "streamproc state show --json",
    "streamproc budget show",
    "streamproc budget show --json",
    'streamproc budget pause --reason "provider incident"',
    'streamproc budget resume --reason "provider fixed" --by ana',
    'streamproc budget set-limit 4000 --reason "finance: half today"',
}


def test_every_documented_command_has_a_plan() -> None:
    """Each command the pages show is run here, run by a named test, or listed as not
    runnable with the reason; and no plan names a command the pages no longer show."""
    documented = documented_commands()
    planned = RUN_HERE | set(ELSEWHERE) | set(NOT_RUNNABLE)
    unplanned = {c: d.where for c, d in documented.items() if c not in planned}
    assert not unplanned, f"documented commands no test runs (add them here): {unplanned}"
    assert not planned - set(documented), "plans for commands the pages no longer show"
    for command, (path, name) in ELSEWHERE.items():
        assert f"def {name}(" in (ROOT / path).read_text(), f"{command}: {path}::{name}"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _argv(command: str) -> tuple[dict[str, str], list[str]]:
    """The command's ``NAME=value`` assignments and its arguments after ``streamproc``."""
    words = shlex.split(command)
    at = words.index("streamproc")
    return dict(w.split("=", 1) for w in words[:at]), words[at + 1 :]


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[str]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


class Shell:
    """Runs documented commands in this process with the test's settings as environment."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.env = settings_env(settings)
        self.ran: set[str] = set()

    async def __call__(
        self, command: str, *extra: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> Ran:
        assignments, argv = _argv(command)
        self.ran.add(command)
        done = await run_main({**self.env, **(env or {}), **assignments}, [*argv, *extra], stdin)
        return Ran(done.returncode, done.stdout, done.stderr)

    @contextlib.contextmanager
    def serving(self, command: str, port: int, *extra: str) -> Iterator[Served]:
        """The long-running ``command`` as a child process (its output in a log file named
        after it); SIGTERM when the block ends. A ``--port`` in ``extra`` overrides the
        documented one (argparse keeps the last): a fixed port may be taken here."""
        self.ran.add(command)
        assignments, argv = _argv(command)
        log = self.logs / f"{'-'.join(argv).replace('/', '_')}.log"
        with log.open("w") as output:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamproc", *argv, *extra],
                env={**self.env, **assignments, "STREAMPROC_HTTP_PORT": str(port)},
                cwd=ROOT, stdout=output, stderr=output, text=True,
            )  # fmt: skip
        served = Served(proc, log)
        try:
            yield served
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


async def _answers(url: str, served: Served, timeout_s: float = 60) -> int:
    """The HTTP status of ``url`` once the child serves it (it must not exit first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if served.proc.poll() is not None:
                raise AssertionError(f"{served.proc.args!r} exited: {served.tail()}")
            try:
                return (await client.get(url)).status_code
            except httpx.TransportError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def _plant_dlq(settings: Settings, count: int) -> None:
    """``count`` provider_error records on the DLQ's partition 1 (offsets 0..count-1), keys
    lead-000000 onwards, failed now: what the operations guide's examples look for."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        now = datetime.now(UTC)
        for i in range(count):
            key = f"lead-{i:06d}"
            headers = encode_dlq_headers(
                [], Failure(ErrorClass.PROVIDER_ERROR, "HTTP 503", True),
                Origin(settings.topic_raw, 0, i, 0), 1, now,
            )  # fmt: skip
            value = orjson.dumps({"lead_id": key, "domain": f"{key}.example"})
            await producer.send(
                settings.topic_dlq, value=value, key=key.encode(), headers=headers, partition=1
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _replayed(settings: Settings) -> set[str]:
    """The keys of the DLQ records replayed onto leads.raw so far (its own leads are r*)."""
    reads = await read_all(settings, settings.topic_raw)
    return {key for r in reads if not (key := (r.key or b"").decode()).startswith("r")}


@pytest.fixture
async def shell(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Shell]:
    """A shell whose settings name fresh topics (4 partitions: the guide moves partition
    3) and a fresh group; the topics are deleted afterwards."""
    run = uuid.uuid4().hex[:10]
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"docs-{run}",
        topic_raw=f"t{run}.leads.raw",
        topic_enriched=f"t{run}.leads.enriched",
        topic_dlq=f"t{run}.leads.dlq",
        topic_parked=f"t{run}.leads.parked",
        topic_state=f"t{run}.state",
        topic_partitions=4,
        http_port=0,
        log_format="json",
        start_offset="earliest",
        budget_daily_credits=10**6,
    )
    yield Shell(settings, tmp_path)
    await delete_topics(settings)


#: Leads through ``run``; DLQ records planted (partition 1 reaches offset 57, as the
#: guide's ``dlq show --partition 1 --offset 57`` needs).
LEADS, DLQ_RECORDS = 6, 58


async def test_the_documented_commands_run(shell: Shell) -> None:
    """Each command of the plan above runs against the test broker and does what its page
    says: exit 0 and the output that shows it worked (or the documented error and exit 2)."""
    mock_port, clay_port, console_port = _free_port(), _free_port(), _free_port()
    provider_url = f"http://127.0.0.1:{mock_port}"
    shell.env |= {"STREAMPROC_PROVIDER_URL": f"{provider_url}/enrich",
                  "STREAMPROC_PROVIDER_API_KEY": "test-key"}  # fmt: skip
    s = shell.settings

    created = await shell("streamproc topics create")
    assert created.code == 0, created.err
    # The servers start while the in-process commands below run.
    with (
        shell.serving("streamproc mock-provider", 0, "--port", str(mock_port)) as mock,
        shell.serving(
            "streamproc mock-provider --mode clay",
            0,
            "--port",
            str(clay_port),
            # A mode named in prose: its one required flag, to a receiver never called.
            "--callback-url",
            "http://127.0.0.1:9/clay/callback",
        ) as clay,
        shell.serving("streamproc console", console_port) as console,
    ):
        shown = await shell("streamproc config show")
        assert shown.code == 0 and s.group_id in shown.out, shown.err

        helped = await shell("streamproc run --help")
        assert helped.code == 0 and "--stop-when-idle-s" in helped.out

        for command, documented in documented_commands().items():
            if command.startswith("STREAMPROC_"):  # the configuration page's two errors
                refused = await shell(command)
                assert refused.code == 2, refused.err
                assert documented.output and list(documented.output) == refused.err.splitlines()

        assert await _answers(f"{provider_url}/healthz", mock) == 200
        lead = {"lead_id": "try-1", "domain": "acme.example"}
        tried = await shell("streamproc try", stdin=orjson.dumps(lead).decode())
        assert tried.code == 0 and "try-1" in tried.out, tried.err

        await produce(s, [(f"r{i}".encode(), orjson.dumps({"lead_id": f"r{i}",
                      "domain": f"r{i}.example"})) for i in range(LEADS)])  # fmt: skip
        ran = await shell("streamproc run", "--stop-when-idle-s", "1")
        assert ran.code == 0, ran.err[-3000:]
        assert f"{LEADS} leads committed" in ran.out, ran.out
        assert len(await read_all(s, s.topic_enriched)) == LEADS

        state = await shell("streamproc state show")
        assert state.code == 0 and "budget" in state.out, state.err
        described = await shell("streamproc group describe")
        assert described.code == 0 and s.topic_raw in described.out, described.err
        plan = await shell("streamproc group reset-offsets --to-datetime 2026-12-01T00:00:00Z")
        assert plan.code == 0 and s.topic_raw in plan.out, plan.err
        moved = await shell(
            "streamproc group reset-offsets --to-datetime 2026-12-01T00:00:00Z --execute"
        )
        assert moved.code == 0, moved.err
        skipped = await shell("streamproc group reset-offsets --to-latest --partition 3 --execute")
        assert skipped.code == 0, skipped.err

        await _plant_dlq(s, DLQ_RECORDS)
        stats = await shell("streamproc dlq stats")
        assert stats.code == 0 and "provider_error" in stats.out, stats.err
        listed = await shell("streamproc dlq show")
        assert listed.code == 0 and "lead-000000" in listed.out, listed.err
        filtered = await shell("streamproc dlq show --error-class provider_error --since 2h")
        assert filtered.code == 0 and f"{DLQ_RECORDS} records match" in filtered.out, filtered.err
        one = await shell("streamproc dlq show --partition 1 --offset 57")
        assert one.code == 0 and "lead-000057" in one.out, one.err
        dry = await shell("streamproc replay --dry-run")
        assert dry.code == 0 and "provider_error" in dry.out, dry.err
        assert await _replayed(s) == set()
        keyed = await shell("streamproc replay --key lead-000042")
        assert keyed.code == 0, keyed.err
        assert await _replayed(s) == {"lead-000042"}
        paced = await shell("streamproc replay --error-class provider_error --since 2h --rate 50")
        assert paced.code == 0, paced.err
        assert await _replayed(s) == {f"lead-{i:06d}" for i in range(DLQ_RECORDS)}
        again = await shell("streamproc replay")
        assert again.code == 0, again.err

        await _waterfall_example(shell)
        await _spending_levers(shell)

        assert await _answers(f"http://127.0.0.1:{clay_port}/healthz", clay) == 200
        assert await _answers(f"http://127.0.0.1:{console_port}/console/", console) == 200
    for served in (mock, clay, console):
        assert served.proc.returncode == 0, served.tail()
    assert shell.ran == RUN_HERE, RUN_HERE - shell.ran


async def _waterfall_example(shell: Shell) -> None:
    """docs/waterfall.md's worked example: both simulators, then ``run --config`` with the
    example's URLs in the environment, on topics and a group of its own; then ``state show
    --json`` carries each provider's tallies."""
    s, run = shell.settings, uuid.uuid4().hex[:6]
    topics = {
        "STREAMPROC_GROUP_ID": f"{s.group_id}-wf",
        "STREAMPROC_TOPIC_RAW": f"{s.topic_raw}.wf{run}",
        "STREAMPROC_TOPIC_ENRICHED": f"{s.topic_enriched}.wf{run}",
        "STREAMPROC_TOPIC_DLQ": f"{s.topic_dlq}.wf{run}",
    }
    ours = Settings(**{**s.model_dump(), "group_id": topics["STREAMPROC_GROUP_ID"],
                       "topic_raw": topics["STREAMPROC_TOPIC_RAW"],
                       "topic_enriched": topics["STREAMPROC_TOPIC_ENRICHED"],
                       "topic_dlq": topics["STREAMPROC_TOPIC_DLQ"]})  # fmt: skip
    finder_port, people_port, verifier_port = _free_port(), _free_port(), _free_port()
    created = await shell("streamproc topics create", env=topics)
    assert created.code == 0, created.err
    with (
        shell.serving(
            "streamproc mock-provider --mode email-finder --port 8101 --misses .corp.test",
            0, "--port", str(finder_port),
        ) as finder,
        shell.serving(
            "streamproc mock-provider --mode person-match --port 8102",
            0, "--port", str(people_port),
        ) as people,
        shell.serving(
            "streamproc mock-provider --mode email-verifier --port 8103 --misses .bad.test",
            0, "--port", str(verifier_port),
        ) as verifier,
    ):  # fmt: skip
        checks = ((finder_port, finder), (people_port, people), (verifier_port, verifier))
        for port, served in checks:
            assert await _answers(f"http://127.0.0.1:{port}/stats", served) == 200
        leads = [
            {"lead_id": "wf-smb", "first_name": "Pat", "domain": "acme.example"},
            {"lead_id": "wf-corp", "first_name": "Ana", "domain": "big.corp.test",
             "email": "ana@big.corp.test"},
        ]  # fmt: skip
        await produce(ours, [(x["lead_id"].encode(), orjson.dumps(x)) for x in leads])
        urls = {
            "EMAIL_API_URL": f"http://127.0.0.1:{finder_port}",
            "EMAIL_API_KEY": "test-key",
            "PERSON_API_URL": f"http://127.0.0.1:{people_port}",
            "PERSON_API_KEY": "test-key",
        }
        with _environment(urls):
            ran = await shell(
                "streamproc run --config examples/waterfall/email_waterfall.toml",
                "--stop-when-idle-s", "1", env=topics,
            )  # fmt: skip
        assert ran.code == 0, ran.err[-3000:]
    enriched = {
        r.key.decode(): orjson.loads(r.value) for r in await read_all(ours, ours.topic_enriched)
    }
    assert set(enriched) == {"wf-smb", "wf-corp"}, enriched
    # One find stops each lead (the adaptive order may ask either provider first); the
    # finder knows no enterprise address, so that lead is found by people.
    steps = {k: {p["provider"]: p["outcome"] for p in v["enrichment_meta"]["providers"]}
             for k, v in enriched.items()}  # fmt: skip
    assert all(list(v.values()).count("found") == 1 for v in steps.values()), steps
    assert steps["wf-corp"]["people"] == "found", steps
    shown = await shell("streamproc state show --json")
    assert shown.code == 0, shown.err
    providers = {p["provider"] for p in orjson.loads(shown.out)["waterfall"]["providers"]}
    # Each provider a lead asked, and no other: Thompson sampling asks people first for
    # both leads one run in four, and then the finder has no tally (a CI run failed on
    # expecting both).
    asked = set().union(*steps.values())
    assert "people" in asked and providers == asked, (steps, shown.out)


async def _spending_levers(shell: Shell) -> None:
    """docs/operations.md's spending block, in its order: each change is what ``budget
    show`` then prints."""
    shown = await shell("streamproc budget show")
    assert shown.code == 0 and "spending; " in shown.out and " of 1000000" in shown.out, shown.out
    paused = await shell('streamproc budget pause --reason "provider incident"')
    assert paused.code == 0, paused.err
    state = await shell("streamproc budget show --json")
    assert state.code == 0 and orjson.loads(state.out)["paused"] is True, state.out
    resumed = await shell('streamproc budget resume --reason "provider fixed" --by ana')
    assert resumed.code == 0, resumed.err
    limited = await shell('streamproc budget set-limit 4000 --reason "finance: half today"')
    assert limited.code == 0, limited.err
    after = orjson.loads((await shell("streamproc budget show --json")).out)
    assert after["paused"] is False and after["limit"] == 4000, after


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment for the block (the example's file reads
    its URLs and keys from it)."""
    import os

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
