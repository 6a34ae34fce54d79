"""classify_response: the provider's HTTP answer → a result or exactly one LeadError."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import format_datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import (
    ErrorClass,
    LeadError,
    ProviderAuthError,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from streamproc.provider.classify import (
    MAX_CREDITS,
    ProviderResult,
    classify_response,
    parse_retry_after,
)

NOW = 1_700_000_000.0


def classify(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> ProviderResult:
    return classify_response(status, body, headers or {}, default_credits=6, now=lambda: NOW)


def expected_error(status: int) -> type[LeadError] | None:
    """docs/provider.md's table, written independently of the implementation."""
    if status == 200:
        return None
    if status == 429:
        return RateLimited
    if status >= 500:
        return ProviderError
    if status in (401, 403):
        return ProviderAuthError
    if status == 402:
        return ProviderCreditsExhausted
    return ProviderRejected


def test_200_returns_data_and_charged_credits() -> None:
    """A 200 with data and credits yields both, as sent."""
    result = classify(200, b'{"data": {"company": "Acme"}, "credits": 4}')
    assert result == ProviderResult(data={"company": "Acme"}, credits=4)


@pytest.mark.parametrize("body", [b'{"data": {}}', b'{"data": {}, "credits": null}'])
def test_200_without_credits_charges_the_default(body: bytes) -> None:
    """A 200 that omits credits (or sends null) is charged the configured estimate."""
    assert classify(200, body).credits == 6


def test_200_with_zero_credits_is_free() -> None:
    """credits: 0 is a valid charge (a provider-side cache hit), not a missing one."""
    assert classify(200, b'{"data": {"a": 1}, "credits": 0}').credits == 0


@pytest.mark.parametrize(
    ("credits", "charged"),
    [("6.0", 6), ("6e0", 6), ("0.0", 0), ("-0.0", 0), ("1.2", 2), ("0.001", 1), ("5.999", 6)],
)
def test_200_with_a_float_credits_is_charged_in_whole_credits_rounded_up(
    credits: str, charged: int
) -> None:
    """credits sent as a JSON float count: 6.0 is 6, a fraction rounds up (never under-counts)."""
    body = b'{"data": {"a": 1}, "credits": ' + credits.encode() + b"}"
    result = classify(200, body)
    assert result.credits == charged
    assert type(result.credits) is int


@given(st.floats(min_value=0, max_value=MAX_CREDITS, allow_nan=False))
def test_any_non_negative_json_number_is_a_charge_never_below_it(credits: float) -> None:
    """Every finite JSON number in [0, MAX_CREDITS] is the least whole charge not below it."""
    body = orjson.dumps({"data": {}, "credits": credits})
    charged = classify(200, body).credits
    assert type(charged) is int
    assert charged - 1 < credits <= charged


@given(st.integers(min_value=0, max_value=MAX_CREDITS))
def test_integer_credits_are_charged_exactly(credits: int) -> None:
    """An integer charge, spelled as an int or an integral float, is charged exactly."""
    assert classify(200, orjson.dumps({"data": {}, "credits": credits})).credits == credits
    if float(credits) == credits:
        as_float = orjson.dumps({"data": {}, "credits": float(credits)})
        assert classify(200, as_float).credits == credits


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"data"',
        b"{}",
        b'{"data": null}',
        b'{"data": [1]}',
        b'{"data": "x", "credits": 6}',
        b'{"data": {}, "credits": -1}',
        b'{"data": {}, "credits": -0.5}',
        b'{"data": {}, "credits": 9007199254740993}',
        b'{"data": {}, "credits": 1e300}',
        b'{"data": {}, "credits": [6]}',
        b'{"data": {}, "credits": {"n": 6}}',
        b'{"data": {}, "credits": "6"}',
        b'{"data": {}, "credits": true}',
        b"\xff\xfe",
    ],
)
def test_unreadable_200_is_a_provider_error(body: bytes) -> None:
    """A 200 whose body is not {"data": {...}, "credits": number >= 0} is an unreadable answer."""
    with pytest.raises(ProviderError, match="unreadable answer"):
        classify(200, body)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_5xx_is_a_provider_error(status: int) -> None:
    """Every 5xx is a retriable provider_error that counts against the breaker."""
    with pytest.raises(ProviderError, match=f"^provider answered {status}$") as info:
        classify(status)
    assert info.value.error_class is ErrorClass.PROVIDER_ERROR
    assert info.value.counts_against_breaker


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors(status: int) -> None:
    """401/403 mean the key is broken for every lead: ProviderAuthError, breaker-counted."""
    with pytest.raises(ProviderAuthError, match=str(status)) as info:
        classify(status)
    assert info.value.counts_against_breaker


def test_402_is_credits_exhausted() -> None:
    """402 is the provider's own credits running out, routed as budget_exhausted."""
    with pytest.raises(ProviderCreditsExhausted) as info:
        classify(402)
    assert info.value.error_class is ErrorClass.BUDGET_EXHAUSTED


