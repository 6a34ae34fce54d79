"""EnrichmentCache, pure: which leads share a key, which fields it serves, when entries end."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.cache import CacheConfig, EnrichmentCache, is_freemail
from streamproc.settings import DEFAULT_CACHE_FIELDS, DEFAULT_FREEMAIL_DOMAINS, CacheKey

FAST = settings(max_examples=200, deadline=None)
T0 = 1_764_158_400.0
TTL = 3600.0
GRACE = 60.0

PERSON = {"full_name": "Jane Doe", "title": "CFO", "phone": "+1-555-0100", "linkedin_url": "x"}
COMPANY = {"company": "Acme", "domain": "acme.example", "employees": 42, "industry": "retail"}


def _cache(**changes: Any) -> EnrichmentCache:
    return EnrichmentCache(replace(CacheConfig(ttl_s=TTL, tombstone_grace_s=GRACE), **changes))


# --- keys ---------------------------------------------------------------------------------


def test_domain_key_is_the_normalised_domain() -> None:
    """By default leads share an entry by domain, case and trailing dot ignored."""
    cache = _cache()
    assert cache.key_for(domain=" Acme.Example. ", email="jane@other.example") == "acme.example"
    assert cache.key_for(domain=None, email="jane@acme.example") is None


def test_email_key_is_the_person() -> None:
    """With cache_key email the key is the address, and a domain alone has none."""
    cache = _cache(key=CacheKey.EMAIL)
    assert cache.key_for(domain="acme.example", email="Jane@Acme.example") == (
        "email/jane@acme.example"
    )
    assert cache.key_for(domain="acme.example", email=None) is None
    assert cache.key_for(domain=None, email="not-an-address") is None


def test_off_and_zero_ttl_give_no_key() -> None:
    """cache_key off, or a TTL of 0, caches nothing."""
    assert _cache(key=CacheKey.OFF).key_for(domain="acme.example", email="a@acme.example") is None
    assert _cache(ttl_s=0.0).key_for(domain="acme.example", email=None) is None


@pytest.mark.parametrize("domain", ["gmail.com", "GMAIL.com", "eu.gmail.com", "outlook.com"])
def test_freemail_domains_are_never_a_key(domain: str) -> None:
    """A freemail domain (or a subdomain of one) is shared by strangers: no domain key."""
    assert _cache().key_for(domain=domain, email=f"ann@{domain}") is None


def test_a_name_that_merely_ends_like_a_freemail_domain_is_a_company() -> None:
    """notgmail.com is not gmail.com: label boundaries count, not string suffixes."""
    assert is_freemail("gmail.com", DEFAULT_FREEMAIL_DOMAINS)
    assert not is_freemail("notgmail.com", DEFAULT_FREEMAIL_DOMAINS)
    assert _cache().key_for(domain="notgmail.com", email=None) == "notgmail.com"


def test_a_freemail_address_is_its_own_key_by_email() -> None:
    """By e-mail the key is one person, so a gmail.com address may be cached."""
    cache = _cache(key=CacheKey.EMAIL)
    assert cache.key_for(domain=None, email="ann@gmail.com") == "email/ann@gmail.com"


@FAST
@given(
    st.sampled_from(["gmail.com", "yahoo.co.uk", "web.de", "qq.com"]),
    st.lists(st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True), max_size=3),
)
def test_no_subdomain_of_a_freemail_domain_gets_a_key(base: str, labels: list[str]) -> None:
    """Whatever subdomain of a listed freemail domain, the domain key is refused."""
    domain = ".".join([*labels, base])
    assert _cache().key_for(domain=domain, email=None) is None


# --- fields -------------------------------------------------------------------------------


def test_put_keeps_only_company_fields_by_default() -> None:
    """A person-level answer is stored and served with its company fields only."""
    cache = _cache()
    record = cache.put("acme.example", {**COMPANY, **PERSON}, T0)
    assert record == {"data": COMPANY, "stored_at": T0}
    hit = cache.get("acme.example", T0 + 1)
    assert hit is not None
    assert hit.data == COMPANY
    assert hit.key is CacheKey.DOMAIN
    assert hit.stored_at == T0


def test_an_answer_without_any_allowed_field_is_not_cached() -> None:
    """Nothing to share: nothing stored, nothing journaled."""
    cache = _cache()
    assert cache.put("acme.example", PERSON, T0) is None
    assert cache.get("acme.example", T0) is None
    assert cache.tracked == 0


def test_star_serves_every_field() -> None:
    """fields None (cache_fields '*') keeps the whole answer."""
    cache = _cache(key=CacheKey.EMAIL, fields=None)
    cache.put("email/jane@acme.example", {**COMPANY, **PERSON}, T0)
    hit = cache.get("email/jane@acme.example", T0)
    assert hit is not None
    assert hit.data == {**COMPANY, **PERSON}
    assert hit.key is CacheKey.EMAIL


def test_an_entry_read_back_from_the_topic_is_filtered_too() -> None:
    """An entry stored whole (older version, wider setting) serves today's fields only."""
    cache = _cache()
    cache.apply("acme.example", {"data": {**COMPANY, **PERSON}, "stored_at": T0}, T0)
    hit = cache.get("acme.example", T0)
    assert hit is not None
    assert hit.data == COMPANY


