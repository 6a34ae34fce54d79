"""``streamproc topics create``: the five topics, idempotently, with the right settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from streamproc.errors import KafkaSetupError
from streamproc.kafka.client import admin_client, start_client
from streamproc.kafka.config import KafkaConnection, TopicsConfig

__all__ = [
    "BROKER_DEFAULT_MAX_MESSAGE_BYTES",
    "DESCRIBED_CONFIGS",
    "TopicDescription",
    "TopicReport",
    "create_topics",
    "describe_topics",
    "max_message_bytes",
    "topic_specs",
]

#: Kafka's default ``message.max.bytes``: assumed for a topic whose limit we cannot read.
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588

#: The state topic holds one record per key that matters (breaker, budget day, cache
#: entry); compaction keeps the latest. A short segment lets compaction run on a small
#: dev broker too; min.compaction.lag keeps recent history readable for debugging.
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(6 * 3600 * 1000),
    "min.compaction.lag.ms": str(3600 * 1000),
}
#: DLQ and parked records wait for an operator; keep them four weeks by default.
HOLDING_TOPIC_CONFIG = {"retention.ms": str(28 * 24 * 3600 * 1000)}


@dataclass(frozen=True)
class TopicReport:
    name: str
    partitions: int
    created: bool


def topic_specs(config: TopicsConfig) -> list[NewTopic]:
    n, rf = config.partitions, config.replication_factor
    specs = [
        NewTopic(config.topic_raw, n, 1),
        NewTopic(config.topic_enriched, n, 1),
        NewTopic(config.topic_dlq, n, 1, topic_configs=dict(HOLDING_TOPIC_CONFIG)),
        NewTopic(config.topic_parked, n, 1, topic_configs=dict(HOLDING_TOPIC_CONFIG)),
        NewTopic(config.topic_state, n, 1, topic_configs=dict(STATE_TOPIC_CONFIG)),
        # Pacing's deferral topics, one per score band: kept as long as the DLQ, well past
        # deferral_max_age_s, so no deferred lead is deleted before it expires.
        *(
            NewTopic(name, n, 1, topic_configs=dict(HOLDING_TOPIC_CONFIG))
            for name in config.deferral_topics
        ),
    ]
    for spec in specs:
        # Set after construction: aiokafka's NewTopic takes -1 only with an explicit replica
        # assignment, while CreateTopics (v4+, KIP-464) reads -1 as the broker's
        # default.replication.factor.
        spec.replication_factor = rf
    return specs


async def create_topics(config: TopicsConfig) -> list[TopicReport]:
    """Create whichever of the five topics are missing; existing ones are left as they are."""
    kafka = config.kafka
    admin = admin_client(kafka)
    await start_client(kafka, admin)
    try:
        existing = set(await admin.list_topics())
        reports = []
        for spec in topic_specs(config):
            created = False
            if spec.name not in existing:
                try:
                    response = await admin.create_topics([spec])
                except KafkaError as exc:
                    raise KafkaSetupError(f"cannot create topic {spec.name}: {exc}") from None
                # aiokafka returns per-topic error codes instead of raising them.
                code = response.topic_errors[0][1]
                if code == 0:
                    created = True
                elif code != TopicAlreadyExistsError.errno:  # a concurrent caller won
                    error = for_code(code)
                    raise KafkaSetupError(f"cannot create topic {spec.name}: {error.__name__}")
            reports.append(TopicReport(spec.name, spec.num_partitions, created))
        return reports
    finally:
        await admin.close()


async def max_message_bytes(kafka: KafkaConnection, topics: list[str]) -> dict[str, int]:
    """Each topic's ``max.message.bytes`` as the broker applies it (its own default when
    the topic sets none). A topic whose configuration cannot be read (no DescribeConfigs
    permission, an old broker) gets Kafka's default, with a warning: a record over the
    real limit is still caught when the broker refuses it."""
    admin = admin_client(kafka)
    limits = dict.fromkeys(topics, BROKER_DEFAULT_MAX_MESSAGE_BYTES)
    try:
        await admin.start()
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": None})
            for topic in topics
        ]
        for response in await admin.describe_configs(resources):
            for error_code, _message, _type, name, entries in response.resources:
                values = [entry[1] for entry in entries if entry[0] == "max.message.bytes"]
                if error_code == 0 and values and values[0] is not None:
                    limits[name] = int(values[0])
    except (KafkaError, OSError, ValueError) as exc:
        logging.getLogger(__name__).warning(
            "cannot read max.message.bytes of %s (%r): assuming %d bytes",
            ", ".join(topics),
            exc,
            BROKER_DEFAULT_MAX_MESSAGE_BYTES,
        )
    finally:
        await admin.close()
    return limits


#: The topic configurations an operator checks first (`topics describe`).
DESCRIBED_CONFIGS = ("cleanup.policy", "retention.ms", "max.message.bytes", "min.insync.replicas")


@dataclass(frozen=True)
class TopicDescription:
    name: str
    role: str
    exists: bool
    partitions: int = 0
    replication_factor: int = 0
    configs: dict[str, str | None] = field(default_factory=dict)


async def describe_topics(config: TopicsConfig) -> list[TopicDescription]:
    """The five topics as the broker has them: partitions, replication, the configurations
    of :data:`DESCRIBED_CONFIGS` (the broker's default where the topic sets none)."""
    roles = {
        config.topic_raw: "input",
        config.topic_enriched: "enriched output",
        config.topic_dlq: "dead letters",
        config.topic_parked: "parked by the replayer",
        config.topic_state: "group state (compacted)",
    }
    kafka = config.kafka
    admin = admin_client(kafka)
    await start_client(kafka, admin)
    try:
        described = {d["topic"]: d for d in await admin.describe_topics(list(roles))}
        present = [t for t, d in described.items() if d["error_code"] == 0]
        configs: dict[str, dict[str, str | None]] = {t: {} for t in present}
        if present:
            resources = [
                ConfigResource(
                    ConfigResourceType.TOPIC, t, configs=dict.fromkeys(DESCRIBED_CONFIGS)
                )
                for t in present
            ]
            for response in await admin.describe_configs(resources):
                for error_code, _message, _type, name, entries in response.resources:
                    if error_code == 0 and name in configs:
                        configs[name] = {e[0]: e[1] for e in entries if e[0] in DESCRIBED_CONFIGS}
    except KafkaError as exc:
        raise KafkaSetupError(f"cannot describe the topics: {exc.__class__.__name__}") from None
    finally:
        await admin.close()
    out = []
    for name, role in roles.items():
        d = described.get(name)
        if d is None or d["error_code"] != 0:
            out.append(TopicDescription(name, role, exists=False))
            continue
        parts = d["partitions"]
        out.append(
            TopicDescription(
                name,
                role,
                exists=True,
                partitions=len(parts),
                replication_factor=len(parts[0]["replicas"]) if parts else 0,
                configs=configs.get(name, {}),
            )
        )
    return out
