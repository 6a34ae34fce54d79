"""OAUTHBEARER token providers: the refresh rule, the OIDC client-credentials request and
its refusals (httpx MockTransport), and AWS MSK IAM tokens signed locally with fake keys."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError

from streamproc.errors import KafkaTokenError
from streamproc.kafka.oauth import (
    REFRESH_AT_LIFETIME,
    MskIamTokenProvider,
    OidcTokenProvider,
    Token,
    refresh_due,
)

URL = "https://idp.example/realms/kafka/protocol/openid-connect/token"
SECRET = "s3cr3t/with+chars"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refresh_due_at_eighty_percent_of_the_lifetime() -> None:
    """A token is handed out until 80 % of its life has passed, then replaced."""
    token = Token("t", issued_at=100.0, expires_at=200.0)
    assert refresh_due(None, 0.0)
    assert not refresh_due(token, 100.0)
    assert not refresh_due(token, 100.0 + 100 * REFRESH_AT_LIFETIME - 0.01)
    assert refresh_due(token, 100.0 + 100 * REFRESH_AT_LIFETIME)
    assert refresh_due(token, 250.0)


class Endpoint:
    """A token endpoint's answers, and what it was asked."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def provider(endpoint: Endpoint, clock: Clock, **kwargs: Any) -> OidcTokenProvider:
    return OidcTokenProvider(
        URL,
        "streamproc",
        SECRET,
        scope="kafka",
        clock=clock,
        transport=httpx.MockTransport(endpoint),
        **kwargs,
    )


def ok(token: str, expires_in: int | None = 60) -> httpx.Response:
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return httpx.Response(200, json=body)


async def test_client_credentials_request_and_token_reuse() -> None:
    """One POST with grant_type, scope and HTTP Basic (form-encoded id and secret); the token
    is reused until its refresh point, then a new one is fetched."""
    clock = Clock()
    endpoint = Endpoint(ok("first"), ok("second"))
    tokens = provider(endpoint, clock)
    assert await tokens.token() == "first"
    clock.now += 47  # < 80 % of 60 s
    assert await tokens.token() == "first"
    assert len(endpoint.requests) == 1
    clock.now += 2  # 49 s > 48 s
    assert await tokens.token() == "second"
    request = endpoint.requests[0]
    assert request.method == "POST"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["kafka"],
    }
    scheme, _, value = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(value).decode() == "streamproc:s3cr3t%2Fwith%2Bchars"


async def test_refused_client_is_one_line_without_the_secret() -> None:
    """A 401 from the endpoint reaches aiokafka as a connection error whose cause is one
    KafkaTokenError line naming the settings, never the secret."""
    endpoint = Endpoint(httpx.Response(401, json={"error": "invalid_client"}))
    with pytest.raises(KafkaConnectionError) as caught:
        await provider(endpoint, Clock()).token()
    cause = caught.value.__cause__
    assert isinstance(cause, KafkaTokenError)
    line = str(cause)
    assert "refused client id 'streamproc' (HTTP 401 invalid_client)" in line
    assert "STREAMPROC_SASL_OAUTHBEARER_TOKEN_URL" in line
    assert SECRET not in line and "\n" not in line


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (httpx.Response(400, json={"error": "invalid_scope"}), "refused scope 'kafka'"),
        (httpx.Response(200, json={"token_type": "Bearer"}), "without an access_token"),
        (httpx.Response(503, text="<html>down</html>"), "(HTTP 503)"),
    ],
)
async def test_other_endpoint_failures_say_what_went_wrong(
    answer: httpx.Response, said: str
) -> None:
    """A refused scope, an answer without a token, an outage: each its own line."""
    with pytest.raises(KafkaConnectionError) as caught:
        await provider(Endpoint(answer), Clock()).token()
    assert said in str(caught.value.__cause__)


async def test_unreachable_endpoint_is_a_token_error() -> None:
    """A connection failure to the endpoint is reported as such, with the URL's path only."""

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    tokens = OidcTokenProvider(
        URL + "?tenant=x", "streamproc", SECRET, transport=httpx.MockTransport(down)
    )
    with pytest.raises(KafkaConnectionError) as caught:
        await tokens.token()
    line = str(caught.value.__cause__)
    assert f"{URL} did not answer (ConnectError)" in line
    assert "tenant" not in line


async def test_a_failed_refresh_keeps_the_valid_token() -> None:
    """The endpoint failing at refresh time costs nothing while the old token is valid, and
    fails once it has expired."""
    clock = Clock()
    endpoint = Endpoint(ok("first"), httpx.Response(503))
    tokens = provider(endpoint, clock)
    assert await tokens.token() == "first"
    clock.now += 55  # refresh due, still valid
    assert await tokens.token() == "first"
    clock.now += 10  # expired
    with pytest.raises(KafkaConnectionError):
        await tokens.token()


