"""The idempotency key of a lead and of a bulk request (provider/api.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from streamproc.errors import InvalidPayload
from streamproc.provider.api import LeadIn, batch_idempotency_key, idempotency_key

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(max_size=8)
)
LEAD_OBJECTS = st.dictionaries(
    st.text(max_size=6), JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3), max_size=5
)
LEADS = st.lists(st.tuples(st.text(min_size=1, max_size=12), LEAD_OBJECTS), max_size=12)


@given(LEADS, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=12))
def test_a_leads_key_is_the_same_in_any_batch_and_on_any_retry(
    leads: list[tuple[str, dict[str, Any]]], rng: random.Random, size: int
) -> None:
    """Re-batching (shuffled, other sizes) and retries of subsets never change a lead's key."""
    first = {
        (i, lead_id): LeadIn(lead_id, lead).idempotency_key
        for i, (lead_id, lead) in enumerate(leads)
    }
    order = list(enumerate(leads))
    rng.shuffle(order)
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    for batch in batches:
        retried = [one for one in batch if rng.random() < 0.5]
        for i, (lead_id, lead) in batch + retried:
            # A copy with its keys in another order: the input as another process decodes it.
            reordered = dict(reversed(list(lead.items())))
            assert LeadIn(lead_id, reordered).idempotency_key == first[(i, lead_id)]


@given(st.text(min_size=1, max_size=12), LEAD_OBJECTS, st.text(max_size=6), JSON_SCALARS)
def test_a_changed_input_or_another_lead_id_is_another_key(
    lead_id: str, lead: dict[str, Any], field: str, value: Any
) -> None:
    """The key follows the lead's input: a changed field, or the same input under another
    lead_id, asks another question and carries another key."""
    assume(field not in lead or lead[field] != value)
    key = idempotency_key(lead_id, lead)
    assert idempotency_key(lead_id, {**lead, field: value}) != key
    assert idempotency_key(lead_id + "x", lead) != key


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=10), st.randoms())
def test_a_batch_key_is_its_set_of_lead_keys(keys: list[str], rng: random.Random) -> None:
    """The same leads in any order give one batch key; a subset (a retry of fewer) another."""
    shuffled = list(keys)
    rng.shuffle(shuffled)
    assert batch_idempotency_key(shuffled) == batch_idempotency_key(keys)
    if len(set(keys)) > 1:
        assert batch_idempotency_key(sorted(set(keys))[1:]) != batch_idempotency_key(keys)


def test_the_key_is_64_hex_characters_whatever_the_lead_id() -> None:
    """Any lead_id (non-ASCII, CR/LF, long) gives a key every header can carry."""
    for lead_id in ("lead-é", "a\r\nX: 1", "x" * 256):
        key = idempotency_key(lead_id, {"email": "a@b.example"})
        assert len(key) == 64
        assert set(key) <= set("0123456789abcdef")


def test_a_given_key_is_kept_and_a_missing_one_worked_out() -> None:
    """LeadIn carries the key it is given (worked out once, before the first attempt)."""
    assert LeadIn("a", {}, "given").idempotency_key == "given"
    assert LeadIn("a", {}).idempotency_key == idempotency_key("a", {})


def test_a_lead_json_cannot_carry_is_invalid_payload() -> None:
    """A lead with a value JSON cannot encode has no key: InvalidPayload, not a crash."""
    with pytest.raises(InvalidPayload):
        idempotency_key("a", {"domain": object()})
