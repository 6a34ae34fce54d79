"""The schema registry's HTTP client: the Confluent-compatible API (``/schemas/ids``,
``/subjects``, ``/compatibility``), schemas cached by id.

An outage (no connection, a timeout, a 5xx or 429 answer) is :class:`RegistryUnavailable`,
which holds the lead asking; while the registry is down, at most one request per
``_PROBE_S`` goes out to see whether it is back, the other leads are told at once. A schema
the registry says it does not have is :class:`UnknownSchema` (a DLQ class).

A schema fetch refused with 401/403 (a rotated key) or 408 is not the lead's fault: it is
:class:`RegistryUnavailable` too, so the lead is held until the credentials are fixed
instead of dead-lettered, with one error line at most every ``_REFUSED_LOG_S`` naming the
status and the settings to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from streamproc.errors import RegistryUnavailable, UndecodablePayload, UnknownSchema
from streamproc.logs import get_logger
from streamproc.redact import mask_url
from streamproc.registry.config import RegistryConnection
from streamproc.registry.once import MadeOnce

__all__ = ["RegisteredSchema", "RegistryClient", "Rejected"]

log = get_logger(__name__)

#: While the registry is down, how often one request goes out to see whether it is back:
#: held leads resume within this much of its return, and an outage costs the registry one
#: request a second per process, not one per lead in flight.
_PROBE_S = 1.0
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: Answers to a schema fetch that say "not now / not you", not "no such schema".
_HELD_STATUSES = frozenset({401, 403, 408})
#: At most one error line this often while the registry refuses us: every lead in flight
#: asks, and a line per lead would drown the log.
_REFUSED_LOG_S = 60.0


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as the registry has it: its id, its type (``AVRO``, ``JSON``, ``PROTOBUF``)
    and its text, with the text parsed as JSON (Avro and JSON Schema are both JSON)."""

    schema_id: int
    schema_type: str
    text: str
    document: Any


