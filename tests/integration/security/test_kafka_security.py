"""Kafka security from settings: SASL_SSL (SCRAM-SHA-256/512, PLAIN) and SSL with mTLS.

Against a real broker (tests/integration/security/broker.py) with certificates generated
for the run. Clients are built only from the settings' ``KafkaConnection``, the way the
processor builds them; failures go through ``check_kafka``, which must answer in one
secret-free line, quickly.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from streamproc.errors import KafkaSetupError
from streamproc.kafka.client import admin_client, consumer, transactional_producer
from streamproc.kafka.config import KafkaConnection
from streamproc.kafka.preflight import check_kafka
from streamproc.settings import Settings
from tests.integration.security.broker import (
    CLIENT_KEY_PASSWORD,
    PLAIN_USER,
    SCRAM_USERS,
    TOPIC,
    SecureBroker,
    requires_java,
)

pytestmark = requires_java

#: A failure must be reported well within this (aiokafka alone would retry for minutes).
FAST_S = 5.0


def sasl_settings(
    broker: SecureBroker,
    mechanism: str,
    user: str,
    password: str,
    cafile: Path | None = None,
) -> Settings:
    return Settings(
        bootstrap_servers=broker.sasl_ssl,
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username=user,
        sasl_password=password,
        ssl_cafile=cafile or broker.pki.ca,
    )


def mtls_settings(broker: SecureBroker, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": broker.ssl,
        "security_protocol": "SSL",
        "ssl_cafile": broker.pki.ca,
        "ssl_certfile": broker.pki.client_cert,
        "ssl_keyfile": broker.pki.client_key,
        "ssl_key_password": CLIENT_KEY_PASSWORD,
        **changes,
    }
    return Settings.model_validate(values)


def secure_settings(broker: SecureBroker, kind: str) -> Settings:
    scram = {mechanism: (name, password) for mechanism, name, password in SCRAM_USERS}
    if kind == "mtls":
        return mtls_settings(broker)
    if kind == "PLAIN":
        return sasl_settings(broker, "PLAIN", *PLAIN_USER)
    return sasl_settings(broker, kind, *scram[kind])


async def roundtrip(settings: Settings, value: bytes) -> bytes | None:
    """Produce one record in a transaction (as the processor does), read it back committed."""
    kafka = KafkaConnection.from_settings(settings)
    producer = transactional_producer(kafka, f"security-test-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        async with producer.transaction():
            sent = await producer.send(TOPIC, value=value, key=b"k")
        offset = (await sent).offset
    finally:
        await producer.stop()
    reader = consumer(kafka, group_id=None)
    await reader.start()
    try:
        tp = TopicPartition(TOPIC, 0)
        reader.assign([tp])
        reader.seek(tp, offset)
        batch = await reader.getmany(tp, timeout_ms=10_000)
        records = batch.get(tp, [])
        return records[0].value if records else None
    finally:
        await reader.stop()


async def setup_error(settings: Settings) -> tuple[str, float]:
    """The KafkaSetupError line check_kafka raises, and how long it took."""
    began = time.monotonic()
    with pytest.raises(KafkaSetupError) as caught:
        await check_kafka(KafkaConnection.from_settings(settings), timeout_s=10.0)
    return str(caught.value), time.monotonic() - began


@pytest.mark.parametrize("kind", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "mtls"])
async def test_secure_listener_roundtrip(secure_broker: SecureBroker, kind: str) -> None:
    """Preflight passes and a transactional record goes through SASL_SSL or mTLS and back."""
    settings = secure_settings(secure_broker, kind)
    await check_kafka(KafkaConnection.from_settings(settings), timeout_s=10.0, topics=[TOPIC])
    value = uuid.uuid4().bytes
    assert await roundtrip(settings, value) == value


async def test_admin_client_over_sasl_ssl(secure_broker: SecureBroker) -> None:
    """The admin client (topics create) authenticates over SASL_SSL with SCRAM too."""
    admin = admin_client(
        KafkaConnection.from_settings(secure_settings(secure_broker, "SCRAM-SHA-512"))
    )
    await admin.start()
    try:
        assert TOPIC in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [
        ("SCRAM-SHA-256", "alice", "not-alices-password"),
        ("SCRAM-SHA-512", "alice", SCRAM_USERS[0][2]),  # alice has no SHA-512 credential
        ("SCRAM-SHA-256", "mallory", "whatever-secret"),
        ("PLAIN", "paula", "not-paulas-password"),
    ],
)
async def test_wrong_credentials_fail_fast_without_the_secret(
    secure_broker: SecureBroker, mechanism: str, user: str, password: str
) -> None:
    """Bad SASL credentials: one line naming user, mechanism and settings; no password."""
    line, took = await setup_error(sasl_settings(secure_broker, mechanism, user, password))
    assert line.startswith(f"authentication failed for user {user!r} with mechanism {mechanism}")
    assert "STREAMPROC_SASL_PASSWORD" in line
    assert password not in line
    assert "\n" not in line
    assert took < FAST_S


async def test_wrong_ca_on_sasl_ssl_fails_fast(secure_broker: SecureBroker) -> None:
    """A CA that did not sign the broker's certificate: a verify failure naming the CA file."""
    user = SCRAM_USERS[0]
    settings = sasl_settings(secure_broker, *user, cafile=secure_broker.pki.other_ca)
    line, took = await setup_error(settings)
    assert line.startswith(f"TLS certificate verify failed for {secure_broker.sasl_ssl}")
    assert "STREAMPROC_SSL_CAFILE" in line
    assert user[2] not in line
    assert took < FAST_S


