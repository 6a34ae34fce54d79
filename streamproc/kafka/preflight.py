"""Kafka preflight: prove the broker is reachable and accepts us, or say why in one line.

aiokafka retries a failed bootstrap quietly and reports "Unable to bootstrap from ...",
whatever went wrong; a wrong password or CA then looks like a network problem, or like a
hang. :func:`check_kafka` makes one connection by hand (the same arguments every client
gets, from :func:`~streamproc.kafka.client.connection_kwargs`), classifies what failed and
raises :class:`~streamproc.errors.KafkaSetupError` with one line that names the setting to
fix. It never includes a secret: messages are built from our own words, and any secret
value is scrubbed from the result all the same.

What it checks, within ``timeout_s`` overall:

1. a bootstrap server answers: TCP, TLS (certificate verified), Kafka ``ApiVersions``, and
   the SASL handshake and authentication;
2. the cluster metadata names at least one broker, and every broker it advertises accepts
   a connection too (a wrong ``advertised.listeners`` is the classic "works with the
   bootstrap, hangs afterwards");
3. the ``topics`` asked for exist and we may describe them;
4. the ACLs the command needs (:mod:`streamproc.kafka.acls`): a missing one is a refusal
   naming it and how to grant it (a ``kafka-acls`` command, or the IAM action on MSK IAM);
   a missing optional one (``DescribeConfigs``) is one warning line, and start-up goes on.

Authentication and TLS failures are final at once: another bootstrap server of the same
cluster would answer the same. An unreachable server makes it try the next one.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.conn import create_conn
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest_v5
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Schema, String

from streamproc.errors import KafkaAuthorizationError, KafkaSetupError, KafkaTokenError
from streamproc.kafka.acls import Acl, ResourceType, grant_command, iam_action
from streamproc.kafka.client import connection_kwargs
from streamproc.kafka.config import KafkaConnection
from streamproc.logs import get_logger
from streamproc.settings import ENV_PREFIX, SaslMechanism, SecurityProtocol

__all__ = ["check_kafka", "parse_bootstrap"]

log = get_logger(__name__)

#: Kafka error codes in a metadata answer (protocol constants).
_UNKNOWN_TOPIC = 3
_TOPIC_AUTHORIZATION_FAILED = 29
_GROUP_AUTHORIZATION_FAILED = 30
_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
#: FindCoordinator's key types.
_GROUP_KEY, _TRANSACTION_KEY = 0, 1
#: "Authorized operations" when the broker did not compute them.
_OPS_UNKNOWN = -(2**31)


class _MetadataResponse_v8(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            Array(
                ("node_id", Int32),
                ("host", String("utf-8")),
                ("port", Int32),
                ("rack", String("utf-8")),
            ),
        ),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("topic", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", Array(Int32)),
                        ("isr", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class _MetadataRequest_v8(RequestStruct):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = _MetadataResponse_v8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class _Metadata(Request[MetadataRequest_v5 | _MetadataRequest_v8]):  # type: ignore[misc]
    """Metadata for ``topics``, never creating one, with what we may do to each (v8, Kafka
    2.3+: KIP-430); an older broker answers v5, without the operations."""

    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(
        self, request_struct_class: type[MetadataRequest_v5 | _MetadataRequest_v8]
    ) -> MetadataRequest_v5 | _MetadataRequest_v8:
        if request_struct_class.API_VERSION >= 8:
            return _MetadataRequest_v8(self._topics, False, False, True)
        return MetadataRequest_v5(self._topics, False)


#: OpenSSL reasons a server sends when it refuses the client's certificate (mTLS).
_CLIENT_CERT_REFUSED = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "HANDSHAKE_FAILURE",
)


@dataclass(frozen=True, slots=True)
class _Problem:
    line: str
    #: Final: no point trying another bootstrap server of the same cluster.
    final: bool


def parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    """``"a:9092,[::1]:9093,b"`` → ``[("a", 9092), ("::1", 9093), ("b", 9092)]``."""
    out: list[tuple[str, int]] = []
    for raw in servers.split(","):
        item = raw.strip()
        if not item:
            continue
        host, port = item, "9092"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "9092"
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            out.append((host, int(port)))
        except ValueError:
            raise KafkaSetupError(
                f"bootstrap server {item!r} has no valid port: "
                "check STREAMPROC_BOOTSTRAP_SERVERS (host:port,...)"
            ) from None
    if not out:
        raise KafkaSetupError("STREAMPROC_BOOTSTRAP_SERVERS is empty: give host:port,...")
    return out


async def check_kafka(
    kafka: KafkaConnection,
    timeout_s: float = 10.0,
    *,
    topics: Iterable[str] = (),
    acls: Iterable[Acl] = (),
    topic_raw: str | None = None,
) -> None:
    """Return when Kafka accepts our settings; raise ``KafkaSetupError`` (one line) if not.

    ``acls``: what the command needs (:mod:`streamproc.kafka.acls`). Checked: every topic
    operation (the broker's authorized operations, KIP-430), and Describe on each group
    and transactional id (what a coordinator lookup needs; each ACL the lists name implies
    it). A missing one is a :class:`KafkaAuthorizationError` naming it; a missing optional
    one is a ``kafka.acl_missing_optional`` warning line. ``topic_raw`` names the
    transactional id probed under a prefix ACL (``<prefix><topic_raw>.0``, the first the
    processor uses); only such an ACL needs it.

    ``ConfigError`` (not ``KafkaSetupError``) comes out when the TLS files cannot be loaded
    at all: that is a bad setting, not a broker problem.
    """
    kwargs = connection_kwargs(kafka)
    secrets = [
        s.get_secret_value()
        for s in (
            kafka.sasl_password,
            kafka.ssl_key_password,
            kafka.sasl_oauthbearer_client_secret,
        )
        if s is not None and s.get_secret_value()
    ]
    try:
        await _check(kafka, kwargs, timeout_s, list(topics), list(acls), topic_raw)
    except KafkaSetupError as exc:
        line = str(exc)
        for secret in secrets:
            line = line.replace(secret, "***")
        raise KafkaSetupError(line) from None


async def _check(
    kafka: KafkaConnection,
    kwargs: dict[str, Any],
    timeout_s: float,
    topics: list[str],
    acls: list[Acl],
    topic_raw: str | None,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    problems: list[str] = []
    for host, port in parse_bootstrap(kafka.bootstrap_servers):
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            conn = await _connect(host, port, kwargs, left)
        except Exception as exc:
            problem = _explain(exc, kafka, host, port, left)
            if problem.final:
                raise KafkaSetupError(problem.line) from None
            problems.append(problem.line)
            continue
        try:
            await _check_cluster(
                kafka, kwargs, conn, deadline - loop.time(), topics, acls, topic_raw
            )
        finally:
            conn.close()
        return
    detail = "; ".join(problems) or f"no answer within {timeout_s:g} s"
    raise KafkaSetupError(
        f"cannot reach Kafka at {kafka.bootstrap_servers} ({detail}): is the broker up, "
        "and STREAMPROC_BOOTSTRAP_SERVERS right?"
    )


async def _connect(host: str, port: int, kwargs: dict[str, Any], timeout_s: float) -> Any:
    params = {k: v for k, v in kwargs.items() if k != "bootstrap_servers"}
    async with asyncio.timeout(timeout_s):
        return await create_conn(
            host,
            port,
            client_id="streamproc-preflight",
            request_timeout_ms=max(int(timeout_s * 1000), 1),
            **params,
        )


async def _check_cluster(
    kafka: KafkaConnection,
    kwargs: dict[str, Any],
    conn: Any,
    timeout_s: float,
    topics: list[str],
    acls: list[Acl],
    topic_raw: str | None,
) -> None:
    """``topic_raw`` names the transactional id probed under a prefix ACL."""
    where = f"{conn.host}:{conn.port}"
    topic_acls = [acl for acl in acls if acl.resource is ResourceType.TOPIC]
    topics = list(dict.fromkeys([*topics, *(acl.name for acl in topic_acls)]))
    try:
        async with asyncio.timeout(max(timeout_s, 0.001)):
            # Never auto-create: asking about a topic must not make it (with default settings).
            metadata = await conn.send(_Metadata(topics))
    except (TimeoutError, kafka_errors.KafkaError) as exc:
        raise KafkaSetupError(
            f"the broker at {where} accepted the connection but gave no cluster metadata "
            f"({type(exc).__name__})"
        ) from None
    brokers = [(str(b[1]), int(b[2])) for b in metadata.brokers]
    if not brokers:
        raise KafkaSetupError(f"the broker at {where} reports no brokers in its cluster")
    others = [(h, p) for h, p in brokers if (h, p) != (conn.host, conn.port)]
    results = await asyncio.gather(
        *(_connect(h, p, kwargs, max(timeout_s, 0.001)) for h, p in others),
        return_exceptions=True,
    )
    for result in results:
        if not isinstance(result, BaseException):
            result.close()
    for (h, p), result in zip(others, results, strict=True):
        if isinstance(result, BaseException):
            reason = _explain(result, kafka, h, p, timeout_s).line
            raise KafkaSetupError(
                f"{where} answered, but the broker it advertises at {h}:{p} does not: "
                f"{reason}; check the broker's advertised.listeners for this listener"
            )
    optional_missing: list[Acl] = []
    for topic_meta in metadata.topics:
        code, name = int(topic_meta[0]), str(topic_meta[1])
        if code == _UNKNOWN_TOPIC:
            raise KafkaSetupError(f"topic {name} does not exist: run `streamproc topics create`")
        needed = [acl for acl in topic_acls if acl.name == name]
        if code == _TOPIC_AUTHORIZATION_FAILED:
            if needed:  # any ACL on the topic would let us describe it
                required = [acl for acl in needed if not acl.optional]
                raise _missing(kafka, (required or needed)[0])
            raise KafkaSetupError(
                f"not authorized to describe topic {name} as {_principal(kafka)}: "
                "check the broker's ACLs"
            )
        allowed = int(topic_meta[4]) if len(topic_meta) > 4 else _OPS_UNKNOWN
        if allowed == _OPS_UNKNOWN:
            continue
        for acl in needed:
            if not allowed & (1 << int(acl.operation)):
                if not acl.optional:
                    raise _missing(kafka, acl)
                optional_missing.append(acl)
    if optional_missing:
        _warn_optional(kafka, optional_missing)
    for acl in acls:
        if acl.resource is ResourceType.GROUP:
            key, key_type, refused = acl.name, _GROUP_KEY, _GROUP_AUTHORIZATION_FAILED
        elif acl.resource is ResourceType.TRANSACTIONAL_ID:
            # A prefix ACL: ask about an id it covers, as the first one we would use.
            if acl.prefixed and topic_raw is None:
                raise ValueError(f"a prefix ACL ({acl.name}) needs topic_raw to name a probe")
            key = f"{acl.name}{topic_raw}.0" if acl.prefixed else acl.name
            key_type, refused = _TRANSACTION_KEY, _TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        else:
            continue
        try:
            async with asyncio.timeout(max(timeout_s, 0.001)):
                found = await conn.send(FindCoordinatorRequest(key, key_type))
        except (TimeoutError, kafka_errors.KafkaError):
            continue  # not an authorization answer: the clients will say what is wrong
        if int(found.error_code) == refused:
            raise _missing(kafka, acl)


def _acl_principal(kafka: KafkaConnection) -> str:
    """The principal to grant to, as kafka-acls spells it (as far as we can know it)."""
    mechanism = kafka.sasl_in_use
    if mechanism is SaslMechanism.OAUTHBEARER:
        # The broker's principal is the token's sub claim: often, not always, the client id.
        return f"User:{kafka.sasl_oauthbearer_client_id}"
    if mechanism not in (None, SaslMechanism.AWS_MSK_IAM) and kafka.sasl_username:
        return f"User:{kafka.sasl_username}"
    return "User:<principal>"


def _grant_hint(kafka: KafkaConnection, acls: list[Acl]) -> str:
    """How to grant ``acls``: ``kafka-acls`` commands, or on MSK IAM the policy's actions
    (MSK has no ACLs to add)."""
    if kafka.sasl_in_use is SaslMechanism.AWS_MSK_IAM:
        actions = ", ".join(
            f"`{iam_action(acl)}` on {acl.describe().split(' on ', 1)[1]}" for acl in acls
        )
        return f"allow it in the IAM policy of these credentials: {actions}"
    commands = "; ".join(f"`{grant_command(acl, _acl_principal(kafka))}`" for acl in acls)
    return f"grant it: {commands}"


def _missing(kafka: KafkaConnection, acl: Acl) -> KafkaAuthorizationError:
    return KafkaAuthorizationError(
        f"not authorized: {_principal(kafka)} lacks {acl.describe()} ({acl.why}); "
        f"{_grant_hint(kafka, [acl])} (docs/security.md lists every ACL)"
    )


def _warn_optional(kafka: KafkaConnection, acls: list[Acl]) -> None:
    """One line for the recommended permissions that are missing: start-up goes on."""
    lacks = ", ".join(f"{acl.describe()} ({acl.why})" for acl in acls)
    log.warning(
        "kafka.acl_missing_optional",
        principal=_principal(kafka),
        detail=f"{_principal(kafka)} lacks {lacks}: Kafka's default max.message.bytes "
        f"(1 MiB) is assumed; recommended, {_grant_hint(kafka, acls)} "
        "(docs/security.md)",
    )


def _principal(kafka: KafkaConnection) -> str:
    mechanism = kafka.sasl_in_use
    if mechanism is SaslMechanism.OAUTHBEARER:
        return f"OAUTHBEARER client {kafka.sasl_oauthbearer_client_id!r}"
    if mechanism is SaslMechanism.AWS_MSK_IAM:
        return "the AWS IAM identity of the credentials"
    if kafka.sasl_username and mechanism is not None:
        return f"user {kafka.sasl_username!r}"
    if kafka.security_protocol is SecurityProtocol.SSL and kafka.ssl_certfile:
        return f"the client certificate {kafka.ssl_certfile}"
    return "ANONYMOUS"


def _explain(
    exc: BaseException, kafka: KafkaConnection, host: str, port: int, timeout_s: float
) -> _Problem:
    """One line for what went wrong connecting to ``host:port``; secrets never enter it."""
    where = f"{host}:{port}"
    protocol = kafka.security_protocol.value
    tls = kafka.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
    # aiokafka wraps a failure on an established connection; the cause says more.
    cause = exc.__cause__
    if isinstance(exc, kafka_errors.KafkaConnectionError) and isinstance(cause, ssl.SSLError):
        exc = cause
    mechanism = kafka.sasl_mechanism.value
    if isinstance(cause, KafkaTokenError):  # no token to offer (streamproc.kafka.oauth)
        return _Problem(str(cause), final=True)
    if isinstance(
        exc, kafka_errors.SaslAuthenticationFailed | kafka_errors.AuthenticationFailedError
    ) and kafka.sasl_mechanism in (SaslMechanism.OAUTHBEARER, SaslMechanism.AWS_MSK_IAM):
        # The broker's reason (expired, wrong audience, bad signature) is its own words
        # about the token, never the token itself.
        said = str(exc.args[0]) if exc.args else ""
        detail = f": {said.splitlines()[0][:200]}" if said and said.isprintable() else ""
        hint = (
            "check the broker's JWKS/issuer/audience settings and "
            f"{ENV_PREFIX}SASL_OAUTHBEARER_TOKEN_URL"
            if kafka.sasl_mechanism is SaslMechanism.OAUTHBEARER
            else "check the IAM policy and STREAMPROC_SASL_AWS_REGION"
        )
        return _Problem(
            f"the broker at {where} refused the token of {_principal(kafka)}{detail}; {hint}",
            final=True,
        )
    if isinstance(
        exc, kafka_errors.SaslAuthenticationFailed | kafka_errors.AuthenticationFailedError
    ):
        return _Problem(
            f"authentication failed for user {kafka.sasl_username!r} with mechanism "
            f"{mechanism} at {where}: check STREAMPROC_SASL_USERNAME and "
            "STREAMPROC_SASL_PASSWORD (and STREAMPROC_SASL_MECHANISM)",
            final=True,
        )
    if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError):
        return _Problem(
            f"the broker at {where} does not enable SASL mechanism {mechanism} on this "
            "listener: check STREAMPROC_SASL_MECHANISM",
            final=True,
        )
    if isinstance(exc, kafka_errors.IllegalSaslStateError):
        return _Problem(
            f"the broker at {where} refused the SASL handshake: is it a SASL listener? "
            f"check STREAMPROC_SECURITY_PROTOCOL (now {protocol})",
            final=True,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = str(exc.verify_message or exc.reason or "unknown reason")
        if "mismatch" in message.lower():
            return _Problem(
                f"TLS certificate of {where} does not name {host!r} ({message}): connect "
                "by a name in its subjectAltName, or fix the broker's certificate",
                final=True,
            )
        return _Problem(
            f"TLS certificate verify failed for {where} ({message}): "
            "check STREAMPROC_SSL_CAFILE (the CA that signed the broker's certificate)",
            final=True,
        )
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or type(exc).__name__)
        if any(tag in reason.upper() for tag in _CLIENT_CERT_REFUSED):
            return _Problem(
                f"the broker at {where} refused our TLS client certificate ({reason}): "
                "check STREAMPROC_SSL_CERTFILE and STREAMPROC_SSL_KEYFILE (signed by a CA "
                "the broker trusts)",
                final=True,
            )
        return _Problem(
            f"TLS handshake with {where} failed ({reason}): is it a TLS listener? "
            f"check STREAMPROC_SECURITY_PROTOCOL (now {protocol})",
            final=True,
        )
    if isinstance(exc, kafka_errors.KafkaConnectionError):
        hint = (
            "the broker may refuse our client certificate (STREAMPROC_SSL_CERTFILE), or "
            if tls and kafka.ssl_certfile is not None
            else ""
        )
        return _Problem(
            f"the broker at {where} closed the connection during the Kafka handshake: "
            f"{hint}the listener may not speak {protocol}: check STREAMPROC_SECURITY_PROTOCOL",
            final=True,
        )
    if tls and isinstance(exc, ConnectionResetError | BrokenPipeError):
        return _Problem(
            f"the broker at {where} dropped the connection during the TLS handshake: is it "
            f"a TLS listener? check STREAMPROC_SECURITY_PROTOCOL (now {protocol})",
            final=True,
        )
    if isinstance(exc, TimeoutError):
        hint = " (a TLS client on a plaintext port, or a firewall, can stall)" if tls else ""
        return _Problem(f"{where}: no answer within {timeout_s:.3g} s{hint}", final=False)
    if isinstance(exc, socket.gaierror):
        return _Problem(f"{where}: cannot resolve host {host!r}", final=False)
    if isinstance(exc, ConnectionRefusedError):
        return _Problem(f"{where}: connection refused", final=False)
    if isinstance(exc, OSError):
        return _Problem(f"{where}: {exc.strerror or type(exc).__name__}", final=False)
    if isinstance(exc, kafka_errors.KafkaError):
        return _Problem(f"{where}: Kafka error {type(exc).__name__}", final=True)
    return _Problem(f"{where}: unexpected {type(exc).__name__}", final=True)
