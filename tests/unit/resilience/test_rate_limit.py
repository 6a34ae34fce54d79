"""What an answer's headers say of an API's quota, and the pace that keeps within it."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.resilience.rate_limit import Quota, parse_quota, quota_pace

NOW = 1_800_000_000.0  # a Unix time, 2027


@pytest.mark.parametrize(
    ("headers", "quota"),
    [
        # GitHub's names, the reset as seconds from now (Clearbit, FullContact).
        ({"X-RateLimit-Remaining": "40", "X-RateLimit-Reset": "30"}, Quota(40, 30.0)),
        # The reset as a Unix time (pyannote, HipChat, Apollo's reset header).
        ({"x-ratelimit-remaining": "5", "x-ratelimit-reset": str(NOW + 12)}, Quota(5, 12.0)),
        # The IETF draft's early separate names (Persona, Resend).
        ({"ratelimit-remaining": "280", "ratelimit-reset": "53"}, Quota(280, 53.0)),
        # The draft's combined field, early and structured forms.
        ({"RateLimit": "limit=100, remaining=80, reset=54"}, Quota(80, 54.0)),
        ({"RateLimit": '"default";r=50;t=30'}, Quota(50, 30.0)),
        # People Data Labs: a JSON object per window, the reset a UTC date.
        (
            {
                "x-ratelimit-remaining": "{'minute': 99}",
                "x-ratelimit-reset": formatdate(NOW + 10, usegmt=True),
            },
            Quota(99, 10.0),
        ),
        # Apollo: the minute's requests left, no reset: the whole minute is assumed.
        ({"x-minute-requests-left": "45", "x-rate-limit-minute": "50"}, Quota(45, 60.0)),
    ],
)
def test_the_quota_is_read_from_each_apis_headers(headers: dict[str, str], quota: Quota) -> None:
    """Each naming the APIs use gives the requests left and the seconds to the reset."""
    assert parse_quota(headers, NOW) == quota


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-ratelimit-remaining": "40"},  # no reset: says nothing of pace
        {"x-ratelimit-remaining": "many", "x-ratelimit-reset": "30"},
        {"x-ratelimit-remaining": "40", "x-ratelimit-reset": "soon"},
        {"x-ratelimit-remaining": "-1", "x-ratelimit-reset": "30"},
        {"x-ratelimit-remaining": "[1]", "x-ratelimit-reset": "30"},
        {"RateLimit": "garbage"},
    ],
)
def test_headers_that_state_no_readable_quota_give_none(headers: dict[str, str]) -> None:
    """Missing or unreadable values are no quota, never an error."""
    assert parse_quota(headers, NOW) is None


def test_a_reset_in_the_past_is_now() -> None:
    """A Unix time already passed means the window resets now: 0 s, no pace bound."""
    quota = parse_quota({"x-ratelimit-remaining": "3", "x-ratelimit-reset": str(NOW - 5)}, NOW)
    assert quota == Quota(3, 0.0)
    assert quota_pace(quota, 1.0) is None


def test_the_pace_lets_this_process_share_last_until_the_reset() -> None:
    """60 left for 30 s is 2 requests/s; a process with a third of the partitions gets 2/3."""
    assert quota_pace(Quota(60, 30.0), 1.0) == pytest.approx(2.0)
    assert quota_pace(Quota(60, 30.0), 1 / 3) == pytest.approx(2 / 3)
    assert quota_pace(Quota(0, 30.0), 1.0) == 0.0


@given(
    remaining=st.integers(0, 10**6),
    reset=st.floats(0.001, 10**5),
    fraction=st.floats(0.001, 1.0),
)
def test_the_pace_never_spends_more_than_the_share_of_the_quota(
    remaining: int, reset: float, fraction: float
) -> None:
    """Paced until the reset, a process sends at most its fraction of what is left."""
    pace = quota_pace(Quota(remaining, reset), fraction)
    assert pace is not None and pace >= 0 and math.isfinite(pace)
    assert pace * reset <= remaining * fraction * (1 + 1e-9)


@given(
    remaining=st.integers(0, 10**6),
    delta=st.floats(0, 10**6, allow_nan=False),
    epoch=st.booleans(),
    name=st.sampled_from(["X-RateLimit", "x-ratelimit", "RateLimit", "X-Rate-Limit"]),
)
def test_any_spelling_and_any_reset_form_read_the_same(
    remaining: int, delta: float, epoch: bool, name: str
) -> None:
    """A reset as seconds or as the Unix time as far ahead reads as the same seconds."""
    reset = f"{NOW + delta!r}" if epoch else f"{delta!r}"
    quota = parse_quota({f"{name}-Remaining": str(remaining), f"{name}-Reset": reset}, NOW)
    assert quota is not None and quota.remaining == remaining
    assert quota.reset_in_s == pytest.approx(delta, abs=1e-6)
