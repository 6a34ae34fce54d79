"""Matching a bulk answer's items to its leads by id (provider/matching.py)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streamproc.provider.matching import id_text, match_items

IDS = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=15, unique=True)


def answer_of(ident: str) -> dict[str, str]:
    return {"id": ident, "data": f"data of {ident}"}


@given(IDS, st.randoms(use_true_random=False))
def test_reordered_items_each_reach_the_lead_that_sent_their_id(
    sent: list[str], rng: random.Random
) -> None:
    """An answer in any order gives every lead its own item and nobody else's."""
    items = [answer_of(ident) for ident in sent]
    rng.shuffle(items)
    matched = match_items(sent, [item["id"] for item in items], items)
    assert matched.items == [answer_of(ident) for ident in sent]
    assert (matched.missing, matched.ambiguous, matched.unknown) == ([], [], 0)


@given(IDS, st.randoms(use_true_random=False), st.data())
def test_a_dropped_item_fails_only_its_own_lead(
    sent: list[str], rng: random.Random, data: st.DataObject
) -> None:
    """Items dropped from the answer leave exactly their leads without an item; every other
    lead still gets its own."""
    dropped = set(data.draw(st.lists(st.sampled_from(sent), unique=True)))
    items = [answer_of(ident) for ident in sent if ident not in dropped]
    rng.shuffle(items)
    matched = match_items(sent, [item["id"] for item in items], items)
    assert sorted(matched.missing) == sorted(sent.index(ident) for ident in dropped)
    for ident, item in zip(sent, matched.items, strict=True):
        assert item == (None if ident in dropped else answer_of(ident))


@given(IDS, st.data())
def test_an_id_answered_twice_is_given_to_nobody(sent: list[str], data: st.DataObject) -> None:
    """Two items claiming one lead: neither is trusted, that lead has no item, the others
    keep theirs."""
    twice = data.draw(st.sampled_from(sent))
    items = [answer_of(ident) for ident in sent] + [{"id": twice, "data": "an impostor"}]
    matched = match_items(sent, [item["id"] for item in items], items)
    assert matched.ambiguous == [sent.index(twice)]
    assert matched.items[sent.index(twice)] is None
    assert all(
        item == answer_of(ident)
        for ident, item in zip(sent, matched.items, strict=True)
        if ident != twice
    )


@given(IDS, st.lists(st.text(min_size=1, max_size=6), max_size=5))
def test_items_of_ids_nobody_sent_are_counted_and_given_to_nobody(
    sent: list[str], strangers: list[str]
) -> None:
    """An item whose id no lead sent (or with no id) is counted unknown and assigned to no
    lead."""
    strangers = [s for s in strangers if s not in sent]
    items = [answer_of(ident) for ident in sent] + [answer_of(s) for s in strangers]
    echoed: list[str | None] = [item["id"] for item in items] + [None]
    matched = match_items(sent, echoed, [*items, {"no": "id"}])
    assert matched.unknown == len(strangers) + 1
    assert matched.items == [answer_of(ident) for ident in sent]


def test_an_id_sent_as_a_number_matches_its_echo_as_text() -> None:
    """7 sent and "7" echoed are one id; null, objects and lists are no id."""
    assert id_text(7) == id_text("7") == "7"
    assert id_text(True) == "true"
    assert id_text(None) is None
    assert id_text({"a": 1}) is None
    assert id_text([1]) is None
