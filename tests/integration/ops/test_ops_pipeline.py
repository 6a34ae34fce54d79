"""The ops pieces wired to a real App run: /readyz before and after restore, /metrics counts.

The wiring here is the one proposed for ``App`` (see ``streamproc.ops``): a scrape hook
reads the processor's committed counts and the guard's status, the provider client reports
each attempt, and ``ReadinessCheck`` reads the state store and the group membership.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from streamproc.app import App
from streamproc.ops.http import OpsServer
from streamproc.ops.metrics import Metrics
from streamproc.ops.readiness import ReadinessCheck
from streamproc.provider.client import ProviderClient
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce

GOOD, REJECTED, MALFORMED = 12, 3, 2


def lead(lead_id: str, domain: str) -> bytes:
    return orjson.dumps({"lead_id": lead_id, "domain": domain})


def wire(app: App) -> tuple[Metrics, ReadinessCheck]:
    metrics = Metrics()
    # The http provider behind the pipeline's calls reports each attempt.
    assert app.provider is not None and isinstance(app.provider.provider, ProviderClient)
    app.provider.provider.on_attempt = metrics.provider_attempt
    metrics.on_scrape(lambda: metrics.observe_processor(app.processor.stats))
    metrics.on_scrape(lambda: metrics.observe_status(app.guard.status()))
    ready = ReadinessCheck(
        state_restored=app.state.restored.is_set, in_group=app.processor.joined.is_set
    )
    return metrics, ready


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise AssertionError(f"no sample {name}{labels}")


async def wait_ready(http: httpx.AsyncClient, url: str, timeout_s: float) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await http.get(f"{url}/readyz")
        if response.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.05)


async def test_readiness_and_metrics_follow_a_real_run(topics: Settings) -> None:
    """/readyz is 503 until state is restored and the consumer joined, then 200; after the
    run /metrics counts exactly the leads produced, by outcome, class and source."""
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"g{i}".encode(), lead(f"g{i}", f"co{i}.example")) for i in range(GOOD)
    ]
    records += [(f"r{i}".encode(), lead(f"r{i}", f"c{i}.reject.test")) for i in range(REJECTED)]
    records += [(f"m{i}".encode(), b"{not json") for i in range(MALFORMED)]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=2, seed=3)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich")
        await produce(settings, records)
        app = App(settings)
        metrics, ready = wire(app)
        async with (
            OpsServer("127.0.0.1", 0, metrics, lambda: app.guard.status().to_dict(), ready) as ops,
            httpx.AsyncClient() as http,
        ):
            before = await http.get(f"{ops.url}/readyz")
            run = asyncio.ensure_future(app.run(stop_when_idle_s=1.0))
            during = await wait_ready(http, ops.url, timeout_s=30)
            await asyncio.wait_for(run, timeout=60)
            scraped = (await http.get(f"{ops.url}/metrics")).text
            status = (await http.get(f"{ops.url}/status")).json()

    assert before.status_code == 503
    assert before.json()["reasons"] == ["state not restored", "consumer not in the group"]
    assert during.status_code == 200, during.text

    out = "streamproc_leads_out_total"
    assert sample(scraped, "streamproc_leads_in_total") == len(records)
    assert sample(scraped, out, outcome="enriched", error_class="none", source="provider") == GOOD
    assert sample(scraped, out, outcome="dlq", error_class="provider_rejected", source="none") == (
        REJECTED
    )
    assert sample(scraped, out, outcome="dlq", error_class="invalid_payload", source="none") == (
        MALFORMED
    )
    assert sample(scraped, "streamproc_credits_spent_total") == 6 * GOOD
    assert sample(scraped, "streamproc_provider_responses_total", status="200") == GOOD
    assert sample(scraped, "streamproc_provider_responses_total", status="422") == REJECTED
    latency_count = sample(scraped, "streamproc_provider_request_duration_seconds_count")
    assert latency_count == GOOD + REJECTED
    assert sample(scraped, "streamproc_leads_in_flight") == 0
    assert sample(scraped, "streamproc_breaker_state") == 0
    assert sample(scraped, "streamproc_budget_limit_credits") == settings.budget_daily_credits
    assert status["breaker"]["state"] == "closed"
    assert status["budget"]["limit"] == settings.budget_daily_credits
