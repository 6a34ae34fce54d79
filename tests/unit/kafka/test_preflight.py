"""check_kafka's classification, with the connection replaced (no broker, no network)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import errors as kafka_errors
from aiokafka.protocol.metadata import MetadataRequest_v5

from streamproc.errors import KafkaSetupError
from streamproc.kafka import preflight
from streamproc.kafka.config import KafkaConnection, TopicsConfig
from streamproc.kafka.preflight import check_kafka, parse_bootstrap
from streamproc.settings import Settings


@dataclass
class FakeMetadata:
    brokers: list[tuple[int, str, int, None]]
    topics: list[tuple[int, str, bool, list[Any]]] = field(default_factory=list)


@dataclass
class FakeConn:
    host: str
    port: int
    metadata: FakeMetadata
    closed: bool = False
    requests: list[Any] = field(default_factory=list)

    async def send(self, request: Any) -> FakeMetadata:
        self.requests.append(request)
        return self.metadata

    def close(self) -> None:
        self.closed = True


def fake_network(
    monkeypatch: pytest.MonkeyPatch, answers: dict[tuple[str, int], Any]
) -> list[FakeConn]:
    """Replace create_conn: each address answers a FakeMetadata or raises an exception."""
    opened: list[FakeConn] = []

    async def create_conn(host: str, port: int, **_: Any) -> FakeConn:
        answer = answers[(host, port)]
        if isinstance(answer, BaseException):
            raise answer
        conn = FakeConn(host, port, answer)
        opened.append(conn)
        return conn

    monkeypatch.setattr(preflight, "create_conn", create_conn)
    return opened


def cluster(*brokers: tuple[str, int]) -> FakeMetadata:
    return FakeMetadata([(i, h, p, None) for i, (h, p) in enumerate(brokers)])


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ("a:9092", [("a", 9092)]),
        ("a:1, b:2 ,", [("a", 1), ("b", 2)]),
        ("[::1]:9093,c", [("::1", 9093), ("c", 9092)]),
    ],
)
def test_parse_bootstrap(servers: str, expected: list[tuple[str, int]]) -> None:
    """Bootstrap lists: spaces, trailing commas, IPv6 brackets and the default port."""
    assert parse_bootstrap(servers) == expected


def test_parse_bootstrap_rejects_a_bad_port() -> None:
    """A non-numeric port is one line naming the setting."""
    with pytest.raises(KafkaSetupError, match="STREAMPROC_BOOTSTRAP_SERVERS"):
        parse_bootstrap("a:ninety")


async def test_dead_first_bootstrap_falls_through_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unreachable bootstrap server is skipped; the next one that answers is enough."""
    opened = fake_network(
        monkeypatch,
        {("a", 1): ConnectionRefusedError(), ("b", 2): cluster(("b", 2))},
    )
    await check_kafka(
        KafkaConnection.from_settings(Settings(bootstrap_servers="a:1,b:2")), timeout_s=2
    )
    assert [(c.host, c.port, c.closed) for c in opened] == [("b", 2, True)]


async def test_all_unreachable_lists_each_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """When no bootstrap server answers, the line gives each one's reason."""
    fake_network(
        monkeypatch,
        {("a", 1): ConnectionRefusedError(), ("b", 2): socket.gaierror(-2, "Name unknown")},
    )
    with pytest.raises(KafkaSetupError) as caught:
        await check_kafka(
            KafkaConnection.from_settings(Settings(bootstrap_servers="a:1,b:2")), timeout_s=2
        )
    assert str(caught.value) == (
        "cannot reach Kafka at a:1,b:2 (a:1: connection refused; b:2: cannot resolve host "
        "'b'): is the broker up, and STREAMPROC_BOOTSTRAP_SERVERS right?"
    )


