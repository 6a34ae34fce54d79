"""One authorizing broker with an OAUTHBEARER listener, and its identity provider, per session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamproc.kafka.config import TopicsConfig
from streamproc.kafka.topics import create_topics
from streamproc.settings import Settings
from tests.integration.auth.broker import AuthBroker, start_auth_broker, stop_auth_broker
from tests.integration.auth.idp import IdentityProvider


@pytest.fixture(scope="session")
def idp() -> Iterator[IdentityProvider]:
    """The JWKS and token endpoints, up before the broker that fetches the JWKS."""
    provider = IdentityProvider().start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def auth_broker(
    tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider
) -> Iterator[AuthBroker]:
    """The standard authorizer, PLAIN users and an OAUTHBEARER listener; stopped by pid."""
    home: Path = tmp_path_factory.mktemp("auth-kafka")
    broker = start_auth_broker(home, idp)
    print(f"auth broker started in {broker.started_in_s:.1f} s")
    try:
        yield broker
    finally:
        stop_auth_broker(home, int(broker.plaintext.rsplit(":", 1)[1]))


@pytest.fixture
def idp_defaults(idp: IdentityProvider) -> Iterator[IdentityProvider]:
    """The identity provider, its token lifetime and signing key restored after the test."""
    lifetime = idp.lifetime_s
    try:
        yield idp
    finally:
        idp.lifetime_s = lifetime
        idp.rogue_key = None


@pytest.fixture
async def auth_topics(auth_broker: AuthBroker) -> Settings:
    """Fresh topics and group names on the auth broker, created by the admin (PLAINTEXT)."""
    run = uuid.uuid4().hex[:10]
    settings = Settings(
        bootstrap_servers=auth_broker.plaintext,
        group_id=f"auth-{run}",
        topic_raw=f"a{run}.leads.raw",
        topic_enriched=f"a{run}.leads.enriched",
        topic_dlq=f"a{run}.leads.dlq",
        topic_parked=f"a{run}.leads.parked",
        topic_state=f"a{run}.state",
        topic_partitions=2,
        http_port=0,
        log_format="json",
        start_offset="earliest",
    )
    await create_topics(TopicsConfig.from_settings(settings))
    await asyncio.sleep(0.2)
    return settings
