"""Kafka client construction: one place that turns settings into aiokafka arguments.

Every consumer we build reads ``read_committed`` with auto-commit off (aiokafka's defaults,
``read_uncommitted`` and auto-commit on, would break exactly-once), and values are raw
bytes: decoding happens in our code, because a deserializer that raises inside aiokafka
makes it re-read the same record forever.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from streamproc.errors import ConfigError
from streamproc.settings import SecurityProtocol, Settings

__all__ = [
    "admin_client",
    "connection_kwargs",
    "consumer",
    "partitions_of",
    "stop_quietly",
    "transactional_producer",
]


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
            keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            password=settings.ssl_key_password.get_secret_value()
            if settings.ssl_key_password
            else None,
        )
        return context
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"ssl settings: cannot load the CA/certificate/key ({exc.__class__.__name__}: "
            f"{getattr(exc, 'strerror', None) or exc.args[-1]}); check STREAMPROC_SSL_*"
        ) from None


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Bootstrap and security arguments shared by every client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol.value,
    }
    if settings.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        kwargs["ssl_context"] = _ssl_context(settings)
    if settings.security_protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
        assert settings.sasl_password is not None  # checked by the settings model
        kwargs["sasl_mechanism"] = settings.sasl_mechanism.value
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


def consumer(
    settings: Settings, *topics: str, group_id: str | None, **extra: Any
) -> AIOKafkaConsumer:
    kwargs: dict[str, Any] = {
        **connection_kwargs(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "key_deserializer": None,
        "value_deserializer": None,
        **extra,
    }
    assert kwargs["isolation_level"] == "read_committed"
    assert not kwargs["enable_auto_commit"]
    return AIOKafkaConsumer(*topics, **kwargs)


def transactional_producer(settings: Settings, transactional_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **connection_kwargs(settings),
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        transaction_timeout_ms=settings.transaction_timeout_ms,
        linger_ms=5,
        max_request_size=max(settings.max_lead_bytes * 2, 1_048_576),
    )


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_kwargs(settings))


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """A topic's partitions, sorted; empty when it does not exist.

    A topic created a moment ago may need a few metadata rounds. ``consumer.topics()``
    returns a fresh cluster view but does not keep it, so the client is asked directly.
    """
    for _ in range(20):
        cluster = await consumer._client.fetch_all_metadata()
        partitions: set[int] | None = cluster.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await asyncio.sleep(0.25)
    return []


async def stop_quietly(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Stop an aiokafka client during shutdown, never raising its errors.

    Its close may re-raise a CancelledError of its own background tasks: that one is
    swallowed unless our own task is the one being cancelled.
    """
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        logging.getLogger(__name__).debug("kafka client stop failed: %r", exc)
