"""The web console in a real headless browser (Debian's chromium, driven by playwright),
served by ``streamproc console`` against the broker: the page shows the numbers the API
returns, the dry run the counts of a replay, a replay without the token is refused and one
with it moves the records. Takes the README's screenshots (docs/images/)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from streamproc.resilience.budget import budget_day
from streamproc.resilience.claims import Claim
from streamproc.settings import Settings
from tests.integration.conftest import ROOT, configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import settings_env
from tests.integration.replay.dlq_io import (
    budget_spend,
    every_kind,
    keys,
    lead,
    plant_dlq,
    write_state,
)

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "op-" + uuid.uuid4().hex
#: The read token: shows DLQ records, moves nothing.
READ = "rd-" + uuid.uuid4().hex
READER = {"Authorization": f"Bearer {READ}"}
#: Two DLQ records per error class and a Spring and a Connect one (``every_kind``).
PLANTED = len(every_kind())
IMAGES = ROOT / "docs" / "images"
#: Set to 1 to refresh the README's pictures (docs/images/) from this run; otherwise they
#: go to the test's temporary directory, so a test run leaves the work tree as it was.
REFRESH_IMAGES = os.environ.get("STREAMPROC_TEST_SCREENSHOTS") == "1"

# No skip when chromium is missing: a browser test that quietly skips in CI proves nothing.
# .ci/run installs it (apt-get install chromium), like kcat and promtool.


def _breaker(state: str, at: float) -> tuple[str, dict[str, Any]]:
    return "breaker/provider", {
        "v": 1, "state": state, "opened_at": at if state == "open" else None,
        "failures": [], "owner": "proc-a", "at": at,
    }  # fmt: skip


async def _seed(settings: Settings) -> None:
    """DLQ records of every kind (PLANTED); 30 credits spent and 25 reserved of 500; the breaker
    opened and closed again today; a waterfall provider's hit totals of today (4 calls, 2
    found, 3 credits); six leads on the input, one committed by the group."""
    await plant_dlq(settings, every_kind())
    now = time.time()
    day = budget_day(now, settings.budget_timezone)
    open_claim = Claim(uuid.uuid4().hex, "proc-a", day, 25, settings.budget_daily_credits)
    await write_state(
        settings,
        [
            *budget_spend(settings, reserved=40, actual=30),
            (f"budget/{day}/{open_claim.claim_id}/c", open_claim.to_dict()),
            _breaker("open", now - 20),
            _breaker("closed", now - 10),
            (
                f"waterfall/hits/default/finder/{time.strftime('%Y-%m-%d', time.gmtime(now))}/i1",
                {"calls": 4, "hits": 2, "credits": 3},
            ),
        ],
    )
    await produce(settings, [(f"in-{i}".encode(), lead(f"in-{i}")) for i in range(6)])
    first = min(r.partition for r in await read_all(settings, settings.topic_raw))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic_raw, first)
        consumer.assign([tp])
        await consumer.commit({tp: 1})
    finally:
        await consumer.stop()


def _spawn(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streamproc", "console"],
            env=settings_env(settings),
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )


def _finish(proc: subprocess.Popen[bytes], log_path: Path, first: bytes) -> str:
    """Stop the console (SIGTERM, as an operator's Ctrl-C) and return its whole output."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    with log_path.open("ab") as log:
        log.write(b"--- stdout\n" + first + out)
    return log_path.read_text()


@contextlib.asynccontextmanager
async def _console(settings: Settings, log_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """``streamproc console`` as a child process; yields its base URL and, once it has
    stopped, its whole output (in the list)."""
    proc = _spawn(settings, log_path)
    assert proc.stdout is not None
    output: list[str] = []
    first = b""
    try:
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        text = first.decode()
        assert text.startswith("streamproc console: http://"), text
        yield text.split()[2], output
    finally:
        output.append(await asyncio.to_thread(_finish, proc, log_path, first))
        assert proc.returncode == 0, output[-1]


async def _api(url: str, path: str, **kwargs: Any) -> httpx.Response:
    """The console's API, as the page calls it; DLQ reads carry the read token unless
    ``headers`` are given."""
    if path.startswith("dlq"):
        kwargs.setdefault("headers", READER)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if "json" in kwargs:
            return await client.post(f"api/{path}", **kwargs)
        return await client.get(f"api/{path}", **kwargs)


async def _text(page: Any, selector: str) -> str:
    return str(await page.locator(selector).inner_text()).strip()


async def test_console_in_a_browser(topics: Settings, tmp_path: Path) -> None:
    """Overview and DLQ pages render the API's numbers; records only once the read token is
    entered; dry run, refused and real replay."""
    from playwright.async_api import async_playwright, expect

    settings = configure(
        topics, budget_daily_credits=500, console_token=TOKEN, console_read_token=READ
    )
    images = IMAGES if REFRESH_IMAGES else tmp_path
    await _seed(settings)
    async with _console(settings, tmp_path / "console.log") as (url, output):
        # --- overview: the page shows what the API says -----------------------------------
        overview = (await _api(url, "overview")).json()
        assert overview["mode"] == "standalone"
        assert overview["breaker"]["state"] == "closed"
        assert [t["to"] for t in overview["breaker"]["transitions_today"]] == ["open", "closed"]
        budget = overview["budget"]
        assert (budget["spent"], budget["reserved"], budget["limit"]) == (30, 25, 500)
        assert budget["remaining"] == 445
        lag = overview["lag"]
        assert lag["known"], lag
        assert lag["total"] == 5
        assert overview["health"]["known"] is False

        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
                viewport={"width": 1360, "height": 1000},
            )
            try:
                page = browser.pages[0] if browser.pages else await browser.new_page()
                outside: list[str] = []
                page.on(
                    "request",
                    lambda r: (
                        None
                        if r.url.startswith(url.rsplit("/console", 1)[0])
                        else outside.append(r.url)
                    ),
                )
                await page.goto(f"{url}#overview")
                await expect(page.locator("#budget-spent")).to_have_text("30")
                assert await _text(page, "#breaker-state") == "closed"
                assert await _text(page, "#breaker-transition-count") == "2"
                assert await _text(page, "#budget-reserved") == "25"
                assert await _text(page, "#budget-remaining") == "445"
                assert await _text(page, "#budget-limit") == "500"
                assert await _text(page, "#lag-total") == str(lag["total"])
                for row in lag["partitions"]:
                    cell = f"#lag-p{row['partition']} td.lag"
                    assert await _text(page, cell) == str(row["lag"])
                assert await _text(page, "#health-status") == "not known here"
                await expect(page.locator("#card-providers")).to_be_visible()
                cells = page.locator("#provider-finder td")
                await expect(cells).to_have_text(
                    ["finder", "4", "2", "3", "50.0 %", "1.50", "50.0 %, 1.50"]
                )
                await expect(page.locator("#burn-spent")).to_have_count(1)
                await expect(page.locator("#burn-limit")).to_have_count(1)
                await page.screenshot(path=str(images / "console-overview.png"), full_page=True)

                # --- DLQ: list, filter, one record -------------------------------------------
                listed = (await _api(url, "dlq")).json()
                assert listed["matching"] == PLANTED
                await page.click("#tab-dlq")
                # Records hold leads: none is shown before the read token is entered.
                await expect(page.locator("#dlq-error")).to_contain_text("refused (401)")
                assert await page.locator("#dlq-rows tr").count() == 0
                assert (await _api(url, "dlq", headers={})).status_code == 401
                await page.fill("#dlq-token", READ)
                await page.click("#dlq-apply")
                await expect(page.locator("#dlq-matching")).to_have_text(str(PLANTED))
                assert await page.locator("#dlq-rows tr").count() == 20  # one page
                await page.fill("input[name=error_class]", "rate_limited")
                await page.click("#dlq-apply")
                await expect(page.locator("#dlq-matching")).to_have_text("2")
                filtered = (await _api(url, "dlq", params={"error_class": "rate_limited"})).json()
                shown = [await _text(page, f"#dlq-rows tr:nth-child({i + 1}) td:nth-child(6)")
                         for i in range(2)]  # fmt: skip
                assert shown == [r["key"] for r in filtered["records"]]
                first = filtered["records"][0]
                await page.click("#dlq-rows tr:first-child")
                await expect(page.locator("#detail-payload")).to_contain_text(
                    f'"lead_id": "{first["key"]}"'
                )
                detail = (
                    await _api(
                        url,
                        "dlq/record",
                        params={"partition": first["partition"], "offset": first["offset"]},
                    )
                ).json()
                assert await _text(page, "#detail-header-count") == str(len(detail["headers"]))
                await expect(page.locator("#detail-facts")).to_contain_text("rate_limited happened")

                # --- dry run: the counts a replay would move ---------------------------------
                await page.click("#replay-dry")
                await expect(page.locator("#dry-result")).to_be_visible()
                dry = (
                    await _api(
                        url,
                        "replay",
                        json={"filters": {"error_class": "rate_limited"}, "dry_run": True},
                    )
                ).json()
                assert (dry["replayed"], dry["parked"], dry["skipped"]) == (1, 1, PLANTED - 2)
                assert await _text(page, "#dry-replay") == "1"
                assert await _text(page, "#dry-park") == "1"
                assert await _text(page, "#dry-skip") == str(PLANTED - 2)
                await page.screenshot(path=str(images / "console-dlq.png"), full_page=True)

                # --- confirm without the token: refused, nothing moved -----------------------
                await page.click("#replay-confirm")
                await expect(page.locator("#replay-error")).to_contain_text("refused (401)")
                body = {"filters": {"error_class": "rate_limited"}, "dry_run": False}
                assert (await _api(url, "replay", json=body)).status_code == 401
                wrong = await _api(url, "replay", json=body, headers={"Authorization": "Bearer x"})
                assert wrong.status_code == 401
                # The read token reads; it moves nothing.
                assert (await _api(url, "replay", json=body, headers=READER)).status_code == 401
                assert (await _api(url, "dlq")).json()["matching"] == PLANTED

                # --- with the token: the records move ----------------------------------------
                await page.fill("#replay-token", TOKEN)
                await page.click("#replay-confirm")
                await expect(page.locator("#replay-done")).to_contain_text("replayed 1")
                assert TOKEN not in page.url and READ not in page.url
                assert outside == []  # nothing but this server was asked for anything
            finally:
                await browser.close()

        raw = keys(await read_all(settings, settings.topic_raw))
        assert raw["rate_limited-1"] == 1
        assert keys(await read_all(settings, settings.topic_parked)) == {"rate_limited-3": 1}
        after = (await _api(url, "dlq")).json()
        assert after["matching"] == PLANTED - 2
        assert (await _api(url, "dlq", params={"error_class": "rate_limited"})).json()[
            "matching"
        ] == 0
    assert TOKEN not in output[0] and READ not in output[0]
    for name in ("console-overview.png", "console-dlq.png"):
        assert (images / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "console.replay" in output[0]
