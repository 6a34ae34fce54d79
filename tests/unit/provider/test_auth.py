"""The auth helpers' pure parts: the token cache and the Basic header."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from streamproc.provider.auth import TokenCache, basic_authorization


def test_basic_is_the_base64_of_user_colon_password() -> None:
    """RFC 7617's example pair gives its documented header."""
    assert basic_authorization("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert base64.b64decode(basic_authorization("é", "x")[6:]).decode() == "é:x"


@given(
    lifetime=st.floats(1, 86_400),
    margin=st.floats(0, 3_600),
    asked=st.floats(0, 1e6),
)
def test_a_token_is_used_until_its_margin_before_expiry_and_never_after(
    lifetime: float, margin: float, asked: float
) -> None:
    """A token is served from when it was asked for until ``refresh_before_s`` (at most
    half its life) before it expires, and not a moment after it expires."""
    cache = TokenCache(margin)
    cache.store("t", lifetime, asked)
    assert cache.current(asked) == "t"
    assert cache.current(asked + lifetime) is None
    assert cache.current(asked + lifetime - min(margin, lifetime / 2)) is None
    assert cache.current(asked + lifetime / 2 - 1e-3 * lifetime) == "t"


def test_a_token_without_a_lifetime_lasts_until_it_is_dropped() -> None:
    """No ``expires_in``: kept until the API refuses it, then fetched again."""
    cache = TokenCache(60)
    assert cache.current(0) is None
    cache.store("t", None, 0)
    assert cache.current(10**9) == "t"
    cache.drop()
    assert cache.current(1) is None
