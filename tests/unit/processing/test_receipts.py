"""Receipts, without Kafka: the fold of receipt records, their bounds, and how the guard and
the handler use them before the cache and before any claim."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streamproc.processing.config import GuardConfig, HandlerConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.processing.handler import LeadHandler
from streamproc.records.lead import Lead
from streamproc.records.outcome import OutRecord
from streamproc.resilience.receipts import Receipt, ReceiptBook, receipt_id
from streamproc.settings import Settings
from streamproc.state.store import StateStore
from tests.unit.processing.fakes import Clock, Result

PERSON = {"full_name": "Jane Doe", "title": "CFO", "email": "jane@acme.example"}
COMPANY = {"company": "Acme", "domain": "acme.example"}
STATE = "streamproc.state"


class _Store:
    """A state topic in memory: records what the guard appends and hands each record back
    to it, as the tail would; builds transactional records."""

    def __init__(self, guard: ResilienceGuard) -> None:
        self.appended: list[tuple[str, dict[str, Any] | None]] = []
        self._guard = guard

    async def append(self, key: str, value: dict[str, Any] | None) -> tuple[int, int]:
        self.appended.append((key, value))
        offset = len(self.appended) - 1
        self._guard.on_state(key, value, 0, offset)
        return 0, offset

    async def wait_applied(self, partition: int, offset: int) -> None:
        return None

    def record(self, key: str, value: dict[str, Any] | None) -> OutRecord:
        payload = None if value is None else orjson.dumps(value)
        return OutRecord(STATE, key.encode(), payload, [], self.partition_for(key))

    @staticmethod
    def partition_for(key: str) -> int:
        return 1 if key.startswith("cache/") else 2


def _guard(**changes: Any) -> tuple[ResilienceGuard, Clock, _Store]:
    clock = Clock()
    settings = Settings.model_validate({"budget_daily_credits": 1_000, **changes})
    guard = ResilienceGuard(GuardConfig.from_settings(settings), clock=clock, owner="unit")
    store = _Store(guard)
    guard.attach(cast(StateStore, store))
    return guard, clock, store


async def _drain() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --- the fold ---------------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(st.sampled_from(["a/1", "a/2", "b/1", "c/9"]), st.none() | st.integers(0, 9)),
    max_size=40,
)


@given(_ops)
def test_the_fold_keeps_the_last_record_of_each_receipt(ops: list[tuple[str, int | None]]) -> None:
    """Folding any sequence of receipts and tombstones leaves each id's latest record."""
    book = ReceiptBook(ttl_s=3600, max_entries=100)
    latest: dict[str, int | None] = {}
    for rid, credits in ops:
        value = None if credits is None else {"data": {"n": credits}, "credits": credits, "at": 1.0}
        book.apply(rid, value, 1.0)
        latest[rid] = credits
    for rid, credits in latest.items():
        got = book.get(rid)
        want = None if credits is None else Receipt({"n": credits}, credits, 1.0, f"receipt/{rid}")
        assert got == want
    assert len(book) == sum(credits is not None for credits in latest.values())


@given(st.integers(1, 20), st.integers(0, 60))
def test_memory_is_bounded_oldest_dropped_first(limit: int, count: int) -> None:
    """At most ``max_entries`` receipts are kept; the newest survive."""
    book = ReceiptBook(ttl_s=3600, max_entries=limit)
    for n in range(count):
        book.put(f"l{n}/h", {"n": n}, 1, float(n))
    assert len(book) == min(limit, count)
    assert all(book.get(f"l{n}/h") is not None for n in range(max(0, count - limit), count))


def test_receipts_expire_after_their_ttl_once_each() -> None:
    """A receipt older than its TTL is handed out once for its tombstone and forgotten."""
    book = ReceiptBook(ttl_s=100, max_entries=10)
    book.put("old/h", {}, 1, 0.0)
    book.put("new/h", {}, 1, 50.0)
    assert book.expired(100.0, 10) == []
    assert book.expired(101.0, 10) == ["old/h"]
    assert book.expired(101.0, 10) == []
    assert book.get("new/h") is not None and book.get("old/h") is None


