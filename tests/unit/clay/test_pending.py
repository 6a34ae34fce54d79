"""The pending-lead registry: record format and state transitions, without Kafka."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.clay.pending import (
    PENDING_PREFIX,
    ClaimRef,
    PendingLead,
    PendingRegistry,
    pending_key,
)
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


def _rest(lead: PendingLead) -> str:
    """The state key after ``clay/pending/``."""
    return pending_key(lead.lead_id, lead.correlation_id)[len(PENDING_PREFIX) :]


def test_an_unreadable_record_is_a_value_error_and_changes_nothing() -> None:
    """A record missing fields, with bad base64, or under another submission's key raises
    ValueError; the registry is unchanged."""
    registry = PendingRegistry()
    broken = {**_lead().to_dict(), "value": "%%%"}
    with pytest.raises(ValueError, match="unreadable"):
        registry.apply("L1/c1", broken)
    with pytest.raises(ValueError, match="unreadable"):
        registry.apply("L1/c1", {"lead_id": "L1"})
    with pytest.raises(ValueError, match="disagree"):
        registry.apply("L1/c2", _lead().to_dict())
    assert registry.get("L1", "c1") is None
    assert len(registry) == 0


def test_pending_then_tombstone_is_done() -> None:
    """A pending record makes the submission pending; its tombstone makes it done."""
    registry = PendingRegistry()
    registry.apply("L1/c1", _lead().to_dict())
    assert registry.get("L1", "c1") == _lead()
    assert registry.state_key("L1", "c1") == "clay/pending/L1/c1"
    assert not registry.is_done("L1", "c1")
    registry.apply("L1/c1", None)
    assert registry.get("L1", "c1") is None
    assert registry.is_done("L1", "c1")
    assert not registry.has_pending("L1")


def test_the_same_lead_id_twice_is_two_pending_submissions() -> None:
    """An update of a lead while its first submission is pending does not replace it: both
    are pending, and each is finished by its own tombstone."""
    registry = PendingRegistry()
    registry.apply("L1/c1", _lead().to_dict())
    registry.apply("L1/c2", _lead(correlation="c2").to_dict())
    assert len(registry) == 2
    registry.apply("L1/c1", None)
    assert registry.is_done("L1", "c1")
    second = registry.get("L1", "c2")
    assert second is not None and second.correlation_id == "c2"
    assert registry.has_pending("L1")


def test_our_own_completion_is_ahead_of_the_tail_and_a_stale_record_cannot_revive_it() -> None:
    """completed() finishes the submission at once; its record seen later by a lagging tail
    does not make it pending again."""
    registry = PendingRegistry()
    registry.apply("L1/c1", _lead().to_dict())
    registry.completed(_lead())
    assert registry.is_done("L1", "c1")
    registry.apply("L1/c1", _lead().to_dict())
    assert registry.get("L1", "c1") is None
    registry.apply("L1/c1", None)
    assert registry.is_done("L1", "c1")


def test_completing_one_submission_leaves_the_other_pending() -> None:
    """completed() for c1 does not touch a pending c2 of the same lead."""
    registry = PendingRegistry()
    registry.apply("L1/c2", _lead(correlation="c2").to_dict())
    registry.completed(_lead())
    assert registry.get("L1", "c2") is not None
    assert registry.is_done("L1", "c1")
    assert not registry.is_done("L1", "c2")


def test_a_tombstone_of_an_unseen_submission_marks_it_done() -> None:
    """After compaction only the tombstone may be left: the submission is still known as
    done (a replayed callback is a duplicate); a lead id may contain slashes."""
    registry = PendingRegistry()
    registry.apply("a/b/0f3a", None)
    assert registry.is_done("a/b", "0f3a")
    assert not registry.has_pending("a/b")


def test_records_of_the_earlier_format_are_read_and_finished_under_their_own_key() -> None:
    """A record keyed clay/pending/<lead_id> (one per lead) is pending, its tombstone key is
    that key, a newer one of the same key replaces it, and its tombstone finishes it."""
    registry = PendingRegistry()
    registry.apply("L1", _lead(correlation="0a").to_dict())
    assert registry.state_key("L1", "0a") == "clay/pending/L1"
    registry.apply("L1", _lead(correlation="0b").to_dict())
    assert registry.get("L1", "0a") is None
    assert len(registry) == 1
    registry.apply("L1", None)
    assert registry.is_done("L1", "0b")
    assert len(registry) == 0
    registry.apply("gone", None)  # an old tombstone of a lead never seen: nothing to know
    assert len(registry) == 0


def test_due_takes_own_leads_at_the_deadline_and_others_after_the_grace() -> None:
    """Own submissions are due at their deadline; another owner's only deadline + grace later."""
    registry = PendingRegistry()
    a, b = _lead("A", deadline=10.0), _lead("B", deadline=5.0, owner="other")
    registry.apply(_rest(a), a.to_dict())
    registry.apply(_rest(b), b.to_dict())
    assert [p.lead_id for p in registry.due(9.0, "me", 60.0)] == []
    assert [p.lead_id for p in registry.due(10.0, "me", 60.0)] == ["A"]
    assert [p.lead_id for p in registry.due(65.0, "me", 60.0)] == ["B", "A"]
    assert registry.next_due("me", 60.0) == 10.0
    assert registry.owned_by("me") == 1


def test_changes_are_signalled() -> None:
    """on_change hears the lead id after every applied record and every completion."""
    calls: list[str] = []
    registry = PendingRegistry(on_change=calls.append)
    registry.apply("L1/c1", _lead().to_dict())
    registry.completed(_lead())
    registry.apply("L1/c1", None)
    assert calls == ["L1", "L1", "L1"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from(["c0", "c1", "c2"]),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_the_registry_follows_the_log_last_record_of_each_key_wins(
    ops: list[tuple[str, str, bool]],
) -> None:
    """Applying any log of pending records and tombstones in order leaves each submission
    in the state of its last record, whatever the other submissions of its lead do."""
    registry = PendingRegistry()
    last: dict[tuple[str, str], bool] = {}
    for lead_id, corr, pending in ops:
        value = _lead(lead_id, corr).to_dict() if pending else None
        registry.apply(f"{lead_id}/{corr}", value)
        last[lead_id, corr] = pending
    for (lead_id, corr), pending in last.items():
        found = registry.get(lead_id, corr)
        if pending:
            assert found is not None and found.correlation_id == corr
        else:
            assert found is None and registry.is_done(lead_id, corr)
    assert len(registry) == sum(last.values())
