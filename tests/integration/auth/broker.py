"""A local Kafka broker with the standard authorizer and an OAUTHBEARER listener.

Built on scripts/kafka-local (``KAFKA_EXTRA_PROPERTIES``, ``KAFKA_JVM_OPTS``), one per
test session. Listeners, all on 127.0.0.1 from a free base port ``P``:

* ``P``     PLAINTEXT: the admin (principal ``User:ANONYMOUS``, a super user) creates the
  topics and the ACLs here; inter-broker traffic too
* ``P+1``   CONTROLLER
* ``P+2``   ``USERS``, SASL_PLAINTEXT with PLAIN: the least-privilege users ``USERS``,
  who can do only what their ACLs grant
* ``P+3``   ``OAUTH``, SASL_PLAINTEXT with OAUTHBEARER: Kafka's
  ``OAuthBearerValidatorCallbackHandler`` checks each JWT's RS256 signature against the
  test's JWKS endpoint, its issuer, audience and expiry. Its principal (the ``sub``, the
  client id) is a super user: these tests are about authentication.

``connections.max.reauth.ms`` on the OAUTH listener is ``REAUTH_MS``: a session ends at
that age or when its token expires, whichever is first, and the broker then closes the
connection at the next request (aiokafka does not re-authenticate, so it reconnects with a
fresh token). Kafka 4 fetches only URLs listed in the JVM property
``org.apache.kafka.sasl.oauthbearer.allowed.urls``, given here through KAFKA_JVM_OPTS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.auth.idp import AUDIENCE, CLIENT_ID, IdentityProvider
from tests.integration.security.broker import KAFKA_LOCAL, ROOT, _env, _free_base_port, _run

#: The least-privilege users (SASL PLAIN): name → password.
USERS = {"proc": "proc-secret-1", "replayer": "replayer-secret-1"}
#: Sessions on the OAUTH listener last at most this long (ms): the refresh test's clock.
REAUTH_MS = 4_000


@dataclass(frozen=True)
class AuthBroker:
    home: Path
    plaintext: str
    users: str
    oauth: str
    #: Seconds from `start` until the broker answered.
    started_in_s: float


def extra_properties(base_port: int, idp: IdentityProvider) -> str:
    p = base_port
    users = " ".join(f'user_{name}="{password}"' for name, password in USERS.items())
    plain = f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
    oauth = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
    validator = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
    return "\n".join(
        [
            "# --- tests/integration/auth/broker.py ---",
            f"listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1},"
            f"USERS://127.0.0.1:{p + 2},OAUTH://127.0.0.1:{p + 3}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{p},USERS://127.0.0.1:{p + 2},"
            f"OAUTH://127.0.0.1:{p + 3}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "USERS:SASL_PLAINTEXT,OAUTH:SASL_PLAINTEXT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:ANONYMOUS;User:{CLIENT_ID}",
            "listener.name.users.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.users.plain.sasl.jaas.config={plain}",
            "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER",
            f"listener.name.oauth.oauthbearer.sasl.jaas.config={oauth}",
            f"listener.name.oauth.oauthbearer.sasl.server.callback.handler.class={validator}",
            f"listener.name.oauth.oauthbearer.connections.max.reauth.ms={REAUTH_MS}",
            f"sasl.oauthbearer.jwks.endpoint.url={idp.jwks_url}",
            # Kafka 4.1's default (DefaultJwtValidator) was seen accepting a token signed by
            # a key the JWKS does not hold; the broker validator checks the signature.
            "sasl.oauthbearer.jwt.validator.class="
            "org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator",
            f"sasl.oauthbearer.expected.audience={AUDIENCE}",
            f"sasl.oauthbearer.expected.issuer={idp.issuer_url}",
            "",
        ]
    )


def start_auth_broker(home: Path, idp: IdentityProvider) -> AuthBroker:
    """Start the broker (``idp`` must already serve its JWKS); blocks until it answers."""
    home.mkdir(parents=True, exist_ok=True)
    base = _free_base_port()
    extra_file = home / "extra.properties"
    extra_file.write_text(extra_properties(base, idp))
    env = _env(home, base, extra_file)
    env["KAFKA_JVM_OPTS"] = (
        f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={idp.jwks_url},{idp.token_url}"
    )
    began = time.monotonic()
    try:
        _run([str(KAFKA_LOCAL), "start"], ROOT, env)
    except RuntimeError:
        stop_auth_broker(home, base)
        raise
    return AuthBroker(
        home=home,
        plaintext=f"127.0.0.1:{base}",
        users=f"127.0.0.1:{base + 2}",
        oauth=f"127.0.0.1:{base + 3}",
        started_in_s=time.monotonic() - began,
    )


def stop_auth_broker(home: Path, base_port: int) -> None:
    """Stop the broker by the pid kafka-local recorded in ``home``."""
    _run([str(KAFKA_LOCAL), "stop"], ROOT, _env(home, base_port, None))
