"""Logs at DEBUG carry each lead's context and never an e-mail address or a secret."""

from __future__ import annotations

import asyncio
import io
import sys

import orjson

from streamproc.app import App
from streamproc.logs import configure_logging
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce

SECRET = "sk-live-SECRET-9f8e7d"


async def test_debug_logs_mask_emails_and_hide_secrets(topics: Settings) -> None:
    """Seeded e-mails (in good leads, bad leads and a CR/LF-forged field) appear in no log
    line; the API key appears nowhere; each lead line names lead, offset and outcome."""
    emails = [f"jane.doe{i}@acme{i}.example" for i in range(20)]
    records = [
        (f"p{i}".encode(), orjson.dumps({"lead_id": f"p{i}", "email": e}))
        for i, e in enumerate(emails)
    ]
    # invalid leads that carry an e-mail, and a lead_id trying to forge a log line
    records.append((b"bad", orjson.dumps({"email": "leak.me@secret.example"})))
    records.append(
        (
            b"forge",
            orjson.dumps(
                {
                    "lead_id": 'x"\n{"event":"forged"}',
                    "email": "forge@x.example",
                    "domain": "x.reject.test",
                }
            ),
        )
    )
    captured = io.StringIO()
    real_stderr = sys.stderr
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, api_key=SECRET)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            provider_api_key=SECRET,
            log_level="DEBUG",
            log_format="json",
            breaker_failure_threshold=1000,
        )
        await produce(settings, records)
        sys.stderr = captured
        try:
            configure_logging("DEBUG", "json")
            app = App(settings)
            await asyncio.wait_for(app.run(stop_when_idle_s=2.0), timeout=60)
        finally:
            sys.stderr = real_stderr
            configure_logging("INFO", "json")
    text = captured.getvalue()
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    for address in [*emails, "leak.me@secret.example", "forge@x.example"]:
        assert address not in text
    assert SECRET not in text
    assert not any(line.get("event") == "forged" for line in lines), "a log line was forged"
    committed = [line for line in lines if line.get("event") == "lead.committed"]
    assert len(committed) == len(records)
    sample = next(line for line in committed if line["lead_id"] == "p3")
    assert sample["outcome"] == "enriched"
    assert sample["partition"] >= 0
    assert sample["offset"] >= 0
    assert sample["attempt"] == 1
    assert sample["breaker"] == "closed"
