"""Clay mode end to end: the real broker, the Clay simulator, ``streamproc run`` as a child
process restarted in the middle, duplicate and missing callbacks, forged callbacks."""

from __future__ import annotations

import asyncio
import functools
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from streamproc.clay.callback import sign
from streamproc.redact import webhook_id
from streamproc.settings import CallbackAuth, Settings
from streamproc.simulators.clay import (
    ClaySimulatorConfig,
    ClaySimulatorStats,
    serve_clay_simulator,
)
from tests.integration.conftest import configure
from tests.integration.kafka_io import Read, produce, read_all
from tests.integration.procs import ProcessorProcess

LEADS = 1_000
WEBHOOKS = 4
#: Rows per webhook, set low so that 1,000 leads use three webhooks fully and a fourth.
ROW_LIMIT = 300
#: Short, so that missing callbacks time out within the test; longer than the restart.
DEADLINE_S = 8.0
#: The processor is stopped (SIGTERM) once Clay has this many rows, and started again.
RESTART_AT_ROWS = 450
HEADER = "X-Streamproc-Signature"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.2)


async def _forge(client: httpx.AsyncClient, url: str, secret: str, lead_id: str) -> list[int]:
    """Send callbacks a forger could: unsigned, signed with another key, a valid signature
    on a changed body, and the bare secret in hmac mode. Returns the statuses."""
    body = orjson.dumps({"lead_id": lead_id, "data": {"forged": True}})
    honest = orjson.dumps({"lead_id": lead_id, "data": {"company": "x"}})
    attempts = [
        {},
        {HEADER: sign("not-the-secret", body)},
        {HEADER: sign(secret, honest)},
        {HEADER: secret},
    ]
    statuses = []
    for headers in attempts:
        response = await client.post(url, content=body, headers=headers)
        statuses.append(response.status_code)
    return statuses


async def _landed(settings: Settings) -> tuple[list[Read], list[Read]]:
    return (
        await read_all(settings, settings.topic_enriched),
        await read_all(settings, settings.topic_dlq),
    )


def _rows_reached(stats: ClaySimulatorStats, rows: int) -> bool:
    return stats.rows_total >= rows


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not in /metrics")