def test_an_unreadable_receipt_is_refused() -> None:
    """A record without data or credits is a ValueError (logged and skipped by the fold)."""
    book = ReceiptBook(ttl_s=100, max_entries=10)
    bads: list[dict[str, Any]] = [
        {"credits": 1, "at": 0},
        {"data": {}, "credits": -1, "at": 0},
        {"data": {}},
    ]
    for bad in bads:
        try:
            book.apply("x/h", bad, 0.0)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
    assert len(book) == 0


def test_the_id_names_the_lead_and_its_input() -> None:
    """The same lead with the same input has one id; another input, another id."""
    one = receipt_id("L1", b'{"lead_id":"L1","email":"a@x.example"}')
    assert one == receipt_id("L1", b'{"lead_id":"L1","email":"a@x.example"}')
    assert one != receipt_id("L1", b'{"lead_id":"L1","email":"b@x.example"}')
    assert one.startswith("L1/")


# --- the guard: receipt before cache, before any claim ------------------------------------------


async def test_a_lead_run_again_gets_its_whole_paid_answer_not_the_cache() -> None:
    """After its answer, the same lead is answered from its receipt: the person, not the
    company fields the cache keeps, with what it was charged and nothing claimed."""
    guard, _, store = _guard()
    lead = Lead(lead_id="L1", email="jane@acme.example")
    first = await guard.admit(lead, "L1/h")
    assert first.ticket is not None
    guard.settle(first, Result({**COMPANY, **PERSON}, credits=1), None)
    assert first.after is not None and first.after[0].key == b"receipt/L1/h"
    assert first.after[0].value is None
    await _drain()
    written = len(store.appended)
    again = await guard.admit(lead, "L1/h")
    assert again.enrichment == {**COMPANY, **PERSON}
    assert again.source == "provider" and again.cache is None and again.credits == 1
    assert again.ticket is None  # no permit, no lease slice
    assert again.after is not None and again.after[0].key == b"receipt/L1/h"
    await _drain()
    assert store.appended[written:] == []  # nothing booked, nothing claimed


async def test_the_receipt_rides_in_the_cache_record_and_its_tombstone_beside_it() -> None:
    """With a cache key, the answer writes one state record, the cache entry naming its lead
    and carrying its receipt; the receipt's tombstone goes to that record's partition."""
    guard, clock, store = _guard()
    first = await guard.admit(Lead(lead_id="L1", email="jane@acme.example"), "L1/h")
    guard.settle(first, Result({**COMPANY, **PERSON}, credits=2), None)
    await _drain()
    written = [(key, value) for key, value in store.appended if not key.startswith("budget/")]
    assert written == [
        (
            "cache/acme.example",
            {
                "data": COMPANY,
                "stored_at": clock.t,
                "lead": "L1",
                "receipt": "L1/h",
                "answer": {**COMPANY, **PERSON},
                "credits": 2,
            },
        )
    ]
    assert first.after is not None
    assert first.after[0].partition == _Store.partition_for("cache/acme.example")


async def test_without_a_cache_key_the_receipt_is_a_record_of_its_own() -> None:
    """A freemail lead (no cache entry) gets its receipt as ``receipt/<id>``; the receipt
    answers its lead again after a restore of that record."""
    guard, clock, store = _guard()
    first = await guard.admit(Lead(lead_id="L1", email="jane@gmail.com"), "L1/h")
    guard.settle(first, Result(PERSON, credits=2), None)
    await _drain()
    written = [(key, value) for key, value in store.appended if not key.startswith("budget/")]
    assert written == [("receipt/L1/h", {"data": PERSON, "credits": 2, "at": clock.t})]
    assert first.after is not None
    assert first.after[0].partition == _Store.partition_for("receipt/L1/h")
    restored, _, _ = _guard()
    restored.on_state("receipt/L1/h", written[0][1], 2, 0)
    again = await restored.admit(Lead(lead_id="L1", email="jane@gmail.com"), "L1/h")
    assert again.enrichment == PERSON


