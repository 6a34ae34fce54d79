"""SASL/OAUTHBEARER tokens: the OIDC client-credentials grant and Amazon MSK's IAM signer.

aiokafka asks its ``sasl_oauth_token_provider`` for a token on every new connection and
never re-authenticates one; a broker with ``connections.max.reauth.ms`` closes a connection
whose session (at most the token's lifetime) has ended, and the client reconnects with
whatever the provider hands out then. So a provider must hand out a token that is still
valid, and must not ask the identity provider once per connection: one provider per process
and credentials (:func:`token_provider`), each token reused until
:data:`REFRESH_AT_LIFETIME` of its life has passed (the decision is :func:`refresh_due`,
pure), then replaced. If the replacement fails while the old token is still valid, the old
one is used: an identity provider's short outage costs nothing until the token expires.
The next attempt waits :func:`retry_after` (a quarter of the remaining life, at most
``_RETRY_MAX_S``), and new connections meanwhile get the valid token at once instead of
queueing, one identity-provider timeout each, behind the lock.

A failure reaches aiokafka as a ``KafkaConnectionError`` (so a running client retries, as
for an unreachable broker) whose cause is our :class:`~streamproc.errors.KafkaTokenError`
with one line naming the setting; the preflight reports that line. docs/security.md
describes both mechanisms for users.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import AIOKafkaConnection, OAuthAuthenticator
from aiokafka.errors import KafkaConnectionError

from streamproc.errors import ConfigError, KafkaTokenError
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import ENV_PREFIX, SaslMechanism, sasl_extensions

__all__ = [
    "REFRESH_AT_LIFETIME",
    "MskIamTokenProvider",
    "OidcTokenProvider",
    "Token",
    "refresh_due",
    "retry_after",
    "token_provider",
]

log = logging.getLogger(__name__)

#: Share of a token's lifetime after which it is replaced: Kafka's own Java client
#: refreshes at 80 % (``sasl.login.refresh.window.factor``), which leaves a fifth of the
#: lifetime for the identity provider to answer and for connections made just before.
REFRESH_AT_LIFETIME = 0.8
#: A token endpoint that names no lifetime (no ``expires_in``, not a JWT with ``exp``):
#: assume five minutes, short enough that a real shorter lifetime is rarely exceeded.
_ASSUMED_LIFETIME_S = 300.0
#: After a failed refresh, the next attempt waits a quarter of the token's remaining life,
#: at most this and at least ``_RETRY_MIN_S``: several attempts before it expires, and an
#: identity provider's outage costs it a request every half minute per process.
_RETRY_MAX_S = 30.0
_RETRY_MIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and its lifetime, in the provider clock's seconds."""

    value: str
    issued_at: float
    expires_at: float


def refresh_due(token: Token | None, now: float) -> bool:
    """Whether ``token`` must be replaced before it is handed out at ``now``."""
    if token is None:
        return True
    lifetime = max(token.expires_at - token.issued_at, 0.0)
    return now >= token.issued_at + lifetime * REFRESH_AT_LIFETIME


def retry_after(token: Token, now: float) -> float:
    """How long to wait after a failed refresh of the still valid ``token`` at ``now``."""
    return max(_RETRY_MIN_S, min(_RETRY_MAX_S, (token.expires_at - now) / 4))


def _usable(token: Token | None, now: float) -> bool:
    return token is not None and now < token.expires_at


class _CachingProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Reuses a token until :func:`refresh_due`; one fetch at a time per event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._token: Token | None = None
        #: After a failed refresh: no new attempt before this (the valid token meanwhile).
        self._retry_at = float("-inf")
        # asyncio locks belong to one loop; tests and the CLI may run several in turn.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        #: Tokens fetched so far (logs and tests).
        self.fetches = 0

    def _current(self, now: float) -> str | None:
        """The token to hand out at ``now`` without asking the identity provider, if any."""
        token = self._token
        if token is None:
            return None
        if not refresh_due(token, now) or (_usable(token, now) and now < self._retry_at):
            return token.value
        return None

    async def token(self) -> str:
        current = self._current(self._clock())
        if current is not None:
            return current
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            current = self._current(self._clock())
            if current is not None:  # another connection fetched it, or failed to
                return current
            try:
                self._token = await self._fetch()
                self.fetches += 1
                self._retry_at = float("-inf")
            except KafkaTokenError as exc:
                now = self._clock()
                if _usable(self._token, now):
                    assert self._token is not None
                    wait = retry_after(self._token, now)
                    self._retry_at = now + wait
                    log.warning(
                        "kafka.oauth.refresh_failed: %s (the current token is used, next "
                        "attempt in %.0f s)",
                        exc,
                        wait,
                    )
                    return self._token.value
                raise KafkaConnectionError(str(exc)) from exc
            log.info(
                "kafka.oauth.token: new token, valid %.0f s",
                self._token.expires_at - self._token.issued_at,
            )
            return self._token.value

    async def _fetch(self) -> Token:
        raise NotImplementedError