@pytest.mark.slow
async def test_clay_mode_publishes_every_lead_exactly_once_through_a_restart(
    topics: Settings, tmp_path: Path
) -> None:
    """1,000 leads through Clay mode with duplicate, missing and error callbacks and a
    restart: each lead lands once (enriched, or DLQ provider_error / provider_timeout as the
    simulator's callbacks say), webhook rows equal budget claims, webhooks rotate at the
    limit, and forged callbacks are refused."""
    port = _free_port()
    callback_url = f"http://127.0.0.1:{port}/clay/callback"
    secret = uuid.uuid4().hex
    token = uuid.uuid4().hex
    sim_config = ClaySimulatorConfig(
        callback_url=callback_url,
        port=0,
        callback_secret=secret,
        callback_auth=CallbackAuth.HMAC,
        callback_auth_header=HEADER,
        webhook_token=token,
        min_delay_ms=100,
        max_delay_ms=1_500,
        duplicate_rate=0.15,
        missing_rate=0.05,
        error_rate=0.03,
        rate_limit_rate=0.02,
        retry_after_s=0.1,
        webhook_row_limit=ROW_LIMIT,
        callback_retries=8,
        seed=20261126,
    )
    records = []
    raw: dict[str, bytes] = {}
    for i in range(LEADS):
        lead_id = f"L{i}"
        raw[lead_id] = orjson.dumps(
            {"lead_id": lead_id, "email": f"p{i}@d{i}.example", "domain": f"d{i}.example"}
        )
        records.append((lead_id.encode(), raw[lead_id]))

    async with serve_clay_simulator(sim_config) as sim, httpx.AsyncClient() as client:
        urls = [sim.webhook(f"w{i}") for i in range(WEBHOOKS)]
        settings = configure(
            topics,
            provider_mode="clay",
            http_port=port,
            clay_webhook_urls=",".join(urls),
            clay_webhook_auth_token=token,
            clay_callback_secret=secret,
            clay_callback_auth="hmac",
            clay_callback_auth_header=HEADER,
            clay_webhook_row_limit=ROW_LIMIT,
            clay_webhook_headroom_rows=0,
            clay_deadline_s=DEADLINE_S,
            clay_rate_per_s=150,
            clay_burst=20,
            clay_orphan_grace_s=1.0,
            clay_sweep_interval_s=0.5,
            clay_callback_wait_s=3.0,
            budget_daily_credits=10**7,
            commit_interval_ms=100,
        )
        await produce(settings, records, headers=[("traceparent", b"00-clay-01")])
        proc = ProcessorProcess(settings, tmp_path, "clay", clay_webhook_urls=",".join(urls))
        forged: list[int] = []
        try:
            proc.start()
            await _wait_for(lambda: sim.stats.rows_total >= 100, 60)
            forged += await _forge(client, callback_url, secret, "L1")
            await _wait_for(lambda: sim.stats.rows_total >= RESTART_AT_ROWS, 60)
            assert await asyncio.to_thread(proc.terminate, 60) == 0, proc.log_tail()
            rows_at_stop = sim.stats.rows_total
            proc.start()

            async def all_landed() -> bool:
                enriched, dlq = await _landed(settings)
                return len(enriched) + len(dlq) >= LEADS and sim.stats.in_flight == 0

            for _ in range(90):
                if await all_landed():
                    break
                assert proc.alive(), proc.log_tail()
                await asyncio.sleep(1.0)
            else:
                raise AssertionError(f"not all leads landed: {sim.stats.to_json()}")
            forged += await _forge(client, callback_url, secret, "L2")
            # Checks of the receiver on the restarted process, with valid signatures.
            finished_l3 = next(
                (r.key or b"").decode().rsplit("/", 1)[1]
                for r in await read_all(settings, settings.topic_state)
                if (r.key or b"").startswith(b"clay/pending/L3/")
            )
            dup_body = orjson.dumps(
                {"lead_id": "L3", "correlation_id": finished_l3, "data": {"again": True}}
            )
            dup = await client.post(
                callback_url, content=dup_body, headers={HEADER: sign(secret, dup_body)}
            )
            unknown_body = orjson.dumps(
                {"lead_id": "no-such-lead", "correlation_id": "c0ffee", "data": {"a": 1}}
            )
            unknown = await client.post(
                callback_url, content=unknown_body, headers={HEADER: sign(secret, unknown_body)}
            )
            garbage = await client.post(
                callback_url, content=b"{nope", headers={HEADER: sign(secret, b"{nope")}
            )
            huge = await client.post(callback_url, content=b"x" * 300_000)
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            status = (await client.get(f"http://127.0.0.1:{port}/status")).json()
            assert await asyncio.to_thread(proc.terminate, 60) == 0, proc.log_tail()
        finally:
            proc.stop()
        stats = sim.stats
        answers = dict(stats.answers)

    enriched, dlq = await _landed(settings)
    state = await read_all(settings, settings.topic_state)

    # --- every lead exactly once ---------------------------------------------------------
    landed = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert set(landed) == set(raw), f"missing {sorted(set(raw) - set(landed))[:5]}"
    assert [k for k, n in landed.items() if n > 1] == []
    dlq_class = {(r.key or b"").decode(): r.headers["streamproc.error.class"].decode() for r in dlq}
    enriched_ids = {(r.key or b"").decode() for r in enriched}

    # --- and in the place the simulator's callbacks say ------------------------------------
    def expected(lead_id: str) -> str:
        said = [a.split(":", 1)[1] for a in answers.get(lead_id, [])]
        if "enriched" in said:
            return "enriched"
        return "provider_error" if "error_row" in said else "provider_timeout"

    outcome = {k: "enriched" for k in enriched_ids} | dlq_class
    wrong = {k: (outcome[k], expected(k)) for k in raw if outcome[k] != expected(k)}
    assert wrong == {}, f"{len(wrong)} leads in the wrong place, e.g. {list(wrong.items())[:5]}"
    timeouts = [r for r in dlq if r.headers["streamproc.error.class"] == b"provider_timeout"]
    assert len(timeouts) >= stats.planned["missing"] > 0
    for record in timeouts:
        lead_id = (record.key or b"").decode()
        assert record.value == raw[lead_id]
        assert record.headers["traceparent"] == b"00-clay-01"
        assert record.headers["streamproc.error.retriable"] == b"true"
        assert record.headers["streamproc.attempt"] == b"1"
        assert record.headers["streamproc.original.topic"] == settings.topic_raw.encode()
    for record in enriched:
        value = orjson.loads(record.value or b"{}")
        assert "forged" not in value["enrichment"] and "again" not in value["enrichment"]
        assert value["enrichment_meta"]["source"] == "provider"
        assert value["domain"] == value["enrichment"]["domain"]

    # --- duplicates ignored, forgeries refused, bad callbacks 4xx ---------------------------
    duplicates_ignored = stats.callbacks_by_answer["duplicate"]
    assert duplicates_ignored >= stats.planned["duplicate"] > 0
    assert forged == [401] * 8
    assert (dup.status_code, dup.json()) == (200, {"status": "duplicate"})
    assert (unknown.status_code, garbage.status_code, huge.status_code) == (404, 400, 413)
    assert _metric(metrics, "streamproc_clay_callbacks_total", result="unauthorized") >= 4
    assert _metric(metrics, "streamproc_clay_callbacks_total", result="duplicate") >= 1
    assert status["clay"]["pending"] == 0

    # --- submissions = claims; rotation at the limit -----------------------------------------
    # Settled claims are tombstoned later (null values): count the records that carry one.
    budget = [r for r in state if (r.key or b"").startswith(b"budget/") and r.value is not None]
    claims = [r for r in budget if (r.key or b"").endswith(b"/c")]
    settles = [r for r in budget if (r.key or b"").endswith(b"/s")]
    assert stats.rows_total == len(claims) == LEADS
    assert len(settles) == len(claims)
    assert sum(orjson.loads(r.value or b"{}")["amount"] for r in claims) == 6 * stats.rows_total
    assert dict(stats.rows_by_webhook) == {
        "/webhook/w0": ROW_LIMIT,
        "/webhook/w1": ROW_LIMIT,
        "/webhook/w2": ROW_LIMIT,
        "/webhook/w3": LEADS - 3 * ROW_LIMIT,
    }
    assert stats.over_limit == 0
    counted: dict[bytes, int] = {}
    for r in state:
        if (r.key or b"").startswith(b"clay/webhook/"):
            counted[r.key or b""] = orjson.loads(r.value or b"{}")["rows"]
    by_webhook = Counter[str]()
    for key, rows in counted.items():
        by_webhook[key.decode().split("/")[2]] += rows
    assert by_webhook == {webhook_id(u): n for u, n in zip(urls, [300, 300, 300, 100], strict=True)}

    log_lines = proc.log_path.read_text().splitlines()
    restarts = [orjson.loads(line) for line in log_lines if '"clay.started"' in line]
    rotations = [orjson.loads(line) for line in log_lines if '"clay.webhook_rotated"' in line]
    print(
        f"clay test: enriched={len(enriched)} "
        f"provider_error={sum(1 for c in dlq_class.values() if c == 'provider_error')} "
        f"provider_timeout={len(timeouts)} planned={dict(stats.planned)} "
        f"duplicates_ignored={duplicates_ignored} forged_refused={len(forged)} "
        f"rows={dict(stats.rows_by_webhook)} rotations={len(rotations)} "
        f"rows_at_stop={rows_at_stop} "
        f"pending_at_restart={restarts[-1]['pending']} callbacks_sent={stats.callbacks_sent} "
        f"rate_limited={stats.rate_limited}"
    )
    assert len(restarts) == 2
    assert [r["to_index"] for r in rotations] == [1, 2, 3]
    assert all(r["previous_rows"] == ROW_LIMIT for r in rotations)
    assert restarts[1]["pending"] > 0, "the restart should find pending leads to keep"