class Rejected(Exception):
    """The registry answered and refused a request (an incompatible or invalid schema)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RegistryClient:
    """One per process; every lead in flight shares it and its cache."""

    def __init__(
        self,
        registry: RegistryConnection,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = registry.url.rstrip("/")
        #: For logs and messages: credentials in the URL are masked.
        self.url = mask_url(base)
        auth = None
        if registry.username and registry.password is not None:
            auth = httpx.BasicAuth(registry.username, registry.password.get_secret_value())
        self._http = httpx.AsyncClient(
            base_url=base,
            auth=auth,
            timeout=registry.timeout_s,
            transport=transport,
            headers={"Accept": _CONTENT_TYPE},
        )
        self._clock = clock
        self._schemas: MadeOnce[int, RegisteredSchema] = MadeOnce()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._refused_logged_at: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    async def close(self) -> None:
        await self._http.aclose()

    async def schema(self, schema_id: int) -> RegisteredSchema:
        """The schema with this id, from the cache after the first time (ids never change
        what they name). Concurrent leads asking for one new id make one request."""
        return await self._schemas.get(schema_id, lambda: self._fetch(schema_id))

    async def _fetch(self, schema_id: int) -> RegisteredSchema:
        status, body = await self._request("GET", f"/schemas/ids/{schema_id}")
        if status == 404:
            raise UnknownSchema(f"schema id {schema_id} is not in the registry at {self.url}")
        if status in _HELD_STATUSES:
            self._refused(status)
            raise RegistryUnavailable(
                f"the schema registry at {self.url} answered {status} for schema id {schema_id}"
            )
        if status != 200:
            raise UndecodablePayload(
                f"the registry answered {status} for schema id {schema_id}: {_message(body)}"
            )
        return self._parse(schema_id, body)

    async def check(self) -> None:
        """That the URL serves the Confluent-compatible API and takes our credentials
        (``GET /config``); :class:`Rejected` with the reason when not."""
        status, body = await self._request("GET", "/config")
        if status in (401, 403):
            raise Rejected(status, f"the registry at {self.url} refused the credentials ({status})")
        if status != 200 or not isinstance(body, dict) or "compatibilityLevel" not in body:
            raise Rejected(
                status,
                f"{self.url} does not serve the Confluent-compatible API (GET /config answered "
                f"{status}); Apicurio serves it under /apis/ccompat/v7",
            )

    async def latest(self, subject: str) -> RegisteredSchema | None:
        """The latest version under ``subject``; None when the subject has none."""
        status, body = await self._request("GET", f"/subjects/{_quote(subject)}/versions/latest")
        if status == 404:
            return None
        if status != 200:
            raise Rejected(status, _message(body))
        return self._parse(int(body["id"]), body)

    async def compatible(self, subject: str, schema_type: str, text: str) -> list[str]:
        """Why ``text`` is not compatible with the latest version of ``subject`` under the
        subject's compatibility level; empty when it is (or the subject is new)."""
        status, body = await self._request(
            "POST",
            f"/compatibility/subjects/{_quote(subject)}/versions/latest?verbose=true",
            _schema_body(schema_type, text),
        )
        if status == 404:
            return []
        if status != 200:
            raise Rejected(status, _message(body))
        if body.get("is_compatible", False):
            return []
        return [str(m) for m in body.get("messages") or ["not compatible"]]

    async def register(self, subject: str, schema_type: str, text: str) -> int:
        """Register ``text`` under ``subject`` (idempotent: the same schema gets its id
        back); :class:`Rejected` when the registry refuses it (409: incompatible)."""
        status, body = await self._request(
            "POST", f"/subjects/{_quote(subject)}/versions", _schema_body(schema_type, text)
        )
        if status != 200:
            raise Rejected(status, _message(body))
        return int(body["id"])

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """One request; RegistryUnavailable when no usable answer came (or, while the
        registry is down, when it is not yet time for the next probe)."""
        now = self._clock()
        if self._down_since is not None and now < self._next_probe:
            raise RegistryUnavailable(f"the schema registry at {self.url} is down")
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": _CONTENT_TYPE} if body is not None else None
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            self._went_down(now, f"{exc.__class__.__name__}: {exc}")
            raise RegistryUnavailable(
                f"the schema registry at {self.url} does not answer ({exc.__class__.__name__})"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            self._went_down(now, f"HTTP {response.status_code}")
            raise RegistryUnavailable(
                f"the schema registry at {self.url} answered {response.status_code}"
            )
        if self._down_since is not None:
            log.warning("registry.back", url=self.url, down_s=round(now - self._down_since, 1))
            self._down_since = None
        try:
            parsed = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            parsed = {"message": response.text[:200]}
        return response.status_code, parsed

    def _refused(self, status: int) -> None:
        now = self._clock()
        if self._refused_logged_at is not None and now - self._refused_logged_at < _REFUSED_LOG_S:
            return
        self._refused_logged_at = now
        what = "timed out the request" if status == 408 else "refused the credentials"
        log.error(
            "registry.refused",
            url=self.url,
            status=status,
            error=f"the schema registry {what} ({status}); leads needing an uncached schema "
            "are held until it is fixed: check schema_registry_username / "
            "schema_registry_password",
        )

    def _went_down(self, now: float, why: str) -> None:
        if self._down_since is None:
            self._down_since = now
            log.warning("registry.down", url=self.url, error=why)
        self._next_probe = now + _PROBE_S

    def _parse(self, schema_id: int, body: Any) -> RegisteredSchema:
        text = str(body.get("schema", ""))
        schema_type = str(body.get("schemaType") or "AVRO").upper()
        if body.get("references"):
            raise UndecodablePayload(
                f"schema id {schema_id} uses schema references, which streamproc does not "
                "resolve yet"
            )
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            document = None  # Protobuf: the codec refuses the type itself
        return RegisteredSchema(schema_id, schema_type, text, document)


def _schema_body(schema_type: str, text: str) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": text}
    if schema_type != "AVRO":  # Confluent's API: AVRO is the default and may be left out
        body["schemaType"] = schema_type
    return body


def _quote(subject: str) -> str:
    return quote(subject, safe="")


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error_code") or body)[:300]
    return str(body)[:300]