def _endpoint(url: str) -> str:
    """The URL without query or userinfo: what may be printed of it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, unverified: only to know when to refresh."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        exp = json.loads(payload).get("exp")
    except (ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) else None


def _lifetime_s(body: dict[str, Any], access_token: str, wall_now: float) -> float:
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and expires_in > 0:
        return float(expires_in)
    if isinstance(expires_in, str) and expires_in.isdigit() and int(expires_in) > 0:
        return float(expires_in)
    exp = _jwt_expiry(access_token)
    if exp is not None and exp > wall_now:
        return exp - wall_now
    return _ASSUMED_LIFETIME_S


class OidcTokenProvider(_CachingProvider):
    """OAuth 2.0 client-credentials grant (RFC 6749 section 4.4) against an OIDC provider's
    token endpoint: Keycloak, Okta, Entra ID, Auth0, Confluent Cloud's identity pools."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        extensions: dict[str, str] | None = None,
    ) -> None:
        super().__init__(clock)
        self._extensions = dict(extensions or {})
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._timeout_s = timeout_s
        self._wall_clock = wall_clock
        self._transport = transport

    def extensions(self) -> dict[str, str]:
        """SASL extensions sent beside the token (RFC 7628), e.g. Confluent Cloud's
        ``logicalCluster`` and ``identityPoolId``."""
        return dict(self._extensions)

    def _refused(self, what: str) -> KafkaTokenError:
        return KafkaTokenError(
            f"the OIDC token endpoint {_endpoint(self._url)} {what}: check "
            f"{ENV_PREFIX}SASL_OAUTHBEARER_TOKEN_URL, _CLIENT_ID and _CLIENT_SECRET"
        )

    async def _fetch(self) -> Token:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        # RFC 6749 section 2.3.1: id and secret are form-urlencoded inside HTTP Basic.
        auth = httpx.BasicAuth(quote_plus(self._client_id), quote_plus(self._secret))
        began = self._clock()
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout_s, transport=self._transport
            ) as client:
                response = await client.post(
                    self._url, data=form, auth=auth, headers={"Accept": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise self._refused(f"did not answer ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200:
            error = body.get("error")
            reason = f" {error}" if isinstance(error, str) and error.isprintable() else ""
            if error == "invalid_scope":
                raise KafkaTokenError(
                    f"the OIDC token endpoint {_endpoint(self._url)} refused scope "
                    f"{self._scope!r} (HTTP {response.status_code}{reason}): check "
                    f"{ENV_PREFIX}SASL_OAUTHBEARER_SCOPE"
                )
            raise self._refused(
                f"refused client id {self._client_id!r} (HTTP {response.status_code}{reason})"
            )
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._refused("answered without an access_token")
        return Token(
            access_token,
            issued_at=began,
            expires_at=began + _lifetime_s(body, access_token, self._wall_clock()),
        )


class MskIamTokenProvider(_CachingProvider):
    """Amazon MSK IAM: a SigV4-presigned ``kafka-cluster:Connect`` request made by AWS's
    signer package (``aws-msk-iam-sasl-signer-python``), with credentials from the default
    AWS chain, a named profile, or an assumed role. Signing is local; assuming a role
    calls AWS STS."""

    def __init__(
        self,
        region: str,
        *,
        profile: str | None = None,
        role_arn: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self._region = region
        self._profile = profile
        self._role_arn = role_arn
        self._wall_clock = wall_clock
        self._signer = _msk_signer()

    def _generate(self) -> tuple[str, int]:
        signer = self._signer
        if self._role_arn:
            token, expiry_ms = signer.generate_auth_token_from_role_arn(
                self._region, self._role_arn
            )
        elif self._profile:
            token, expiry_ms = signer.generate_auth_token_from_profile(self._region, self._profile)
        else:
            token, expiry_ms = signer.generate_auth_token(self._region)
        return str(token), int(expiry_ms)

    async def _fetch(self) -> Token:
        began = self._clock()
        try:
            # botocore may read files or call STS: not on the event loop.
            token, expiry_ms = await asyncio.to_thread(self._generate)
        except Exception as exc:  # botocore's errors have no common base worth naming
            raise KafkaTokenError(
                f"AWS_MSK_IAM: cannot sign a token for region {self._region} "
                f"({type(exc).__name__}): check the AWS credentials (environment, "
                f"{ENV_PREFIX}SASL_AWS_PROFILE or {ENV_PREFIX}SASL_AWS_ROLE_ARN)"
            ) from None
        lifetime = max(expiry_ms / 1000 - self._wall_clock(), 0.0)
        return Token(token, issued_at=began, expires_at=began + lifetime)


def _msk_signer() -> Any:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError:
        raise ConfigError(
            "sasl_mechanism AWS_MSK_IAM needs AWS's signer package: pip install 'streamproc[msk]'"
        ) from None
    return MSKAuthTokenProvider


class _RefusalAwareAuthenticator(OAuthAuthenticator):  # type: ignore[misc]
    """aiokafka's OAUTHBEARER exchange, finished as RFC 7628 (section 3.2.2) says.

    A broker that refuses the token answers with an error challenge (a JSON status) and
    waits for the client's ``%x01`` before it fails the exchange. aiokafka 0.14 takes the
    challenge for success and sends its next request into the unfinished exchange: the
    broker's answer parses as an empty cluster, and a refused token looks like "no
    brokers". Answering ``%x01`` makes the broker say what it refused, as a
    ``SaslAuthenticationFailed`` with its reason.
    """

    async def step(self, payload: bytes | None) -> tuple[bytes, bool] | None:
        if not self._token_sent:
            sent: tuple[bytes, bool] | None = await super().step(payload)
            return sent
        if payload:
            return b"\x01", True
        return None


def _refusal_aware(connection: AIOKafkaConnection) -> OAuthAuthenticator:
    return _RefusalAwareAuthenticator(
        sasl_oauth_token_provider=connection._sasl_oauth_token_provider
    )


def _finish_refused_exchanges() -> None:
    """Make every aiokafka connection end a refused OAUTHBEARER exchange properly (once)."""
    if AIOKafkaConnection.authenticator_oauth is not _refusal_aware:
        AIOKafkaConnection.authenticator_oauth = _refusal_aware


#: One provider per process and credentials: every client shares its token.
_PROVIDERS: dict[tuple[str | None, ...], _CachingProvider] = {}


def token_provider(connection: KafkaConnection) -> _CachingProvider:
    """The process's token provider for ``connection`` (``OAUTHBEARER`` or ``AWS_MSK_IAM``)."""
    _finish_refused_exchanges()
    if connection.sasl_mechanism is SaslMechanism.AWS_MSK_IAM:
        assert connection.sasl_aws_region is not None  # checked by the settings model
        key: tuple[str | None, ...] = (
            "msk",
            connection.sasl_aws_region,
            connection.sasl_aws_profile,
            connection.sasl_aws_role_arn,
        )
        if key not in _PROVIDERS:
            _PROVIDERS[key] = MskIamTokenProvider(
                connection.sasl_aws_region,
                profile=connection.sasl_aws_profile,
                role_arn=connection.sasl_aws_role_arn,
            )
        return _PROVIDERS[key]
    url = connection.sasl_oauthbearer_token_url
    client_id = connection.sasl_oauthbearer_client_id
    secret = connection.sasl_oauthbearer_client_secret
    assert url is not None and client_id and secret is not None  # checked by the model
    key = (
        "oidc",
        str(url),
        client_id,
        secret.get_secret_value(),
        connection.sasl_oauthbearer_scope,
        connection.sasl_oauthbearer_extensions,
    )
    if key not in _PROVIDERS:
        _PROVIDERS[key] = OidcTokenProvider(
            str(url),
            client_id,
            secret.get_secret_value(),
            scope=connection.sasl_oauthbearer_scope,
            timeout_s=connection.connect_timeout_s,
            extensions=sasl_extensions(connection.sasl_oauthbearer_extensions or ""),
        )
    return _PROVIDERS[key]
