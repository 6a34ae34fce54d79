"""A small OIDC identity provider for the OAUTHBEARER tests: a JWKS and a token endpoint.

It runs in a thread (not on the test's event loop): the broker fetches the JWKS at start-up
and whenever it meets a key id it does not know, between tests as well as during them.

* ``GET /jwks``: the public RSA key that signs every token (``kid`` = ``KEY_ID``).
* ``POST /token``: the client-credentials grant (RFC 6749 section 4.4). The client
  authenticates with HTTP Basic; a wrong id or secret is answered 401
  ``invalid_client``. The token is an RS256 JWT whose ``sub`` is the client id, living
  ``lifetime_s`` seconds (changeable by a test).

Signing uses ``cryptography`` (dev extra); the broker validates with Kafka's own
``OAuthBearerValidatorCallbackHandler``, so a token it accepts is a real JWT.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_ID = "streamproc-test-key"
AUDIENCE = "streamproc-test-kafka"
CLIENT_ID = "streamproc-oidc"
CLIENT_SECRET = "oidc-client-secret-1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@dataclass
class Issuer:
    """Signs JWTs with one RSA key; ``rogue`` signs with a key the JWKS does not publish."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, object]:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": KEY_ID,
                    "n": _int_b64(numbers.n),
                    "e": _int_b64(numbers.e),
                }
            ]
        }

    def sign(self, claims: dict[str, object], key: rsa.RSAPrivateKey | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = (key or self.key).sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64url(signature)}"


class IdentityProvider:
    """The JWKS and token endpoints on 127.0.0.1 (a free port), in a daemon thread."""

    def __init__(self) -> None:
        self.issuer = Issuer()
        self.lifetime_s = 3600
        #: When set, tokens are signed with this other key: the broker must refuse them.
        self.rogue_key: rsa.RSAPrivateKey | None = None
        self.token_calls = 0
        self.scopes: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def issuer_url(self) -> str:
        return self.base_url

    def start(self) -> IdentityProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self) -> int:
        with self._lock:
            return self.token_calls

    def _token(self, client_id: str, scope: str | None) -> dict[str, object]:
        now = int(time.time())
        with self._lock:
            self.token_calls += 1
            if scope:
                self.scopes.append(scope)
            lifetime, rogue = self.lifetime_s, self.rogue_key
        claims: dict[str, object] = {
            "iss": self.issuer_url,
            "sub": client_id,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if scope:
            claims["scope"] = scope
        return {
            "access_token": self.issuer.sign(claims, rogue),
            "token_type": "Bearer",
            "expires_in": lifetime,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    self._answer(200, idp.issuer.jwks())
                else:
                    self._answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path != "/token":
                    self._answer(404, {"error": "not_found"})
                    return
                if form.get("grant_type") != ["client_credentials"]:
                    self._answer(400, {"error": "unsupported_grant_type"})
                    return
                client_id, secret = _basic(self.headers.get("Authorization", ""))
                if (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
                    self._answer(401, {"error": "invalid_client"})
                    return
                scope = (form.get("scope") or [None])[0]
                self._answer(200, idp._token(client_id, scope))

        return Handler


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    from urllib.parse import unquote_plus

    # RFC 6749 section 2.3.1: both are form-urlencoded before Basic encoding.
    return unquote_plus(user), unquote_plus(password)
