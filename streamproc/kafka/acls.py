"""The Kafka ACLs each command needs, and nothing more: the one list docs/security.md
shows, the preflight checks and the least-privilege test grants.

Pure: names and protocol codes, no I/O. Kafka lets an ACL for ``Read``, ``Write``,
``Delete`` or ``Alter`` imply ``Describe`` on the same resource, so ``Describe`` is listed
only where nothing else is granted. An ``optional`` ACL is recommended, not required
(``DescribeConfigs``: without it the limits are Kafka's defaults, docs/security.md): its
absence is a warning at start-up, never a refusal.

On Amazon MSK with IAM access control there are no ACLs: the IAM policy allows actions
(:func:`iam_action`), and that is what a hint names there instead of ``kafka-acls``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from streamproc.kafka.config import TopicsConfig

__all__ = [
    "Acl",
    "Operation",
    "ResourceType",
    "grant_command",
    "iam_action",
    "processor_acls",
    "replayer_acls",
]


class ResourceType(IntEnum):
    """Kafka's resource type codes (the ``AclResourceType`` of the protocol)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):
    """Kafka's ACL operation codes; bit ``code`` of an "authorized operations" field."""

    READ = 3
    WRITE = 4
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    IDEMPOTENT_WRITE = 12


#: How kafka-acls spells each operation and resource type.
_CLI_OPERATION = {
    Operation.READ: "Read",
    Operation.WRITE: "Write",
    Operation.DESCRIBE: "Describe",
    Operation.DESCRIBE_CONFIGS: "DescribeConfigs",
    Operation.IDEMPOTENT_WRITE: "IdempotentWrite",
}
_CLI_RESOURCE = {
    ResourceType.TOPIC: "--topic",
    ResourceType.GROUP: "--group",
    ResourceType.TRANSACTIONAL_ID: "--transactional-id",
    ResourceType.CLUSTER: "--cluster",
}


@dataclass(frozen=True, slots=True)
class Acl:
    """One ``Allow`` ACL: an operation on a resource (a name, or every name with a prefix)."""

    resource: ResourceType
    name: str
    operation: Operation
    why: str
    prefixed: bool = False
    optional: bool = False

    def describe(self) -> str:
        """``Write on transactional id prefix 'g.'``: how an error line names it."""
        kind = self.resource.name.lower().replace("_", " ")
        if self.resource is ResourceType.TRANSACTIONAL_ID:
            kind = "transactional id"
        where = "cluster" if self.resource is ResourceType.CLUSTER else f"{kind} {self.name!r}"
        prefix = " prefix" if self.prefixed else ""
        return f"{_CLI_OPERATION[self.operation]} on {where}{prefix}"


def grant_command(acl: Acl, principal: str) -> str:
    """The ``kafka-acls`` invocation (without ``--bootstrap-server``) that grants ``acl``."""
    resource = _CLI_RESOURCE[acl.resource]
    target = resource if acl.resource is ResourceType.CLUSTER else f"{resource} '{acl.name}'"
    pattern = " --resource-pattern-type prefixed" if acl.prefixed else ""
    return (
        f"kafka-acls --add --allow-principal {principal} "
        f"--operation {_CLI_OPERATION[acl.operation]} {target}{pattern}"
    )


#: The MSK IAM action that stands for each ACL (AWS's "IAM access control" reference): the
#: one a policy must allow; Read and Write need the Describe action beside them too, which
#: docs/security.md lists.
_IAM_ACTION = {
    (ResourceType.TOPIC, Operation.READ): "kafka-cluster:ReadData",
    (ResourceType.TOPIC, Operation.WRITE): "kafka-cluster:WriteData",
    (ResourceType.TOPIC, Operation.DESCRIBE): "kafka-cluster:DescribeTopic",
    (ResourceType.TOPIC, Operation.DESCRIBE_CONFIGS): (
        "kafka-cluster:DescribeTopicDynamicConfiguration"
    ),
    (ResourceType.GROUP, Operation.READ): "kafka-cluster:AlterGroup",
    (ResourceType.GROUP, Operation.DESCRIBE): "kafka-cluster:DescribeGroup",
    (ResourceType.TRANSACTIONAL_ID, Operation.WRITE): "kafka-cluster:AlterTransactionalId",
    (ResourceType.TRANSACTIONAL_ID, Operation.DESCRIBE): "kafka-cluster:DescribeTransactionalId",
    (ResourceType.CLUSTER, Operation.IDEMPOTENT_WRITE): "kafka-cluster:WriteDataIdempotently",
}


def iam_action(acl: Acl) -> str:
    """The MSK IAM policy action that grants what ``acl`` grants on a self-managed Kafka."""
    return _IAM_ACTION[(acl.resource, acl.operation)]


def processor_acls(s: TopicsConfig, group_id: str) -> list[Acl]:
    """What ``streamproc run`` of the group ``group_id`` needs (docs/security.md explains
    each)."""
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    deferral = [
        acl
        for name in s.deferral_topics
        for acl in (
            Acl(topic, name, Operation.READ, "re-offer deferred leads (pacing)"),
            Acl(topic, name, Operation.WRITE, "defer leads (pacing)"),
        )
    ]
    return [
        *deferral,
        Acl(topic, s.topic_raw, Operation.READ, "consume the leads"),
        Acl(topic, s.topic_enriched, Operation.WRITE, "publish enriched leads"),
        Acl(topic, s.topic_dlq, Operation.WRITE, "dead-letter failed leads"),
        Acl(topic, s.topic_state, Operation.READ, "restore breaker, budget and cache"),
        Acl(topic, s.topic_state, Operation.WRITE, "record breaker, budget and cache"),
        Acl(
            topic,
            s.topic_enriched,
            Operation.DESCRIBE_CONFIGS,
            "read max.message.bytes to size batches",
            optional=True,
        ),
        Acl(
            topic,
            s.topic_dlq,
            Operation.DESCRIBE_CONFIGS,
            "read max.message.bytes",
            optional=True,
        ),
        Acl(group, group_id, Operation.READ, "join the group, commit offsets"),
        Acl(
            txn,
            f"{group_id}.",
            Operation.WRITE,
            "one transactional producer per partition (and Clay's finishers)",
            prefixed=True,
        ),
    ]


def replayer_acls(s: TopicsConfig, group_id: str) -> list[Acl]:
    """What ``streamproc replay`` of the group ``group_id`` needs (docs/security.md
    explains each)."""
    topic = ResourceType.TOPIC
    group = f"{group_id}-replayer"
    return [
        Acl(topic, s.topic_dlq, Operation.READ, "read the dead letters"),
        Acl(topic, s.topic_dlq, Operation.WRITE, "put back records the filters skip"),
        Acl(topic, s.topic_raw, Operation.WRITE, "replay leads"),
        Acl(topic, s.topic_parked, Operation.WRITE, "park leads out of attempts"),
        Acl(topic, s.topic_state, Operation.READ, "the safety check reads breaker and budget"),
        Acl(ResourceType.GROUP, group, Operation.READ, "commit what was replayed"),
        Acl(
            ResourceType.TRANSACTIONAL_ID,
            f"{group}.{s.topic_dlq}",
            Operation.WRITE,
            "one transactional producer; a second replayer fences the first",
        ),
    ]
