"""Clay mode, one output per input record, against the real broker: the same lead id
submitted twice, a replayed callback, an enriched output the topic refuses."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamproc.app import App
from streamproc.clay.callback import sign
from streamproc.clay.pending import PendingLead
from streamproc.settings import Settings
from streamproc.simulators.clay import ClaySimulatorConfig, serve_clay_simulator
from tests.integration.conftest import configure
from tests.integration.kafka_io import Read, produce, read_all

HEADER = "X-Streamproc-Signature"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clay(settings: Settings, webhook: str, secret: str, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "provider_mode": "clay",
        "clay_webhook_urls": webhook,
        "clay_callback_secret": secret,
        "clay_callback_auth": "hmac",
        "clay_callback_auth_header": HEADER,
        "clay_rate_per_s": 500,
        "clay_callback_wait_s": 2.0,
        # Every submission goes to Clay: an update of a lead must not be answered from
        # the first submission's cached enrichment.
        "cache_ttl_s": 0,
        "budget_daily_credits": 10**7,
        "commit_interval_ms": 100,
    }
    return configure(settings, **(base | changes))


@asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[App]:
    """An App in this process, ready for callbacks, stopped (and checked) at the end."""
    app = App(settings)
    run = asyncio.ensure_future(app.run())
    try:
        async with asyncio.timeout(30):
            while not (app.clay is not None and app.clay.ready):
                assert not run.done(), run.exception()
                await asyncio.sleep(0.1)
        yield app
    finally:
        app.request_stop()
        await asyncio.wait([run], timeout=30)
    assert run.done() and run.exception() is None, run


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def _landed(settings: Settings) -> tuple[list[Read], list[Read]]:
    return (
        await read_all(settings, settings.topic_enriched),
        await read_all(settings, settings.topic_dlq),
    )


def _pending(app: App) -> list[PendingLead]:
    assert app.clay is not None
    return list(app.clay.registry)


def _signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, {HEADER: sign(secret, body)}


async def test_the_same_lead_twice_gives_each_input_record_its_own_output(
    topics: Settings,
) -> None:
    """60 leads plus 15 of them again with a new e-mail, called back 3-4 s later: 75 inputs,
    75 outputs, each carrying its own input's e-mail, and every budget claim settled."""
    port = _free_port()
    secret = uuid.uuid4().hex
    sim_config = ClaySimulatorConfig(
        callback_url=f"http://127.0.0.1:{port}/clay/callback",
        port=0,
        callback_secret=secret,
        callback_auth_header=HEADER,
        min_delay_ms=3_000,
        max_delay_ms=4_000,
        callback_retries=8,
        seed=11,
    )
    first = {f"L{i}": f"p{i}@d{i}.example" for i in range(60)}
    updated = {f"L{i}": f"new{i}@d{i}.example" for i in range(0, 60, 4)}
    inputs = [(lead_id, email) for lead_id, email in first.items()] + list(updated.items())
    records = [
        (
            lead_id.encode(),
            orjson.dumps({"lead_id": lead_id, "email": email, "domain": email.split("@")[1]}),
        )
        for lead_id, email in inputs
    ]
    async with serve_clay_simulator(sim_config) as sim:
        # The simulator sends the bare secret (header mode).
        settings = _clay(
            topics, sim.webhook("w"), secret, http_port=port, clay_callback_auth="header"
        )
        async with _running(settings) as app:
            await produce(settings, records)

            await _until(
                lambda: sim.stats.rows_total == len(inputs) and sim.stats.in_flight == 0,
                60,
                "every row called back",
            )
            # The answers came after the commits; the outputs are readable by now or never.
            for _ in range(20):
                enriched, dlq = await _landed(settings)
                if len(enriched) + len(dlq) >= len(inputs):
                    break
                await asyncio.sleep(0.5)
            assert app.clay is not None
            pending_left = len(app.clay.registry)
        answers = Counter(sim.stats.callbacks_by_answer)

    enriched, dlq = await _landed(settings)
    state = await read_all(settings, settings.topic_state)
    assert dlq == []
    by_lead = Counter((r.key or b"").decode() for r in enriched)
    assert by_lead == Counter(lead_id for lead_id, _ in inputs)
    emails = Counter(
        (orjson.loads(r.value or b"{}")["lead_id"], orjson.loads(r.value or b"{}")["email"])
        for r in enriched
    )
    assert emails == Counter(inputs), "an input's output carries another input's e-mail"
    assert answers == {"enriched": len(inputs)}
    assert pending_left == 0
    budget = [r.key or b"" for r in state if (r.key or b"").startswith(b"budget/")]
    claims = {key for key in budget if key.endswith(b"/c")}
    settled = {key[:-2] + b"/c" for key in budget if key.endswith(b"/s")}
    assert len(claims) == len(inputs)
    assert claims == settled, f"{len(claims - settled)} claims never settled"
    print(f"same lead twice: {len(inputs)} inputs -> {len(enriched)} outputs, claims settled")


