"""Settings of OAUTHBEARER and AWS MSK IAM, the clients' arguments, and the ACL lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.cli import main
from streamproc.kafka.acls import (
    Operation,
    ResourceType,
    grant_command,
    processor_acls,
    replayer_acls,
)
from streamproc.kafka.client import connection_kwargs
from streamproc.kafka.config import KafkaConnection, TopicsConfig
from streamproc.kafka.oauth import MskIamTokenProvider, OidcTokenProvider
from streamproc.settings import Settings
from tests.unit.config_errors import config_show_error

OIDC = {
    "STREAMPROC_SECURITY_PROTOCOL": "SASL_SSL",
    "STREAMPROC_SASL_MECHANISM": "OAUTHBEARER",
    "STREAMPROC_SASL_OAUTHBEARER_TOKEN_URL": "https://idp.example/token",
    "STREAMPROC_SASL_OAUTHBEARER_CLIENT_ID": "streamproc",
    "STREAMPROC_SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-secret-value",
}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {k: v for k, v in OIDC.items() if "TOKEN_URL" not in k},
            "sasl_mechanism OAUTHBEARER needs STREAMPROC_SASL_OAUTHBEARER_TOKEN_URL",
        ),
        (
            {k: v for k, v in OIDC.items() if "SECRET" not in k},
            "needs STREAMPROC_SASL_OAUTHBEARER_CLIENT_SECRET",
        ),
        (
            {
                "STREAMPROC_SECURITY_PROTOCOL": "SASL_SSL",
                "STREAMPROC_SASL_MECHANISM": "AWS_MSK_IAM",
            },
            "needs STREAMPROC_SASL_AWS_REGION",
        ),
        (
            {
                "STREAMPROC_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "STREAMPROC_SASL_MECHANISM": "AWS_MSK_IAM",
                "STREAMPROC_SASL_AWS_REGION": "eu-west-1",
            },
            "AWS_MSK_IAM needs security_protocol SASL_SSL",
        ),
        (
            {"STREAMPROC_SASL_OAUTHBEARER_TOKEN_URL": "not a url"},
            "sasl_oauthbearer_token_url",
        ),
        (
            {**OIDC, "STREAMPROC_SASL_OAUTHBEARER_EXTENSIONS": "logicalCluster=lkc-1,pool"},
            "sasl_oauthbearer_extensions",
        ),
    ],
)
def test_auth_misconfiguration_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    says: str,
) -> None:
    """A mechanism without what it needs: one line naming the missing setting, exit 2."""
    err = config_show_error(monkeypatch, capsys, env)
    assert says in err
    assert "oidc-secret-value" not in err


def test_client_secret_from_a_file_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The client secret is a secret: read from *_FILE, masked by `config show`."""
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("from-a-file-secret\n")
    for key, value in OIDC.items():
        if "SECRET" not in key:
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("STREAMPROC_SASL_OAUTHBEARER_CLIENT_SECRET_FILE", str(secret_file))
    assert main(["config", "show"]) == 0
    out = capsys.readouterr()
    assert "from-a-file-secret" not in out.out + out.err
    assert "sasl_oauthbearer_client_id" in out.out


def test_oauthbearer_clients_share_one_provider() -> None:
    """Every client of a process gets OAUTHBEARER and the same provider (one token)."""
    settings = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauthbearer_token_url="https://idp.example/token",
        sasl_oauthbearer_client_id="streamproc",
        sasl_oauthbearer_client_secret="oidc-secret-value",
    )
    kafka = KafkaConnection.from_settings(settings)
    first, second = connection_kwargs(kafka), connection_kwargs(kafka)
    assert first["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(first["sasl_oauth_token_provider"], OidcTokenProvider)
    assert first["sasl_oauth_token_provider"] is second["sasl_oauth_token_provider"]
    assert "sasl_plain_password" not in first


def test_msk_iam_travels_as_oauthbearer() -> None:
    """AWS_MSK_IAM: OAUTHBEARER on the wire with the MSK signer's provider."""
    settings = Settings(
        security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM", sasl_aws_region="eu-west-1"
    )
    kwargs = connection_kwargs(KafkaConnection.from_settings(settings))
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(kwargs["sasl_oauth_token_provider"], MskIamTokenProvider)


def test_acl_lists_name_the_settings_resources() -> None:
    """The lists follow the settings: topics, groups and transactional ids by name."""
    s = Settings(group_id="enrich", topic_raw="in", topic_dlq="dead", topic_state="st")
    run = {
        (a.resource, a.name, a.operation, a.prefixed)
        for a in processor_acls(TopicsConfig.from_settings(s), s.group_id)
    }
    assert (ResourceType.TOPIC, "in", Operation.READ, False) in run
    assert (ResourceType.GROUP, "enrich", Operation.READ, False) in run
    assert (ResourceType.TRANSACTIONAL_ID, "enrich.", Operation.WRITE, True) in run
    assert not any(a[0] is ResourceType.CLUSTER for a in run)
    replay = {
        (a.resource, a.name, a.operation)
        for a in replayer_acls(TopicsConfig.from_settings(s), s.group_id)
    }
    assert (ResourceType.GROUP, "enrich-replayer", Operation.READ) in replay
    assert (ResourceType.TRANSACTIONAL_ID, "enrich-replayer.dead", Operation.WRITE) in replay
    assert (ResourceType.TOPIC, "dead", Operation.WRITE) in replay


def test_grant_command_is_kafka_acls_syntax() -> None:
    """The hint in an authorization error is a kafka-acls command that can be pasted."""
    txn = next(
        a
        for a in processor_acls(TopicsConfig.from_settings(Settings()), "g")
        if a.resource is ResourceType.TRANSACTIONAL_ID
    )
    assert grant_command(txn, "User:proc") == (
        "kafka-acls --add --allow-principal User:proc --operation Write "
        "--transactional-id 'g.' --resource-pattern-type prefixed"
    )
    assert txn.describe() == "Write on transactional id 'g.' prefix"
