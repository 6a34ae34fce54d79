"""``streamproc topics create``: the five topics, idempotently, with the right settings."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code

from streamproc.errors import KafkaSetupError
from streamproc.kafka.client import admin_client
from streamproc.settings import Settings

__all__ = ["TopicReport", "create_topics", "topic_specs"]

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


def topic_specs(settings: Settings) -> list[NewTopic]:
    n, rf = settings.topic_partitions, settings.topic_replication_factor
    return [
        NewTopic(settings.topic_raw, n, rf),
        NewTopic(settings.topic_enriched, n, rf),
        NewTopic(settings.topic_dlq, n, rf, topic_configs=dict(HOLDING_TOPIC_CONFIG)),
        NewTopic(settings.topic_parked, n, rf, topic_configs=dict(HOLDING_TOPIC_CONFIG)),
        NewTopic(settings.topic_state, n, rf, topic_configs=dict(STATE_TOPIC_CONFIG)),
    ]


async def create_topics(settings: Settings) -> list[TopicReport]:
    """Create whichever of the five topics are missing; existing ones are left as they are."""
    admin = admin_client(settings)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise KafkaSetupError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}; "
            "is the broker up (scripts/kafka-local start)?"
        ) from None
    try:
        existing = set(await admin.list_topics())
        reports = []
        for spec in topic_specs(settings):
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