async def test_a_carried_receipt_is_folded_and_forgotten_by_its_tombstone() -> None:
    """A cache record from the state topic that carries a receipt answers that lead whole
    (another instance's answer, or a restore) until the receipt's tombstone comes."""
    guard, clock, _ = _guard()
    carried = {
        "data": COMPANY,
        "stored_at": clock.t,
        "lead": "L1",
        "receipt": "L1/h",
        "answer": {**COMPANY, **PERSON},
        "credits": 1,
    }
    guard.on_state("cache/acme.example", carried, 1, 0)
    lead = Lead(lead_id="L1", email="jane@acme.example")
    paid = await guard.admit(lead, "L1/h")
    assert paid.enrichment == {**COMPANY, **PERSON} and paid.credits == 1
    assert paid.after is not None and paid.after[0].partition == 1
    other = await guard.admit(Lead(lead_id="L2", email="john@acme.example"), "L2/h")
    assert other.source == "cache" and other.enrichment == COMPANY
    guard.on_state("receipt/L1/h", None, 1, 1)
    again = await guard.admit(lead, "L1/h")
    assert again.enrichment is None and again.ticket is not None


def test_a_restore_does_not_bring_back_a_receipt_past_its_ttl() -> None:
    """A receipt read back older than receipt_ttl_s (its tombstone compacted away) is not
    kept."""
    book = ReceiptBook(ttl_s=100, max_entries=10)
    book.apply("a/h", {"data": {}, "credits": 1, "at": 0.0}, 101.0)
    book.carried(
        "cache/x.example",
        {"data": {}, "stored_at": 0.0, "receipt": "b/h", "answer": {}, "credits": 1},
        101.0,
    )
    assert len(book) == 0


async def test_a_cache_entry_never_answers_the_lead_that_paid_for_it() -> None:
    """The lead whose answer made the entry, without its receipt (tombstoned, or lost), is
    admitted to call again; another lead of the domain is served the company fields."""
    guard, _, _ = _guard()
    guard.on_state(
        "cache/acme.example", {"data": COMPANY, "stored_at": Clock().t, "lead": "L1"}, 1, 0
    )
    same = await guard.admit(Lead(lead_id="L1", email="jane@acme.example"), "L1/h")
    assert same.enrichment is None and same.ticket is not None
    guard.cancelled(same)
    other = await guard.admit(Lead(lead_id="L2", email="john@acme.example"), "L2/h")
    assert other.source == "cache" and other.enrichment == COMPANY


async def test_a_receipt_from_the_state_topic_answers_and_its_tombstone_forgets_it() -> None:
    """Receipts are folded from the state topic (another instance's, a restore) and dropped
    by their tombstone (the lead's output committed)."""
    guard, clock, _ = _guard()
    guard.on_state("receipt/L1/h", {"data": PERSON, "credits": 1, "at": clock.t}, 1, 0)
    lead = Lead(lead_id="L1", email="jane@acme.example")
    assert (await guard.admit(lead, "L1/h")).enrichment == PERSON
    changed = await guard.admit(lead, "L1/other")  # another input: asked again
    assert changed.enrichment is None and changed.ticket is not None
    guard.cancelled(changed)
    guard.on_state("receipt/L1/h", None, 1, 1)
    again = await guard.admit(lead, "L1/h")
    assert again.enrichment is None and again.ticket is not None


async def test_an_expired_receipt_is_tombstoned_and_no_longer_answers() -> None:
    """A receipt whose lead never committed is tombstoned after receipt_ttl_s."""
    guard, clock, store = _guard(receipt_ttl_s=60)
    guard.on_state("receipt/L9/h", {"data": PERSON, "credits": 1, "at": clock.t}, 1, 0)
    clock.t += 61
    admitted = await guard.admit(Lead(lead_id="L9", email="x@y.example"), "L9/h")
    assert admitted.enrichment is None
    await _drain()
    assert ("receipt/L9/h", None) in store.appended


