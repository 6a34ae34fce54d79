"""httpx's errors translated in one place: timeouts go through for the retry driver, other
request errors become a ProviderError naming the peer, billed as each call site says."""

from __future__ import annotations

import httpx
import pytest

from streamproc.errors import ProviderError, ProviderTimeout
from streamproc.provider.api import LeadIn
from streamproc.provider.auth import ClientCredentials, ClientCredentialsConfig
from streamproc.provider.config import ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.provider.driver import RetryDriver
from streamproc.provider.http_errors import TIMEOUTS, Charged, request_errors
from streamproc.provider.retry import RetryPolicy
from streamproc.settings import Settings

SECRET_URL = "http://user:hunter2@api.example/v1"
#: Errors raised before a connection exists (never billed) and after (maybe billed).
NOT_CONNECTED = [httpx.ConnectError(f"cannot reach {SECRET_URL}")]
CONNECTED = [
    httpx.RemoteProtocolError(f"{SECRET_URL} dropped the connection"),
    httpx.ReadError("reset"),
    httpx.WriteError("broken pipe"),
    httpx.DecodingError("bad gzip"),
]


def _raise(exc: Exception, *, peer: str = "provider", charged: Charged | None = None) -> None:
    kwargs = {} if charged is None else {"charged": charged}
    with request_errors(peer, **kwargs):
        raise exc


@pytest.mark.parametrize("exc", NOT_CONNECTED + CONNECTED, ids=lambda e: type(e).__name__)
def test_a_request_error_is_a_retriable_provider_error_naming_peer_and_class(
    exc: httpx.RequestError,
) -> None:
    """Any request error becomes a retriable ProviderError "<peer> unreachable: <class>",
    caused by the httpx error and never quoting it (it may carry a URL's credentials)."""
    with pytest.raises(ProviderError) as info:
        _raise(exc, peer="clay webhook")
    assert info.value.message == f"clay webhook unreachable: {type(exc).__name__}"
    assert info.value.retriable
    assert info.value.__cause__ is exc
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("exc", "charged"),
    [(e, False) for e in NOT_CONNECTED] + [(e, True) for e in CONNECTED],
    ids=lambda v: type(v).__name__,
)
def test_by_default_only_a_request_that_never_connected_is_surely_unbilled(
    exc: httpx.RequestError, charged: bool
) -> None:
    """A ConnectError is not maybe_charged; an error once connected is (the request may have
    gone out)."""
    with pytest.raises(ProviderError) as info:
        _raise(exc)
    assert info.value.maybe_charged is charged


@pytest.mark.parametrize("exc", NOT_CONNECTED + CONNECTED, ids=lambda e: type(e).__name__)
def test_a_peer_that_never_bills_is_never_maybe_charged(exc: httpx.RequestError) -> None:
    """With Charged.NEVER (a token endpoint) no request error is maybe_charged."""
    with pytest.raises(ProviderError) as info:
        _raise(exc, charged=Charged.NEVER)
    assert not info.value.maybe_charged


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.PoolTimeout("full"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_timeout_goes_through_unchanged_and_is_reported(exc: Exception) -> None:
    """httpx's timeouts and asyncio's TimeoutError are raised as they are (the retry driver
    translates them), after on_failure is told once."""
    told: list[str] = []
    with (
        pytest.raises(type(exc)) as info,
        request_errors("provider", on_failure=lambda: told.append("x")),
    ):
        raise exc
    assert info.value is exc
    assert told == ["x"]


def test_a_request_error_is_reported_once_and_other_errors_not_at_all() -> None:
    """on_failure hears a request error once; an error that is not httpx's goes through
    untouched and unreported."""
    told: list[str] = []
    with pytest.raises(ProviderError), request_errors("p", on_failure=lambda: told.append("x")):
        raise httpx.ConnectError("refused")
    assert told == ["x"]
    with pytest.raises(KeyError), request_errors("p", on_failure=lambda: told.append("y")):
        raise KeyError("ours")
    with request_errors("p", on_failure=lambda: told.append("z")):
        pass
    assert told == ["x"]


async def test_the_driver_counts_httpx_timeouts_as_maybe_charged_provider_timeouts() -> None:
    """A timeout let through, met by a driver given TIMEOUTS, is a ProviderTimeout that may
    have been billed."""

    async def attempt() -> None:
        with request_errors("provider"):
            raise httpx.ReadTimeout("slow")

    driver = RetryDriver(
        RetryPolicy(max_retries=0, base_s=0, max_s=0),
        peer="provider",
        timeout_s=5,
        timeouts=TIMEOUTS,
    )
    with pytest.raises(ProviderTimeout, match="provider did not answer within 5s") as info:
        await driver.run(attempt)
    assert info.value.maybe_charged


def _failing(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(("exc", "charged"), [(NOT_CONNECTED[0], False), (CONNECTED[0], True)])
async def test_the_declarative_provider_translates_as_the_http_provider(
    exc: httpx.RequestError, charged: bool
) -> None:
    """A declarative call that cannot reach its API raises "provider unreachable", maybe
    charged once connected; a timeout goes through for the driver."""
    settings = Settings(provider="declarative", provider_declarative={"url": "http://api.example"})
    provider = DeclarativeProvider(
        ProviderConfig.from_settings(settings, "declarative"), transport=_failing(exc)
    )
    await provider.start()
    try:
        with pytest.raises(ProviderError, match=r"^provider unreachable: ") as info:
            await provider.call([LeadIn("L1", {"lead_id": "L1"})])
        assert info.value.maybe_charged is charged
        provider._http = httpx.AsyncClient(transport=_failing(httpx.ReadTimeout("slow")))
        with pytest.raises(httpx.ReadTimeout):
            await provider.call([LeadIn("L1", {"lead_id": "L1"})])
    finally:
        await provider.close()


@pytest.mark.parametrize("exc", [NOT_CONNECTED[0], CONNECTED[0]], ids=lambda e: type(e).__name__)
async def test_an_unreachable_token_endpoint_is_a_provider_error_never_charged(
    exc: httpx.RequestError,
) -> None:
    """The OAuth token request failing is "token endpoint unreachable", not maybe charged;
    its timeout goes through."""
    config = ClientCredentialsConfig(
        type="oauth2_client_credentials",
        token_url="http://auth.example/token",
        client_id="id",
        client_secret="secret",
    )
    async with httpx.AsyncClient(transport=_failing(exc)) as http:
        with pytest.raises(ProviderError) as info:
            await ClientCredentials(config).authorization(http)
    assert info.value.message == f"token endpoint unreachable: {type(exc).__name__}"
    assert not info.value.maybe_charged
    async with httpx.AsyncClient(transport=_failing(httpx.ConnectTimeout("slow"))) as http:
        with pytest.raises(httpx.ConnectTimeout):
            await ClientCredentials(config).authorization(http)