async def test_a_replayed_callback_publishes_nothing_and_a_foreign_one_is_refused(
    topics: Settings,
) -> None:
    """A captured callback of a finished submission, replayed while the lead's next
    submission is pending, publishes nothing and leaves that submission pending; a callback
    whose correlation id matches no submission is 409 and counted; each input one output."""
    secret = uuid.uuid4().hex
    # The simulator never calls back: the test sends the callbacks itself.
    sim_config = ClaySimulatorConfig(
        callback_url="http://127.0.0.1:9/unused", port=0, missing_rate=1.0, seed=1
    )
    v1 = orjson.dumps({"lead_id": "L1", "email": "old@acme.example", "domain": "acme.example"})
    v2 = orjson.dumps({"lead_id": "L1", "email": "new@acme.example", "domain": "acme.example"})
    async with (
        serve_clay_simulator(sim_config) as sim,
        httpx.AsyncClient() as client,
        _running(_clay(topics, sim.webhook("w"), secret, clay_deadline_s=300)) as app,
    ):
        settings = app.settings
        url = f"{app.ops.url}{settings.clay_callback_path}"
        await produce(settings, [(b"L1", v1)])
        await _until(lambda: len(_pending(app)) == 1, 30, "the first submission")
        (c1,) = [p.correlation_id for p in _pending(app)]
        body, headers = _signed(
            secret, {"lead_id": "L1", "correlation_id": c1, "data": {"title": "first"}}
        )
        first = await client.post(url, content=body, headers=headers)
        await produce(settings, [(b"L1", v2)])
        await _until(lambda: len(_pending(app)) == 1, 30, "the second submission")
        (c2,) = [p.correlation_id for p in _pending(app)]
        replayed = await client.post(url, content=body, headers=headers)
        foreign_body, foreign_headers = _signed(
            secret, {"lead_id": "L1", "correlation_id": uuid.uuid4().hex, "data": {"x": 1}}
        )
        foreign = await client.post(url, content=foreign_body, headers=foreign_headers)
        bare_body, bare_headers = _signed(secret, {"lead_id": "L1", "data": {"x": 1}})
        bare = await client.post(url, content=bare_body, headers=bare_headers)
        still_pending = [p.correlation_id for p in _pending(app)]
        body2, headers2 = _signed(
            secret, {"lead_id": "L1", "correlation_id": c2, "data": {"title": "second"}}
        )
        second = await client.post(url, content=body2, headers=headers2)
        assert app.clay is not None
        counts = dict(app.clay.counts)

    assert c1 != c2
    assert (first.status_code, first.json()["status"]) == (200, "published")
    assert (replayed.status_code, replayed.json()) == (200, {"status": "duplicate"})
    assert still_pending == [c2]
    assert foreign.status_code == 409
    assert bare.status_code == 400
    assert (second.status_code, second.json()["status"]) == (200, "published")
    assert counts["callback_correlation_mismatch"] == 1
    enriched, dlq = await _landed(settings)
    assert dlq == []
    published = [orjson.loads(r.value or b"{}") for r in enriched]
    assert [(v["email"], v["enrichment"]) for v in published] == [
        ("old@acme.example", {"title": "first"}),
        ("new@acme.example", {"title": "second"}),
    ]