def test_a_served_answer_is_a_copy() -> None:
    """Changing what one lead got does not change what the next lead gets."""
    cache = _cache()
    cache.put("acme.example", COMPANY, T0)
    first = cache.get("acme.example", T0)
    assert first is not None
    first.data["company"] = "Changed"
    second = cache.get("acme.example", T0)
    assert second is not None
    assert second.data["company"] == "Acme"


json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))


@FAST
@given(
    st.dictionaries(
        st.one_of(st.sampled_from([*DEFAULT_CACHE_FIELDS, *PERSON]), st.text(max_size=6)),
        json_values,
        max_size=12,
    ),
    st.sets(st.sampled_from([*DEFAULT_CACHE_FIELDS, *PERSON]), min_size=1),
)
def test_a_hit_carries_exactly_the_allowed_fields(data: dict[str, Any], fields: set[str]) -> None:
    """For any answer and any field list, a hit is the answer restricted to the list."""
    cache = _cache(fields=frozenset(fields))
    cache.put("acme.example", data, T0)
    hit = cache.get("acme.example", T0)
    expected = {k: v for k, v in data.items() if k in fields}
    assert (hit.data if hit is not None else {}) == expected


def test_entries_of_another_kind_are_not_served() -> None:
    """After a switch from email to domain keys, the old email entries serve nobody."""
    cache = _cache()
    cache.apply("email/jane@acme.example", {"data": COMPANY, "stored_at": T0}, T0)
    assert len(cache) == 0
    assert cache.tracked == 1, "still tracked, so it is tombstoned when it expires"


def test_unreadable_records_raise_value_error() -> None:
    """A record without data or stored_at is refused, not half-applied."""
    cache = _cache()
    for value in (
        {"data": COMPANY},
        {"data": [1], "stored_at": T0},
        {"data": {}, "stored_at": True},
    ):
        with pytest.raises(ValueError, match="cache record needs"):
            cache.apply("acme.example", value, T0)
    assert cache.tracked == 0


def test_memory_keeps_at_most_max_entries_but_tracks_every_key() -> None:
    """The least recently used answer leaves memory; its key still expires in the topic."""
    cache = _cache(max_entries=2)
    for name in ("a.example", "b.example", "c.example"):
        cache.put(name, COMPANY, T0)
    assert len(cache) == 2
    assert cache.get("a.example", T0) is None
    assert cache.tracked == 3
    assert sorted(cache.expired(T0 + TTL + GRACE + 1, limit=10)) == [
        "a.example",
        "b.example",
        "c.example",
    ]


# --- expiry -------------------------------------------------------------------------------


