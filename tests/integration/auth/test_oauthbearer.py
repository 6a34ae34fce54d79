"""SASL/OAUTHBEARER with an OIDC client-credentials token against a broker that checks the JWT.

The broker (tests/integration/auth/broker.py) validates every token with Kafka's own
``OAuthBearerValidatorCallbackHandler`` against the JWKS of the test's identity provider
(tests/integration/auth/idp.py), which also serves the token endpoint our provider calls.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from typing import Any

import orjson
import pytest

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.auth.broker import REAUTH_MS, AuthBroker
from tests.integration.auth.idp import CLIENT_ID, CLIENT_SECRET, IdentityProvider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import settings_env
from tests.integration.security.broker import requires_java

pytestmark = requires_java


def oauth_settings(
    topics: Settings, broker: AuthBroker, idp: IdentityProvider, **changes: Any
) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": broker.oauth,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauthbearer_token_url": idp.token_url,
        "sasl_oauthbearer_client_id": CLIENT_ID,
        "sasl_oauthbearer_client_secret": CLIENT_SECRET,
        "sasl_oauthbearer_scope": "kafka streamproc",
        **changes,
    }
    return configure(topics, **values)


def leads(prefix: str, n: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (
            f"{prefix}-{i}".encode(),
            orjson.dumps(
                {"lead_id": f"{prefix}-{i}", "email": f"x@{prefix}{i}.example",
                 "domain": f"{prefix}{i}.example"}
            ),
        )
        for i in range(n)
    ]  # fmt: skip


async def enriched_keys(plain: Settings) -> Counter[str]:
    return Counter(r.key.decode() for r in await read_all(plain, plain.topic_enriched) if r.key)


async def wait_enriched(plain: Settings, n: int, timeout_s: float = 60) -> Counter[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        seen = await enriched_keys(plain)
        if sum(seen.values()) >= n or loop.time() > deadline:
            return seen
        await asyncio.sleep(0.3)


async def test_oauthbearer_processes_leads(
    auth_topics: Settings, auth_broker: AuthBroker, idp_defaults: IdentityProvider
) -> None:
    """The processor connects with an OIDC token the broker validates and enriches leads."""
    idp = idp_defaults
    calls_before = idp.calls()
    await produce(auth_topics, leads("oauth", 12))
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=3)) as url:
        settings = oauth_settings(
            auth_topics,
            auth_broker,
            idp,
            provider_url=f"{url}/enrich",
            cache_ttl_s=0,
            # Sent beside the token, as Confluent Cloud wants them; this broker accepts any.
            sasl_oauthbearer_extensions="logicalCluster=lkc-test,identityPoolId=pool-test",
        )
        await asyncio.wait_for(App(settings).run(stop_when_idle_s=2.0), timeout=90)
    seen = await enriched_keys(auth_topics)
    assert seen == Counter({f"oauth-{i}": 1 for i in range(12)})
    assert idp.calls() > calls_before, "the token endpoint was never asked"
    assert "kafka streamproc" in idp.scopes


async def test_token_refreshed_while_processing(
    auth_topics: Settings, auth_broker: AuthBroker, idp_defaults: IdentityProvider
) -> None:
    """Tokens of 3 s and broker sessions of at most REAUTH_MS: the provider asks the token
    endpoint again as connections are renewed, and leads keep flowing exactly once."""
    idp = idp_defaults
    idp.lifetime_s = 3
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=4)) as url:
        settings = oauth_settings(
            auth_topics,
            auth_broker,
            idp,
            provider_url=f"{url}/enrich",
            cache_ttl_s=0,
            # Another scope: a provider of its own, not the one an earlier test filled.
            sasl_oauthbearer_scope="kafka refresh",
        )
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            await produce(auth_topics, leads("first", 10))
            assert sum((await wait_enriched(auth_topics, 10)).values()) == 10
            calls_after_first = idp.calls()
            # Past one broker session lifetime: every session of the first wave has ended,
            # and every token of it is due for refresh (at 80 % of 3 s).
            await asyncio.sleep(REAUTH_MS / 1000 + 1)
            await produce(auth_topics, leads("second", 10))
            seen = await wait_enriched(auth_topics, 20)
            assert not running.done(), "the processor stopped"
        finally:
            app.request_stop()
            await asyncio.wait_for(running, timeout=60)
    assert seen == Counter({f"{w}-{i}": 1 for w in ("first", "second") for i in range(10)})
    assert idp.calls() > calls_after_first, "no token was fetched after the first ones expired"


def run_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamproc", "run"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("refusal", ["bad_secret", "rogue_signature"])
async def test_refused_token_fails_fast_in_one_line(
    auth_topics: Settings, auth_broker: AuthBroker, idp_defaults: IdentityProvider, refusal: str
) -> None:
    """A token endpoint that refuses the client (401), or a token the broker does not trust
    (signed by an unknown key): `streamproc run` exits with one line, no traceback, no secret."""
    idp = idp_defaults
    changes: dict[str, Any] = {"provider_url": "http://127.0.0.1:9/enrich"}
    if refusal == "bad_secret":
        changes["sasl_oauthbearer_client_secret"] = "not-the-client-secret"
    else:
        from cryptography.hazmat.primitives.asymmetric import rsa

        idp.rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = oauth_settings(auth_topics, auth_broker, idp, **changes)
    done = await asyncio.to_thread(run_cli, settings)
    # Besides the JSON log lines of start-up and shutdown, one line says what is wrong.
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert done.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("streamproc: "), done.stderr
    assert "Traceback" not in done.stderr
    assert CLIENT_SECRET not in done.stderr and "not-the-client-secret" not in done.stderr
    if refusal == "bad_secret":
        assert "refused client id 'streamproc-oidc' (HTTP 401 invalid_client)" in lines[0]
        assert "STREAMPROC_SASL_OAUTHBEARER_TOKEN_URL" in lines[0]
    else:
        assert "refused the token of OAUTHBEARER client 'streamproc-oidc'" in lines[0]
        assert "invalid_token" in lines[0]
