"""The processor and the replayer with exactly the ACLs docs/security.md lists, and one fewer.

Against the auth broker's standard authorizer (KRaft ``StandardAuthorizer``), as the SASL
PLAIN users ``proc`` and ``replayer``, who may do only what the test grants them. Topics
and groups are new per test, so the grants of one test give nothing to another.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from typing import Any

import orjson
import pytest

from streamproc.app import App
from streamproc.kafka.acls import Operation, ResourceType, processor_acls, replayer_acls
from streamproc.replay.config import ReplayConfig
from streamproc.replay.progress import NullProgress
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.auth.acl_admin import grant
from tests.integration.auth.broker import USERS, AuthBroker
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import settings_env
from tests.integration.security.broker import requires_java

pytestmark = requires_java


def as_user(topics: Settings, broker: AuthBroker, user: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": broker.users,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": user,
        "sasl_password": USERS[user],
        **changes,
    }
    return configure(topics, **values)


def lead(key: str, domain: str) -> tuple[bytes, bytes]:
    return key.encode(), orjson.dumps({"lead_id": key, "email": f"x@{domain}", "domain": domain})


async def test_processor_and_replayer_run_with_only_the_documented_acls(
    auth_topics: Settings, auth_broker: AuthBroker
) -> None:
    """`run` enriches and dead-letters, then `replay` moves the DLQ, each user holding only
    the ACLs of its command."""
    await grant(auth_broker.plaintext, "User:proc", processor_acls(auth_topics))
    await grant(auth_broker.plaintext, "User:replayer", replayer_acls(auth_topics))
    good = [lead(f"ok-{i}", f"ok{i}.example") for i in range(6)]
    failing = [lead(f"fail-{i}", f"c{i}.fail.test") for i in range(3)]
    await produce(auth_topics, [*good, *failing])
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=5)) as url:
        proc = as_user(
            auth_topics,
            auth_broker,
            "proc",
            provider_url=f"{url}/enrich",
            provider_max_retries=0,
            breaker_failure_threshold=1000,
            cache_ttl_s=0,
        )
        await asyncio.wait_for(App(proc).run(stop_when_idle_s=2.0), timeout=90)
    enriched = Counter(r.key for r in await read_all(auth_topics, auth_topics.topic_enriched))
    dlq = Counter(r.key for r in await read_all(auth_topics, auth_topics.topic_dlq))
    assert enriched == Counter(k for k, _ in good)
    assert dlq == Counter(k for k, _ in failing)

    replayer = as_user(auth_topics, auth_broker, "replayer")
    report = await Replayer(
        ReplayConfig.from_settings(replayer), ReplayOptions(), progress=NullProgress()
    ).run()
    assert report.total("replay") == len(failing), report
    raw = Counter(r.key for r in await read_all(auth_topics, auth_topics.topic_raw))
    # provider_error is retriable: each failed lead is back in leads.raw beside its original
    assert all(raw[key] == 2 for key, _ in failing), raw


@pytest.mark.parametrize(
    ("command", "resource", "name", "operation", "named"),
    [
        ("run", ResourceType.TOPIC, "{raw}", Operation.READ, "Read on topic '{raw}'"),
        ("run", ResourceType.TOPIC, "{enriched}", Operation.WRITE, "Write on topic '{enriched}'"),
        ("run", ResourceType.GROUP, "{group}", Operation.READ, "Read on group '{group}'"),
        ("run", ResourceType.TRANSACTIONAL_ID, "{group}.", Operation.WRITE,
         "Write on transactional id '{group}.' prefix"),
        ("replay", ResourceType.TOPIC, "{dlq}", Operation.WRITE, "Write on topic '{dlq}'"),
    ],
)  # fmt: skip
async def test_a_missing_acl_fails_start_up_in_one_line_naming_it(
    auth_topics: Settings,
    auth_broker: AuthBroker,
    command: str,
    resource: ResourceType,
    name: str,
    operation: Operation,
    named: str,
) -> None:
    """With one ACL of the list missing, the command exits at start-up with one line that
    names the permission, the principal and how to grant it."""
    names = {
        "raw": auth_topics.topic_raw,
        "enriched": auth_topics.topic_enriched,
        "dlq": auth_topics.topic_dlq,
        "group": auth_topics.group_id,
    }
    user = "proc" if command == "run" else "replayer"
    every = processor_acls(auth_topics) if command == "run" else replayer_acls(auth_topics)
    gone = (resource, name.format(**names), operation)
    acls = [a for a in every if (a.resource, a.name, a.operation) != gone]
    assert len(acls) == len(every) - 1
    await grant(auth_broker.plaintext, f"User:{user}", acls)
    settings = as_user(auth_topics, auth_broker, user, provider_url="http://127.0.0.1:9/enrich")
    args = ["run"] if command == "run" else ["replay", "--force"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streamproc", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert done.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("streamproc: "), done.stderr
    expected = named.format(**names)
    assert expected in lines[0], lines[0]
    assert f"user {user!r}" in lines[0] and f"--allow-principal User:{user}" in lines[0]
    assert USERS[user] not in done.stderr


async def test_write_refused_past_the_preflight_is_one_line_too(
    auth_topics: Settings, auth_broker: AuthBroker
) -> None:
    """Describe granted where Write is needed passes the preflight's coordinator lookup; the
    producer's start is then refused, still in one line naming the transactional id."""
    every = replayer_acls(auth_topics)
    txn = next(a for a in every if a.resource is ResourceType.TRANSACTIONAL_ID)
    acls = [a for a in every if a is not txn]
    acls.append(replace(txn, operation=Operation.DESCRIBE))
    await grant(auth_broker.plaintext, "User:replayer", acls)
    settings = as_user(auth_topics, auth_broker, "replayer")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streamproc", "replay", "--force"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert f"transactional id '{txn.name}' (needs Write)" in lines[0], lines[0]


async def test_without_describe_configs_the_processor_starts_with_one_warning(
    auth_topics: Settings, auth_broker: AuthBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """DescribeConfigs is recommended, not required (docs/security.md): without it `run`
    starts and enriches, after one warning line naming the permission and its grant."""
    from streamproc.logs import configure_logging

    every = processor_acls(auth_topics)
    acls = [a for a in every if a.operation is not Operation.DESCRIBE_CONFIGS]
    assert len(acls) == len(every) - 2
    await grant(auth_broker.plaintext, "User:proc", acls)
    good = [lead(f"ok-{i}", f"ok{i}.example") for i in range(3)]
    await produce(auth_topics, good)
    configure_logging("INFO", "json")
    try:
        async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=5)) as url:
            proc = as_user(
                auth_topics, auth_broker, "proc", provider_url=f"{url}/enrich", cache_ttl_s=0
            )
            await asyncio.wait_for(App(proc).run(stop_when_idle_s=2.0), timeout=90)
        err = capsys.readouterr().err
    finally:
        configure_logging("INFO", "json")
    enriched = Counter(r.key for r in await read_all(auth_topics, auth_topics.topic_enriched))
    assert enriched == Counter(k for k, _ in good)
    warnings = [line for line in err.splitlines() if "kafka.acl_missing_optional" in line]
    assert len(warnings) == 1, err
    assert f"DescribeConfigs on topic '{auth_topics.topic_enriched}'" in warnings[0]
    assert f"DescribeConfigs on topic '{auth_topics.topic_dlq}'" in warnings[0]
    assert "--allow-principal User:proc" in warnings[0]
