"""The pending-lead registry: record format and state transitions, without Kafka."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.clay.pending import ClaimRef, PendingLead, PendingRegistry
from streamproc.records.dlq import Origin


def _lead(lead_id: str = "L1", correlation: str = "c1", **changes: Any) -> PendingLead:
    fields: dict[str, Any] = {
        "lead_id": lead_id,
        "correlation_id": correlation,
        "deadline": 1_000.0,
        "submitted_at": 100.0,
        "owner": "me",
        "attempt": 2,
        "origin": Origin("leads.raw", 1, 42, 1_700_000_000_000),
        "key": lead_id.encode(),
        "value": b'{"lead_id": "L1", "domain": "acme.example"}',
        "headers": (("traceparent", b"00-x-01"), ("bin", b"\x00\xff")),
        "webhook": "abc123",
        "domain": "acme.example",
        "claim": ClaimRef("claim-1", "2026-11-26", 6),
        **changes,
    }
    return PendingLead(**fields)


@given(
    value=st.binary(max_size=200),
    key=st.one_of(st.none(), st.binary(max_size=20)),
    headers=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=16))),
)
def test_the_record_keeps_original_bytes_and_headers_exactly(
    value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    """to_dict/from_dict round-trips any value, key and headers byte for byte (base64)."""
    lead = _lead(value=value, key=key, headers=tuple(headers))
    assert PendingLead.from_dict(lead.to_dict()) == lead


def test_an_unreadable_record_is_a_value_error_and_changes_nothing() -> None:
    """A record missing fields or with bad base64 raises ValueError; the registry is unchanged."""
    registry = PendingRegistry()
    broken = {**_lead().to_dict(), "value": "%%%"}
    with pytest.raises(ValueError, match="unreadable"):
        registry.apply("L1", broken)
    with pytest.raises(ValueError, match="unreadable"):
        registry.apply("L1", {"lead_id": "L1"})
    assert registry.get("L1") is None
    assert len(registry) == 0


def test_pending_then_tombstone_is_done() -> None:
    """A pending record makes the lead pending; its tombstone makes it done."""
    registry = PendingRegistry()
    registry.apply("L1", _lead().to_dict())
    assert registry.get("L1") == _lead()
    assert not registry.is_done("L1")
    registry.apply("L1", None)
    assert registry.get("L1") is None
    assert registry.is_done("L1")


def test_our_own_completion_is_ahead_of_the_tail_and_a_stale_record_cannot_revive_it() -> None:
    """completed() finishes the lead at once; the same submission's record seen later by a
    lagging tail does not make it pending again."""
    registry = PendingRegistry()
    registry.apply("L1", _lead().to_dict())
    registry.completed("L1", "c1")
    assert registry.is_done("L1")
    registry.apply("L1", _lead().to_dict())
    assert registry.get("L1") is None
    registry.apply("L1", None)
    assert registry.is_done("L1")


def test_a_new_submission_of_a_finished_lead_is_pending_again() -> None:
    """After a lead is done, a pending record with another correlation id (a replay) counts."""
    registry = PendingRegistry()
    registry.apply("L1", _lead().to_dict())
    registry.apply("L1", None)
    registry.apply("L1", _lead(correlation="c2").to_dict())
    pending = registry.get("L1")
    assert pending is not None and pending.correlation_id == "c2"
    assert not registry.is_done("L1")


def test_completing_another_submission_leaves_the_pending_one() -> None:
    """completed() for correlation c1 does not drop a pending c2 (the tail's tombstone will)."""
    registry = PendingRegistry()
    registry.apply("L1", _lead(correlation="c2").to_dict())
    registry.completed("L1", "c1")
    assert registry.get("L1") is not None


def test_a_tombstone_of_an_unseen_lead_marks_it_done() -> None:
    """After compaction only the tombstone may be left: the lead is still known as done."""
    registry = PendingRegistry()
    registry.apply("gone", None)
    assert registry.is_done("gone")


def test_due_takes_own_leads_at_the_deadline_and_others_after_the_grace() -> None:
    """Own leads are due at their deadline; another owner's only deadline + grace later."""
    registry = PendingRegistry()
    registry.apply("A", _lead("A", deadline=10.0).to_dict())
    registry.apply("B", _lead("B", deadline=5.0, owner="other").to_dict())
    assert [p.lead_id for p in registry.due(9.0, "me", 60.0)] == []
    assert [p.lead_id for p in registry.due(10.0, "me", 60.0)] == ["A"]
    assert [p.lead_id for p in registry.due(65.0, "me", 60.0)] == ["B", "A"]
    assert registry.next_due("me", 60.0) == 10.0
    assert registry.owned_by("me") == 1


def test_changes_are_signalled() -> None:
    """on_change hears the lead id after every applied record and every completion."""
    calls: list[str] = []
    registry = PendingRegistry(on_change=calls.append)
    registry.apply("L1", _lead().to_dict())
    registry.completed("L1", "c1")
    registry.apply("L1", None)
    assert calls == ["L1", "L1", "L1"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.one_of(st.none(), st.integers(0, 3))),
        max_size=40,
    )
)
def test_the_registry_follows_the_log_last_record_wins(ops: list[tuple[str, int | None]]) -> None:
    """Applying any log of pending records and tombstones in order leaves each lead in the
    state of its last record: pending with that correlation, or done."""
    registry = PendingRegistry()
    last: dict[str, int | None] = {}
    for lead_id, corr in ops:
        value = None if corr is None else _lead(lead_id, f"c{corr}").to_dict()
        registry.apply(lead_id, value)
        last[lead_id] = corr
    for lead_id, corr in last.items():
        pending = registry.get(lead_id)
        if corr is None:
            assert pending is None and registry.is_done(lead_id)
        else:
            assert pending is not None and pending.correlation_id == f"c{corr}"