async def test_wrong_ca_on_mtls_fails_fast(secure_broker: SecureBroker) -> None:
    """mTLS with the wrong CA: the same clear verify failure, the key password not in it."""
    settings = mtls_settings(secure_broker, ssl_cafile=secure_broker.pki.other_ca)
    line, took = await setup_error(settings)
    assert line.startswith(f"TLS certificate verify failed for {secure_broker.ssl}")
    assert "STREAMPROC_SSL_CAFILE" in line
    assert CLIENT_KEY_PASSWORD not in line
    assert took < FAST_S


@pytest.mark.parametrize("cert", ["none", "rogue"])
async def test_mtls_listener_refuses_missing_or_untrusted_client_cert(
    secure_broker: SecureBroker, cert: str
) -> None:
    """No client certificate, or one from another CA: the line says to fix the cert files."""
    changes: dict[str, Any] = {"ssl_certfile": None, "ssl_keyfile": None, "ssl_key_password": None}
    if cert == "rogue":
        changes = {
            "ssl_certfile": secure_broker.pki.rogue_cert,
            "ssl_keyfile": secure_broker.pki.rogue_key,
            "ssl_key_password": None,
        }
    line, took = await setup_error(mtls_settings(secure_broker, **changes))
    assert line.startswith(f"the broker at {secure_broker.ssl} refused our TLS client certificate")
    assert "STREAMPROC_SSL_CERTFILE" in line
    assert took < FAST_S


@pytest.mark.parametrize(
    ("listener", "protocol", "expected"),
    [
        ("sasl_ssl", "PLAINTEXT", "closed the connection during the Kafka handshake"),
        ("plaintext", "SSL", "dropped the connection during the TLS handshake"),
        ("plaintext", "SASL_PLAINTEXT", "refused the SASL handshake"),
    ],
)
async def test_protocol_mismatch_names_the_security_protocol(
    secure_broker: SecureBroker, listener: str, protocol: str, expected: str
) -> None:
    """Speaking the wrong security protocol to a listener fails fast and says which setting."""
    user = SCRAM_USERS[0]
    settings = Settings.model_validate(
        {
            "bootstrap_servers": getattr(secure_broker, listener),
            "security_protocol": protocol,
            "ssl_cafile": secure_broker.pki.ca,
            "sasl_mechanism": user[0],
            "sasl_username": user[1],
            "sasl_password": user[2],
        }
    )
    line, took = await setup_error(settings)
    assert expected in line
    assert "STREAMPROC_SECURITY_PROTOCOL" in line
    assert user[2] not in line
    assert took < FAST_S
