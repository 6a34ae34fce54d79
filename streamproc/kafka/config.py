"""What the Kafka clients read of the settings, taken once: :class:`KafkaConnection`.

:mod:`streamproc.kafka.client` builds every producer, consumer and admin client from this
small frozen object, not from the whole :class:`~streamproc.settings.Settings` (the
provider's and the console's secrets included): a reader sees what a Kafka client depends
on, and a test builds one without the 100 other fields. The settings stay the one flat
environment surface; each field is the setting of the same name, whose description is
its documentation (``connect_timeout_s``: ``kafka_connect_timeout_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import AnyHttpUrl, SecretStr

from streamproc.settings import SaslMechanism, SecurityProtocol, Settings

__all__ = ["KafkaConnection", "TopicsConfig"]


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them, and the few client limits
    the settings fix (connect timeout, transaction timeout, poll interval, record size)."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol
    ssl_cafile: Path | None
    ssl_certfile: Path | None
    ssl_keyfile: Path | None
    ssl_key_password: SecretStr | None
    #: Read only under a ``SASL_*`` protocol: see :attr:`sasl_in_use`.
    sasl_mechanism: SaslMechanism
    sasl_username: str | None
    sasl_password: SecretStr | None
    sasl_oauthbearer_token_url: AnyHttpUrl | None
    sasl_oauthbearer_client_id: str | None
    sasl_oauthbearer_client_secret: SecretStr | None
    sasl_oauthbearer_scope: str | None
    sasl_oauthbearer_extensions: str | None
    sasl_aws_region: str | None
    sasl_aws_profile: str | None
    sasl_aws_role_arn: str | None
    #: ``kafka_connect_timeout_s``: the bound on a client's bootstrap and on a token fetch.
    connect_timeout_s: float
    transaction_timeout_ms: int
    #: A group consumer's rebalance timeout, unless its caller sets one.
    max_poll_interval_ms: int
    #: Sizes the producers' ``max_request_size`` (``client.max_request_bytes``).
    max_lead_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """The Kafka clients' part of ``settings``."""
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            security_protocol=settings.security_protocol,
            ssl_cafile=settings.ssl_cafile,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_key_password=settings.ssl_key_password,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            sasl_password=settings.sasl_password,
            sasl_oauthbearer_token_url=settings.sasl_oauthbearer_token_url,
            sasl_oauthbearer_client_id=settings.sasl_oauthbearer_client_id,
            sasl_oauthbearer_client_secret=settings.sasl_oauthbearer_client_secret,
            sasl_oauthbearer_scope=settings.sasl_oauthbearer_scope,
            sasl_oauthbearer_extensions=settings.sasl_oauthbearer_extensions,
            sasl_aws_region=settings.sasl_aws_region,
            sasl_aws_profile=settings.sasl_aws_profile,
            sasl_aws_role_arn=settings.sasl_aws_role_arn,
            connect_timeout_s=settings.kafka_connect_timeout_s,
            transaction_timeout_ms=settings.transaction_timeout_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            max_lead_bytes=settings.max_lead_bytes,
        )

    @property
    def sasl_in_use(self) -> SaslMechanism | None:
        """The SASL mechanism the clients speak; None when the protocol has no SASL (as
        :attr:`Settings.sasl_in_use <streamproc.settings.Settings.sasl_in_use>`)."""
        if self.security_protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
            return self.sasl_mechanism
        return None


@dataclass(frozen=True, slots=True)
class TopicsConfig:
    """The topics ``topics create`` and ``topics describe`` handle, and the partitions and
    replication factor a new one gets."""

    kafka: KafkaConnection
    topic_raw: str
    topic_enriched: str
    topic_dlq: str
    topic_parked: str
    topic_state: str
    #: Pacing's deferral topics, lowest score band first (none unless pacing is enabled).
    deferral_topics: tuple[str, ...]
    #: ``topic_partitions`` and ``topic_replication_factor`` (-1: the broker's default).
    partitions: int
    replication_factor: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicsConfig:
        """The topic commands' part of ``settings``."""
        return cls(
            kafka=KafkaConnection.from_settings(settings),
            topic_raw=settings.topic_raw,
            topic_enriched=settings.topic_enriched,
            topic_dlq=settings.topic_dlq,
            topic_parked=settings.topic_parked,
            topic_state=settings.topic_state,
            deferral_topics=settings.deferral_topics,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )
