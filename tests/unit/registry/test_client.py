"""The registry client over a real httpx transport stub (httpx.MockTransport): an outage
is RegistryUnavailable with one probe a second, schemas are cached by id."""

from __future__ import annotations

import httpx
import orjson
import pytest

from streamproc.errors import RegistryUnavailable, UnknownSchema
from streamproc.registry.client import RegistryClient, Rejected
from streamproc.registry.config import RegistryConnection

SCHEMA = orjson.dumps({"type": "record", "name": "L", "fields": []}).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _client(handler: object, clock: Clock) -> RegistryClient:
    registry = RegistryConnection("http://registry.test/apis/ccompat/v7", None, None, 5.0)
    return RegistryClient(registry, transport=httpx.MockTransport(handler), clock=clock)  # type: ignore[arg-type]


async def test_schemas_are_cached_by_id_and_unknown_ids_are_unknown_schema() -> None:
    """One request per id, whatever the number of leads; a 404 is unknown_schema."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/schemas/ids/1"):
            return httpx.Response(200, json={"schema": SCHEMA})
        return httpx.Response(404, json={"error_code": 40403, "message": "not found"})

    client = _client(handler, Clock())
    first = await client.schema(1)
    assert (await client.schema(1)) is first and first.schema_type == "AVRO"
    with pytest.raises(UnknownSchema):
        await client.schema(2)
    assert calls == ["/apis/ccompat/v7/schemas/ids/1", "/apis/ccompat/v7/schemas/ids/2"]
    await client.close()


@pytest.mark.parametrize("failure", ["connect", 503, 429])
async def test_an_outage_is_retriable_and_probed_once_a_second(failure: object) -> None:
    """No connection, a 5xx or a 429: RegistryUnavailable; while down, leads are told at
    once and one request a second goes out; the first answer ends the outage."""
    calls: list[float] = []
    up = False
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now)
        if up:
            return httpx.Response(200, json={"schema": SCHEMA, "schemaType": "JSON"})
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        assert isinstance(failure, int)
        return httpx.Response(failure)

    client = _client(handler, clock)
    for _ in range(5):
        with pytest.raises(RegistryUnavailable):
            await client.schema(3)
    assert calls == [100.0] and client.down
    clock.now += 1.0
    with pytest.raises(RegistryUnavailable):
        await client.schema(3)
    assert len(calls) == 2
    up = True
    clock.now += 1.0
    assert (await client.schema(3)).schema_type == "JSON"
    assert not client.down
    await client.close()


@pytest.mark.parametrize(
    ("status", "says"),
    [(404, "does not serve the Confluent-compatible API"), (401, "refused the credentials")],
)
async def test_the_start_up_check_says_what_is_wrong_with_the_url(status: int, says: str) -> None:
    """A URL without the API (Apicurio's root) or wrong credentials: Rejected, saying which."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"message": "no"})

    client = _client(handler, Clock())
    with pytest.raises(Rejected, match=says):
        await client.check()
    await client.close()


@pytest.mark.parametrize("status", [401, 403, 408])
async def test_a_refused_schema_fetch_holds_the_lead_and_logs_once(
    status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rotated registry key (401/403) or a 408 is not the lead's fault: the lead is held
    (RegistryUnavailable, not a DLQ class), with one error line naming the status and the
    settings to fix, not one per lead."""
    from streamproc.logs import configure_logging

    configure_logging("INFO", "json")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"message": "no"})

    clock = Clock()
    client = _client(handler, clock)
    for _ in range(3):
        with pytest.raises(RegistryUnavailable):
            await client.schema(7)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "registry.refused" in line]
    assert len(lines) == 1
    assert str(status) in lines[0] and "schema_registry_password" in lines[0]
    clock.now += 61
    with pytest.raises(RegistryUnavailable):
        await client.schema(7)
    assert capsys.readouterr().err.count("registry.refused") == 1
    await client.close()
