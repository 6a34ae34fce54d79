"""The start-up log names the provider without the credentials its URL may carry."""

from __future__ import annotations

import asyncio
import io
import sys

import orjson

from streamproc.app import App
from streamproc.logs import configure_logging
from streamproc.redact import secret_values
from streamproc.settings import Settings
from tests.integration.conftest import configure

PASSWORD = "pw-Hunter2-0xC0FFEE"
TOKEN = "tok-8b1f0c2d9e7a"


async def test_processor_started_line_masks_the_provider_url(topics: Settings) -> None:
    """processor.started shows the provider's host and path, not its password or token."""
    settings = configure(
        topics,
        provider_url=f"http://svc:{PASSWORD}@127.0.0.1:9/enrich?region=eu&api_key={TOKEN}",
    )
    captured = io.StringIO()
    real_stderr = sys.stderr
    sys.stderr = captured
    try:
        configure_logging("INFO", "json", secrets=secret_values(settings))
        await asyncio.wait_for(App(settings).run(stop_when_idle_s=0.5), timeout=60)
    finally:
        sys.stderr = real_stderr
        configure_logging("INFO", "json")
    text = captured.getvalue()
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    started = next(line for line in lines if line.get("event") == "processor.started")
    assert (
        started["provider_url"]
        == "http://**********@127.0.0.1:9/enrich?region=eu&api_key=**********"
    )
    assert PASSWORD not in text
    assert TOKEN not in text