async def test_after_a_failed_refresh_the_valid_token_is_handed_out_without_asking() -> None:
    """During an identity provider's outage, new connections get the valid token at once:
    the next attempt waits a quarter of its remaining life (at most 30 s), not one request
    (and one timeout) per connection."""
    clock = Clock()
    endpoint = Endpoint(ok("first", 120), httpx.Response(503), httpx.Response(503), ok("second"))
    tokens = provider(endpoint, clock)
    assert await tokens.token() == "first"
    clock.now += 100  # refresh due (96 s), 20 s left
    assert await tokens.token() == "first"
    assert len(endpoint.requests) == 2
    for _ in range(10):  # ten new connections
        assert await tokens.token() == "first"
    clock.now += 4.9  # < 20 s / 4
    assert await tokens.token() == "first"
    assert len(endpoint.requests) == 2
    clock.now += 0.2  # the retry is due: it fails again, 14.9 s left
    assert await tokens.token() == "first"
    assert len(endpoint.requests) == 3
    clock.now += 3.6  # < 14.9 s / 4
    assert await tokens.token() == "first"
    assert len(endpoint.requests) == 3
    clock.now += 0.2
    assert await tokens.token() == "second"
    assert len(endpoint.requests) == 4
    clock.now += 1
    assert await tokens.token() == "second"
    assert len(endpoint.requests) == 4


async def test_lifetime_from_the_jwt_when_expires_in_is_missing() -> None:
    """Without ``expires_in`` the JWT's ``exp`` claim sets when the token is replaced."""
    now = time.time()
    payload = base64.urlsafe_b64encode(json.dumps({"exp": now + 10}).encode()).rstrip(b"=")
    jwt = f"e30.{payload.decode()}.sig"
    clock = Clock()
    endpoint = Endpoint(ok(jwt, expires_in=None), ok("next"))
    tokens = provider(endpoint, clock, wall_clock=lambda: now)
    assert await tokens.token() == jwt
    clock.now += 7.9
    assert await tokens.token() == jwt
    clock.now += 0.2
    assert await tokens.token() == "next"


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """Static fake credentials in the environment; no config files, no instance metadata."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake/secret/key/0000000000000000000000")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return "AKIAFAKEFAKEFAKE0000"


async def test_msk_iam_token_is_a_presigned_connect_request(fake_aws: str) -> None:
    """AWS's signer makes the token locally: a base64url SigV4-presigned
    ``kafka-cluster:Connect`` URL for the region, valid 15 minutes."""
    clock = Clock()
    tokens = MskIamTokenProvider("eu-west-1", clock=clock)
    began = time.time()
    value = await tokens.token()
    url = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "https"
    assert parts.hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].startswith(f"{fake_aws}/")
    assert query["X-Amz-Credential"].endswith("/eu-west-1/kafka-cluster/aws4_request")
    assert query["X-Amz-Expires"] == "900"
    assert len(query["X-Amz-Signature"]) == 64
    assert "fake/secret" not in url
    # Reused until 80 % of its 15 minutes, then signed again.
    token = tokens._token
    assert token is not None
    assert 890 <= token.expires_at - token.issued_at <= 900 + (time.time() - began)
    clock.now += 700
    assert await tokens.token() == value
    clock.now += 30
    assert tokens.fetches == 1
    await tokens.token()
    assert tokens.fetches == 2


async def test_msk_iam_without_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """No AWS credentials anywhere: one line naming the region and where credentials come
    from."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(KafkaConnectionError) as caught:
        await MskIamTokenProvider("us-east-1").token()
    line = str(caught.value.__cause__)
    assert line.startswith("AWS_MSK_IAM: cannot sign a token for region us-east-1")
    assert "STREAMPROC_SASL_AWS_PROFILE" in line


async def test_sasl_extensions_travel_with_the_token() -> None:
    """Configured SASL extensions (Confluent Cloud's logicalCluster, identityPoolId) are in
    the OAUTHBEARER client message aiokafka sends, after the token."""
    from streamproc.kafka.oauth import _RefusalAwareAuthenticator

    tokens = provider(
        Endpoint(ok("tok")),
        Clock(),
        extensions={"logicalCluster": "lkc-1", "identityPoolId": "pool-2"},
    )
    step = await _RefusalAwareAuthenticator(sasl_oauth_token_provider=tokens).step(None)
    assert step is not None
    assert step[0] == (
        b"n,,\x01auth=Bearer tok\x01logicalCluster=lkc-1\x01identityPoolId=pool-2\x01\x01"
    )


def test_msk_iam_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without AWS's signer package, AWS_MSK_IAM is a ConfigError naming the extra."""
    import sys

    from streamproc.errors import ConfigError

    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)
    with pytest.raises(ConfigError, match=r"pip install 'streamproc\[msk\]'"):
        MskIamTokenProvider("eu-west-1")