@pytest.mark.slow
async def test_sigkills_in_clay_mode_lose_and_duplicate_nothing(
    topics: Settings, tmp_path: Path
) -> None:
    """400 leads with the processor SIGKILLed twice mid-stream: each lead lands exactly once
    and where its callbacks allow; webhook counts and budget claims may over-count Clay's
    rows after a kill (a lead read again is submitted again), never under-count."""
    leads = 400
    port = _free_port()
    callback_url = f"http://127.0.0.1:{port}/clay/callback"
    secret = uuid.uuid4().hex
    sim_config = ClaySimulatorConfig(
        callback_url=callback_url,
        port=0,
        callback_secret=secret,
        min_delay_ms=100,
        max_delay_ms=1_500,
        duplicate_rate=0.2,
        missing_rate=0.05,
        error_rate=0.03,
        callback_retries=8,
        seed=7,
    )
    raw = {
        f"K{i}": orjson.dumps({"lead_id": f"K{i}", "domain": f"k{i}.example"}) for i in range(leads)
    }
    async with serve_clay_simulator(sim_config) as sim:
        url = sim.webhook("w")
        settings = configure(
            topics,
            provider_mode="clay",
            http_port=port,
            clay_webhook_urls=url,
            clay_callback_secret=secret,
            clay_webhook_headroom_rows=0,
            clay_deadline_s=DEADLINE_S,
            clay_rate_per_s=100,
            clay_orphan_grace_s=1.0,
            clay_sweep_interval_s=0.5,
            clay_callback_wait_s=3.0,
            budget_daily_credits=10**7,
            commit_interval_ms=100,
        )
        await produce(settings, [(k.encode(), v) for k, v in raw.items()])
        proc = ProcessorProcess(settings, tmp_path, "clay-kill", clay_webhook_urls=url)
        try:
            for rows in (120, 260):
                proc.start()
                await _wait_for(functools.partial(_rows_reached, sim.stats, rows), 60)
                proc.kill()
            proc.start()
            for _ in range(90):
                enriched, dlq = await _landed(settings)
                if len(enriched) + len(dlq) >= leads and sim.stats.in_flight == 0:
                    break
                assert proc.alive(), proc.log_tail()
                await asyncio.sleep(1.0)
            assert await asyncio.to_thread(proc.terminate, 60) == 0, proc.log_tail()
        finally:
            proc.stop()
        stats = sim.stats
        answers = dict(stats.answers)

    enriched, dlq = await _landed(settings)
    state = await read_all(settings, settings.topic_state)
    landed = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert set(landed) == set(raw)
    assert [k for k, n in landed.items() if n > 1] == []
    outcome = {(r.key or b"").decode(): "enriched" for r in enriched} | {
        (r.key or b"").decode(): r.headers["streamproc.error.class"].decode() for r in dlq
    }
    for lead_id, place in outcome.items():
        said = answers.get(lead_id, [])
        kinds = {a.split(":", 1)[0] for a in said}
        if "data:enriched" in said:
            assert place == "enriched", (lead_id, said)
        if place == "enriched":
            assert "data" in kinds, (lead_id, said)
        elif place == "provider_error":
            assert "error" in kinds, (lead_id, said)
        else:
            assert place == "provider_timeout", (lead_id, place)
            assert not {"data:enriched", "error:error_row"} & set(said), (lead_id, said)
    claims = [
        r
        for r in state
        if (r.key or b"").startswith(b"budget/") and r.key.endswith(b"/c") and r.value is not None
    ]
    counts: dict[bytes, int] = {}
    for r in state:
        if (r.key or b"").startswith(b"clay/webhook/"):
            counts[r.key or b""] = orjson.loads(r.value or b"{}")["rows"]
    assert len(claims) >= stats.rows_total >= leads
    assert sum(counts.values()) >= stats.rows_total
    print(
        f"clay kill test: rows={stats.rows_total} claims={len(claims)} "
        f"counted={sum(counts.values())} enriched={len(enriched)} dlq={len(dlq)} "
        f"starts={proc.starts}"
    )
