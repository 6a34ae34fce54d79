"""Matching a bulk answer's items to the leads of its request by an id, not by position.

An API that reorders the items of its bulk answer, drops one, or answers one twice must
never give a lead another lead's data. Each lead of the request is known by the id it
carried (the declarative provider's ``lead_item_id``), each item of the answer by the id it
echoes (``item_id``); :func:`match_items` pairs them. Pure: no I/O, no JMESPath (the caller
passes the ids already read).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Matched", "id_text", "match_items"]


def id_text(value: Any) -> str | None:
    """An id as text, so ``7`` sent and ``"7"`` echoed are one id; None for no id (null, or
    a value that is not a string, a number or a boolean: not an id)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


@dataclass(frozen=True, slots=True)
class Matched:
    """The items of one bulk answer, paired with the leads of its request.

    ``items[i]`` is the item of lead ``i``, or None when it has none it can safely take:
    its id is in ``missing`` (no item echoed it: dropped) or ``ambiguous`` (several items
    echoed it: neither may be trusted). ``unknown`` counts items whose id no lead carried
    (or that carried no id): they are assigned to nobody.
    """

    items: list[Any | None]
    missing: list[int]
    ambiguous: list[int]
    unknown: int


def match_items(sent: Sequence[str], echoed: Sequence[str | None], items: Sequence[Any]) -> Matched:
    """Pair ``items`` (whose ids are ``echoed``, in the same order) with the leads whose ids
    were ``sent``, in the request's order. The ids sent must be distinct (the request is
    built so); an item is only ever given to the lead that sent its id."""
    if len(echoed) != len(items):
        raise ValueError("one echoed id per item")
    where = {ident: i for i, ident in enumerate(sent)}
    if len(where) != len(sent):
        raise ValueError("the ids sent must be distinct")
    seen = Counter(ident for ident in echoed if ident is not None and ident in where)
    paired: list[Any | None] = [None] * len(sent)
    unknown = 0
    for ident, item in zip(echoed, items, strict=True):
        index = None if ident is None else where.get(ident)
        if ident is None or index is None:
            unknown += 1
        elif seen[ident] == 1:
            paired[index] = item
    missing = [i for i, ident in enumerate(sent) if seen[ident] == 0]
    ambiguous = [i for i, ident in enumerate(sent) if seen[ident] > 1]
    return Matched(paired, missing, ambiguous, unknown)