# --- the handler: the receipt's answer published whole, its tombstone in the transaction ---------


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=list)


class _Enricher:
    def __init__(self) -> None:
        self.calls = 0

    async def enrich(self, lead: Any, lead_id: str, *, keep_trying: Any = None) -> Result:
        self.calls += 1
        return Result({**COMPANY, **PERSON, "n": self.calls}, credits=1)


async def test_a_lead_processed_twice_is_bought_once_and_published_whole_both_times() -> None:
    """The second run of a lead (a crash, a rebalance) publishes the first run's answer,
    source provider, with the receipt's tombstone in its records; the provider is called
    once."""
    guard, _, _ = _guard()
    enricher = _Enricher()
    handler = LeadHandler(
        HandlerConfig.from_settings(Settings()),
        enricher,
        guard,
        processor_version="t",
        utcnow=lambda: datetime.now(UTC),
    )
    value = orjson.dumps({"lead_id": "L1", "email": "jane@acme.example"})
    record = _Record("leads.raw", 0, 5, 0, b"L1", value)
    outcomes = [await handler.handle(record), await handler.handle(record)]
    assert enricher.calls == 1
    for outcome in outcomes:
        out, tombstone = outcome.records
        published = orjson.loads(out.value or b"")
        assert published["enrichment"] == {**COMPANY, **PERSON, "n": 1}
        assert published["enrichment_meta"]["source"] == "provider"
        assert published["enrichment_meta"]["credits"] == 1
        assert tombstone.topic == STATE and tombstone.value is None
        assert tombstone.key == f"receipt/{receipt_id('L1', value)}".encode()
    assert [outcome.credits for outcome in outcomes] == [1, 0]  # charged once


async def test_a_copy_of_a_lead_in_flight_waits_and_gets_the_receipt() -> None:
    """Two copies of one lead (same input) at once: the second waits for the first's call
    and is answered from its receipt, the whole person, not called and not the cache."""
    guard, _, _ = _guard()
    lead = Lead(lead_id="L1", email="jane@acme.example")
    first = await guard.admit(lead, "L1/h")
    assert first.ticket is not None
    copy = asyncio.ensure_future(guard.admit(lead, "L1/h"))
    await _drain()
    assert not copy.done()
    guard.settle(first, Result({**COMPANY, **PERSON}, credits=1), None)
    second = await asyncio.wait_for(copy, timeout=5)
    assert second.enrichment == {**COMPANY, **PERSON}
    assert second.source == "provider" and second.ticket is None


async def test_a_paid_lead_turned_into_a_dlq_record_keeps_its_receipt() -> None:
    """A lead whose output cannot be published (too large, refused) is dead-lettered
    without its receipt's tombstone: a replay of it within receipt_ttl_s is answered from
    the receipt, not bought again."""
    from streamproc.errors import OutputTooLarge

    guard, _, _ = _guard()
    enricher = _Enricher()
    handler = LeadHandler(
        HandlerConfig.from_settings(Settings()),
        enricher,
        guard,
        processor_version="t",
        utcnow=lambda: datetime.now(UTC),
    )
    value = orjson.dumps({"lead_id": "L2", "email": "joe@acme.example"})
    record = _Record("leads.raw", 0, 7, 0, b"L2", value)
    enriched = await handler.handle(record)
    assert any(out.topic == STATE for out in enriched.records)
    dead = handler.dead_letter(record, OutputTooLarge("too large"), enriched)
    assert [out.topic for out in dead.records] == [Settings().topic_dlq]
    assert dead.credits == enriched.credits
    replayed = await handler.handle(record)
    assert enricher.calls == 1
    assert orjson.loads(replayed.records[0].value or b"")["enrichment"]["n"] == 1