@pytest.mark.parametrize("status", [100, 101, 201, 204, 301, 302, 304, 400, 404, 409, 418, 422])
def test_other_statuses_are_rejections(status: int) -> None:
    """Any other 1xx-4xx (and a non-200 2xx) is a non-retriable provider_rejected."""
    with pytest.raises(ProviderRejected, match=f"provider answered {status}") as info:
        classify(status)
    assert info.value.retriable is False


@pytest.mark.parametrize("status", [0, 99, 600, 999])
def test_impossible_statuses_are_provider_errors(status: int) -> None:
    """A status outside 100-599 means a broken peer: provider_error, not a rejection."""
    with pytest.raises(ProviderError):
        classify(status)


@pytest.mark.parametrize(
    ("value", "seconds"), [("7", 7.0), (" 0 ", 0.0), ("1.5", 1.5), ("120", 120.0)]
)
def test_429_reads_delta_seconds_retry_after(value: str, seconds: float) -> None:
    """Retry-After in delta-seconds is passed on as retry_after_s."""
    with pytest.raises(RateLimited) as info:
        classify(429, headers={"Retry-After": value})
    assert info.value.retry_after_s == seconds


def test_429_reads_http_date_retry_after_against_now() -> None:
    """An HTTP-date Retry-After becomes the seconds between the injected now and that date."""
    date = format_datetime(datetime.fromtimestamp(NOW + 30, tz=UTC), usegmt=True)
    with pytest.raises(RateLimited) as info:
        classify(429, headers={"retry-after": date})
    assert info.value.retry_after_s == pytest.approx(30.0)


def test_http_date_in_the_past_means_no_wait() -> None:
    """A Retry-After date already past is 0 seconds, never negative."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", lambda: NOW) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-5", "nan", "inf", "Mon, 99 Foo 2015"])
def test_unreadable_retry_after_is_none(value: str) -> None:
    """A Retry-After that is neither delta-seconds nor an HTTP-date is ignored (None)."""
    with pytest.raises(RateLimited) as info:
        classify(429, headers={"Retry-After": value})
    assert info.value.retry_after_s is None


def test_429_without_retry_after_has_none() -> None:
    """A 429 without Retry-After leaves the wait to the backoff policy."""
    with pytest.raises(RateLimited) as info:
        classify(429)
    assert info.value.retry_after_s is None


def test_messages_never_quote_the_body() -> None:
    """Error messages stay short: the provider's body (PII, echoed keys) is never in them."""
    secret = b'{"error": "bad key sk-live-123 for jane@acme.com"}'
    for status in (200, 400, 401, 402, 429, 500):
        with pytest.raises(LeadError) as info:
            classify(status, secret if status != 200 else b"garbage sk-live-123")
        assert "sk-live-123" not in str(info.value)
        assert "jane" not in str(info.value)


def outcome(status: int, body: bytes, headers: dict[str, str]) -> type[object]:
    """ProviderResult, or the type of the LeadError raised; anything else propagates."""
    try:
        classify_response(status, body, headers, default_credits=6, now=lambda: NOW)
    except LeadError as exc:
        return type(exc)
    return ProviderResult


readable_bodies = st.builds(
    lambda data, credits: orjson.dumps({"data": data, "credits": credits}),
    st.dictionaries(
        st.text(max_size=8), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8), max_size=3
    ),
    st.none()
    | st.integers(min_value=0, max_value=10_000)
    | st.floats(min_value=0, max_value=10_000, allow_nan=False),
)
bodies = st.binary(max_size=64) | readable_bodies
header_maps = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "X-Other"]), st.text(max_size=40)
)


@given(st.integers(min_value=100, max_value=599), bodies, header_maps)
def test_every_status_maps_to_exactly_one_outcome(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Any status 100-599 yields a result (200 only) or exactly the LeadError the table names."""
    kind = outcome(status, body, headers)
    expected = expected_error(status)
    if expected is None:
        # A 200 succeeds with a readable body; an unreadable one is a ProviderError.
        assert kind in (ProviderResult, ProviderError)
    else:
        assert kind is expected


@given(st.integers(min_value=100, max_value=599), readable_bodies, header_maps)
def test_readable_200_always_succeeds(status: int, body: bytes, headers: dict[str, str]) -> None:
    """A well-formed body is a result on 200 and never turns another status into success."""
    assert (outcome(status, body, headers) is ProviderResult) is (status == 200)


@given(st.integers(min_value=-1_000, max_value=10_000), bodies, header_maps)
def test_classify_never_raises_anything_but_a_lead_error(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Whatever the answer, even an impossible status, the outcome is a result or a LeadError."""
    kind = outcome(status, body, headers)
    assert kind is ProviderResult or issubclass(kind, LeadError)


@given(st.text(max_size=60), st.floats(min_value=0, max_value=4e9))
def test_parse_retry_after_is_total(value: str, now: float) -> None:
    """parse_retry_after never raises, and returns None or a finite, non-negative number."""
    seconds = parse_retry_after(value, lambda: now)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)