async def test_an_enriched_output_the_topic_refuses_goes_to_the_dlq_as_output_too_large(
    topics: Settings,
) -> None:
    """leads.enriched takes at most 30,000-byte messages, leads.dlq 20,000: two callbacks
    with 60 kB of data, among four that fit, are published to the DLQ as output_too_large
    with their coordinates and original bytes (the 26 kB one cut to fit the DLQ, and
    marked so); every input lands exactly once."""
    secret = uuid.uuid4().hex
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": size})
                for topic, size in ((topics.topic_enriched, "30000"), (topics.topic_dlq, "20000"))
            ]
        )
    finally:
        await admin.close()
    sim_config = ClaySimulatorConfig(
        callback_url="http://127.0.0.1:9/unused", port=0, missing_rate=1.0, seed=1
    )
    raw = {f"L{i}": orjson.dumps({"lead_id": f"L{i}", "domain": f"d{i}.example"}) for i in range(6)}
    raw["L3"] = orjson.dumps({"lead_id": "L3", "domain": "d3.example", "notes": "n" * 26_000})
    async with (
        serve_clay_simulator(sim_config) as sim,
        httpx.AsyncClient() as client,
        _running(_clay(topics, sim.webhook("w"), secret, clay_deadline_s=300)) as app,
    ):
        settings = app.settings
        url = f"{app.ops.url}{settings.clay_callback_path}"
        await produce(settings, [(k.encode(), v) for k, v in raw.items()])
        await _until(lambda: len(_pending(app)) == len(raw), 30, "every submission")
        submissions = {p.lead_id: p for p in _pending(app)}

        async def call_back(lead_id: str) -> httpx.Response:
            data = {"notes": "x" * 60_000} if lead_id in ("L0", "L3") else {"title": "cto"}
            payload = {
                "lead_id": lead_id,
                "correlation_id": submissions[lead_id].correlation_id,
                "data": data,
            }
            body, headers = _signed(secret, payload)
            return await client.post(url, content=body, headers=headers)

        answers = await asyncio.gather(*(call_back(lead_id) for lead_id in raw))
        again = await call_back("L0")
        assert app.clay is not None
        left = len(app.clay.registry)

    assert [a.status_code for a in answers] == [200] * len(raw)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert left == 0
    enriched, dlq = await _landed(settings)
    landed = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert landed == Counter(list(raw))
    assert sorted((r.key or b"").decode() for r in dlq) == ["L0", "L3"]
    for record in dlq:
        lead_id = (record.key or b"").decode()
        origin = submissions[lead_id].origin
        assert record.headers["streamproc.error.class"] == b"output_too_large"
        assert record.headers["streamproc.original.topic"] == settings.topic_raw.encode()
        assert record.headers["streamproc.original.partition"] == str(origin.partition).encode()
        assert record.headers["streamproc.original.offset"] == str(origin.offset).encode()
    dlq_of = {(r.key or b"").decode(): r for r in dlq}
    assert dlq_of["L0"].value == raw["L0"]
    assert "streamproc.value.truncated" not in dlq_of["L0"].headers
    cut = dlq_of["L3"]
    assert cut.headers["streamproc.value.truncated"] == b"true"
    assert cut.headers["streamproc.original.size"] == str(len(raw["L3"])).encode()
    assert 0 < len(cut.value or b"") < 20_000 and raw["L3"].startswith(cut.value or b"-")
    print(f"oversize: {len(raw)} inputs -> {len(enriched)} enriched + {len(dlq)} dlq")