async def test_unreachable_advertised_broker_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap answers but advertises an address we cannot reach: advertised.listeners."""
    fake_network(
        monkeypatch,
        {
            ("lb", 9092): cluster(("kafka-0.internal", 9092)),
            ("kafka-0.internal", 9092): socket.gaierror(-2, "Name unknown"),
        },
    )
    with pytest.raises(KafkaSetupError) as caught:
        await check_kafka(
            KafkaConnection.from_settings(Settings(bootstrap_servers="lb:9092")), timeout_s=2
        )
    line = str(caught.value)
    assert line.startswith("lb:9092 answered, but the broker it advertises at kafka-0.internal")
    assert line.endswith("check the broker's advertised.listeners for this listener")


async def test_auth_failure_is_final_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An auth failure stops at once (no second bootstrap), and a secret never shows."""
    fake_network(
        monkeypatch,
        {
            ("a", 1): kafka_errors.SaslAuthenticationFailed("bad creds"),
            ("b", 2): cluster(("b", 2)),
        },
    )
    # A username equal to the password is silly, but must not print the password either.
    settings = Settings(
        bootstrap_servers="a:1,b:2",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="hunter2-pw",
        sasl_password="hunter2-pw",
    )
    with pytest.raises(KafkaSetupError) as caught:
        await check_kafka(KafkaConnection.from_settings(settings), timeout_s=2)
    line = str(caught.value)
    assert line.startswith("authentication failed for user '***' with mechanism SCRAM-SHA-256")
    assert "hunter2-pw" not in line
    assert caught.value.__cause__ is None


async def test_hostname_mismatch_says_to_use_a_certificate_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A certificate for another name is told apart from an untrusted CA."""
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "Hostname mismatch, certificate is not valid for 'b'."
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    fake_network(monkeypatch, {("b", 2): error})
    with pytest.raises(KafkaSetupError, match=r"does not name 'b' .*subjectAltName"):
        await check_kafka(
            KafkaConnection.from_settings(
                Settings(bootstrap_servers="b:2", security_protocol="SSL")
            ),
            timeout_s=2,
        )


async def test_missing_topic_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic asked for that the metadata reports unknown says to run topics create."""
    metadata = cluster(("a", 1))
    metadata.topics = [(0, "leads.raw", False, []), (3, "leads.dlq", False, [])]
    fake_network(monkeypatch, {("a", 1): metadata})
    with pytest.raises(KafkaSetupError, match=r"^topic leads.dlq does not exist: run"):
        await check_kafka(
            KafkaConnection.from_settings(Settings(bootstrap_servers="a:1")),
            2,
            topics=["leads.raw", "leads.dlq"],
        )


async def test_topic_check_never_auto_creates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata request asks about the topics with auto-creation off, on any broker."""
    opened = fake_network(monkeypatch, {("a", 1): cluster(("a", 1))})
    await check_kafka(
        KafkaConnection.from_settings(Settings(bootstrap_servers="a:1")), 2, topics=["leads.raw"]
    )
    (request,) = opened[0].requests
    wire = request.build(MetadataRequest_v5)
    assert wire.topics == ["leads.raw"]
    assert wire.allow_auto_topic_creation is False


def test_metadata_asks_for_authorized_operations_and_falls_back_before_kafka_2_3() -> None:
    """v8 asks for each topic's authorized operations, never auto-creating; a broker older
    than Kafka 2.3 gets v5 (no operations: the ACL checks are skipped)."""
    request = preflight._Metadata(["t"])
    v8 = request.prepare({3: (0, 12)})
    assert v8.API_VERSION == 8
    assert (v8.topics, v8.allow_auto_topic_creation) == (["t"], False)
    assert v8.include_topic_authorized_operations is True
    v5 = request.prepare({3: (0, 5)})
    assert isinstance(v5, MetadataRequest_v5)
    assert v5.allow_auto_topic_creation is False


def test_on_msk_iam_a_missing_permission_names_the_iam_action() -> None:
    """MSK with IAM access control has no ACLs: the hint names the policy action, never a
    kafka-acls command; elsewhere it is the kafka-acls command."""
    from streamproc.kafka.acls import processor_acls

    msk = Settings(
        security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM", sasl_aws_region="eu-west-1"
    )
    by_op = {
        (a.name, a.operation.name): a
        for a in processor_acls(TopicsConfig.from_settings(msk), msk.group_id)
    }
    write = by_op[(msk.topic_enriched, "WRITE")]
    line = str(preflight._missing(KafkaConnection.from_settings(msk), write))
    assert "kafka-acls" not in line
    assert f"`kafka-cluster:WriteData` on topic '{msk.topic_enriched}'" in line
    configs = by_op[(msk.topic_dlq, "DESCRIBE_CONFIGS")]
    assert "kafka-cluster:DescribeTopicDynamicConfiguration" in preflight._grant_hint(
        KafkaConnection.from_settings(msk), [configs]
    )
    plain = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="proc",
        sasl_password="pw-unit",
    )
    assert "kafka-acls --add --allow-principal User:proc" in str(
        preflight._missing(KafkaConnection.from_settings(plain), write)
    )
