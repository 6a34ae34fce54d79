"""Authentication helpers of the declarative provider: HTTP Basic and OAuth2 client credentials.

The table ``[streamproc.provider_declarative.auth]`` chooses one (docs/provider.md):

* ``type = "basic"``: ``username`` and ``password``; every request carries
  ``Authorization: Basic base64(username:password)`` (RFC 7617).
* ``type = "oauth2_client_credentials"``: ``token_url``, ``client_id``, ``client_secret``,
  optional ``scope`` and ``audience``; the provider asks the token endpoint for an access
  token (RFC 6749 section 4.4), keeps it until ``refresh_before_s`` before it expires, and
  sends ``Authorization: Bearer <token>``. One token per process: concurrent calls wait for
  the one request that fetches it. A 401 from the API drops the token, so the retry fetches
  a fresh one.

Values are written with ``${ENV}`` (the declarative provider's mechanism), so secrets stay
out of the file and are masked in every log line. :class:`TokenCache` is pure (the clock is
given); :class:`ClientCredentials` is its I/O shell over the provider's httpx client.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypeAlias

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from streamproc.errors import ProviderAuthError, ProviderError, RateLimited
from streamproc.provider.classify import parse_retry_after
from streamproc.provider.http_errors import Charged, request_errors

__all__ = [
    "AuthConfig",
    "BasicAuthConfig",
    "ClientCredentials",
    "ClientCredentialsConfig",
    "TokenCache",
    "basic_authorization",
]


class BasicAuthConfig(BaseModel):
    """HTTP Basic: one fixed ``Authorization`` header."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["basic"]
    username: str
    password: str


class ClientCredentialsConfig(BaseModel):
    """OAuth2 client credentials: a token from ``token_url``, cached until it expires."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None
    #: ``basic``: the client's id and secret in an ``Authorization: Basic`` header (the way
    #: RFC 6749 says every server must accept); ``body``: as form fields.
    client_auth: Literal["basic", "body"] = "basic"
    #: A token is refreshed this long before it expires (at most half its lifetime), so no
    #: call goes out with a token that expires on the way.
    refresh_before_s: float = Field(60.0, ge=0, le=3_600)


AuthConfig: TypeAlias = Annotated[
    BasicAuthConfig | ClientCredentialsConfig, Field(discriminator="type")
]


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic (RFC 7617, UTF-8)."""
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(slots=True)
class TokenCache:
    """The access token and when to stop using it. Pure: ``now`` is passed in (monotonic
    seconds)."""

    refresh_before_s: float
    token: str | None = None
    use_until: float = 0.0

    def current(self, now: float) -> str | None:
        """The token, or None when there is none or it is due for a refresh."""
        if self.token is not None and now < self.use_until:
            return self.token
        return None

    def store(self, token: str, expires_in_s: float | None, now: float) -> None:
        """Keep ``token``, given at ``now`` for ``expires_in_s`` (None: the server did not
        say; used until the API refuses it)."""
        self.token = token
        if expires_in_s is None:
            self.use_until = math.inf
        else:
            margin = min(self.refresh_before_s, expires_in_s / 2)
            self.use_until = now + expires_in_s - margin

    def drop(self) -> None:
        """Forget the token (the API refused it)."""
        self.token = None
        self.use_until = 0.0


class ClientCredentials:
    """The OAuth2 client-credentials flow over the provider's own httpx client."""

    def __init__(
        self, config: ClientCredentialsConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._cache = TokenCache(config.refresh_before_s)
        self._clock = clock
        self._lock = asyncio.Lock()
        #: Tokens fetched since start (a test and `streamproc try` read it).
        self.fetched = 0

    async def authorization(self, http: httpx.AsyncClient) -> str:
        """The ``Authorization`` value for the next request: the cached token, or a new one
        (one request however many calls ask at once)."""
        token = self._cache.current(self._clock())
        if token is not None:
            return f"Bearer {token}"
        async with self._lock:
            token = self._cache.current(self._clock())
            if token is None:
                token = await self._fetch(http)
        return f"Bearer {token}"

    def refused(self) -> None:
        """The API answered 401: the token is no good, the next call fetches another."""
        self._cache.drop()

    async def _fetch(self, http: httpx.AsyncClient) -> str:
        config = self.config
        form = {"grant_type": "client_credentials"}
        if config.scope is not None:
            form["scope"] = config.scope
        if config.audience is not None:
            form["audience"] = config.audience
        headers = {"Accept": "application/json"}
        if config.client_auth == "basic":
            headers["Authorization"] = basic_authorization(config.client_id, config.client_secret)
        else:
            form["client_id"] = config.client_id
            form["client_secret"] = config.client_secret
        asked = self._clock()
        with request_errors("token endpoint", charged=Charged.NEVER):
            response = await http.post(config.token_url, data=form, headers=headers)
        status = response.status_code
        if status == 429:
            retry = response.headers.get("retry-after")
            raise RateLimited(
                "token endpoint answered 429",
                retry_after_s=None if retry is None else parse_retry_after(retry, time.time),
            )
        if status in (400, 401, 403):
            # RFC 6749 5.2: invalid_client / unauthorized_client come as 400 or 401.
            raise ProviderAuthError(
                f"token endpoint answered {status}: the client credentials are refused"
            )
        if status != 200:
            raise ProviderError(f"token endpoint answered {status}")
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError("token endpoint answered without an access_token")
        expires = answer.get("expires_in") if isinstance(answer, dict) else None
        expires_in = (
            float(expires)
            if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0
            else None
        )
        # Measured from when it was asked for: the token's life began before the answer came.
        self._cache.store(token, expires_in, asked)
        self.fetched += 1
        return token