def test_served_up_to_the_ttl_and_not_after() -> None:
    """An entry is fresh while now - stored_at <= ttl_s."""
    cache = _cache()
    cache.put("acme.example", COMPANY, T0)
    assert cache.get("acme.example", T0 + TTL) is not None
    assert cache.get("acme.example", T0 + TTL + 0.001) is None


def test_a_restore_does_not_load_an_expired_entry_but_tombstones_it() -> None:
    """An expired record read from the topic is not served, and its key is handed out once."""
    cache = _cache()
    now = T0 + TTL + GRACE + 1
    cache.apply("old.example", {"data": COMPANY, "stored_at": T0}, now)
    assert len(cache) == 0
    assert cache.get("old.example", now) is None
    assert cache.expired(now, limit=10) == ["old.example"]
    assert cache.expired(now + 1000, limit=10) == []
    assert cache.tracked == 0


def test_a_key_is_tombstoned_only_after_the_grace() -> None:
    """Expired but within the grace: not yet handed out (another instance may refresh it)."""
    cache = _cache()
    cache.put("acme.example", COMPANY, T0)
    assert cache.expired(T0 + TTL + GRACE, limit=10) == []
    assert cache.expired(T0 + TTL + GRACE + 0.001, limit=10) == ["acme.example"]


def test_a_refreshed_key_is_not_tombstoned_for_its_old_answer() -> None:
    """A key stored again (here or by another instance) expires from its new stored_at."""
    cache = _cache()
    cache.put("acme.example", COMPANY, T0)
    cache.apply("acme.example", {"data": COMPANY, "stored_at": T0 + TTL}, T0 + TTL)
    assert cache.expired(T0 + TTL + GRACE + 1, limit=10) == []
    assert cache.get("acme.example", T0 + TTL + GRACE + 1) is not None


def test_a_tombstone_from_the_topic_forgets_the_key() -> None:
    """Another instance tombstoned it: not served, and not tombstoned again here."""
    cache = _cache()
    cache.put("acme.example", COMPANY, T0)
    cache.apply("acme.example", None, T0 + 1)
    assert cache.get("acme.example", T0 + 1) is None
    assert cache.expired(T0 + 10 * TTL, limit=10) == []


def test_expired_hands_out_at_most_limit_keys() -> None:
    """A backlog goes out a few keys at a time, and all of it in the end."""
    cache = _cache()
    for i in range(5):
        cache.put(f"d{i}.example", COMPANY, T0)
    later = T0 + 2 * TTL
    first = cache.expired(later, limit=2)
    rest = cache.expired(later, limit=10)
    assert len(first) == 2
    assert sorted(first + rest) == [f"d{i}.example" for i in range(5)]


events = st.lists(
    st.tuples(
        st.sampled_from(["a.example", "b.example", "c.example", "email/x@a.example"]),
        st.one_of(st.none(), st.floats(min_value=0, max_value=3 * TTL)),
    ),
    max_size=30,
)


@FAST
@given(events, st.floats(min_value=0, max_value=5 * TTL))
def test_expired_hands_out_exactly_the_keys_whose_latest_record_is_past_the_grace(
    log: list[tuple[str, float | None]], at: float
) -> None:
    """Whatever the order of records (answers at any time, tombstones), expired() returns
    each key whose latest record is an answer older than ttl + grace, once, and no other."""
    cache = _cache()
    latest: dict[str, float | None] = {}
    for key, offset in log:
        value = None if offset is None else {"data": COMPANY, "stored_at": T0 + offset}
        cache.apply(key, value, T0 + (offset or 0.0))
        latest[key] = offset
    now = T0 + at
    due = {k for k, offset in latest.items() if offset is not None and at - offset > TTL + GRACE}
    handed = cache.expired(now, limit=100)
    assert sorted(handed) == sorted(due)
    assert cache.expired(now, limit=100) == []
    for key in due:
        assert cache.get(key, now) is None
