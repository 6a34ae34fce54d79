"""Publication: outputs fitted to their topics' limits, refused outputs dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import LeadError
from streamproc.processing.publication import Publication, Unpublishable, record_bytes
from streamproc.records.dlq import ORIGINAL_SIZE, VALUE_TRUNCATED
from streamproc.records.outcome import Outcome, OutcomeKind, OutRecord

DLQ = "dlq"


@dataclass
class _Record:
    value: bytes | None
    key: bytes | None = b"k"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _dead_letter(record: object, error: LeadError, previous: Outcome | None) -> Outcome:
    assert isinstance(record, _Record)
    out = OutRecord(DLQ, record.key, record.value, [("class", error.error_class.value.encode())])
    credits = previous.credits if previous else 0
    return Outcome(OutcomeKind.DLQ, [out], "L1", 1, error.error_class, credits=credits)


def _publication(enriched_limit: int = 4_000, dlq_limit: int = 10_000) -> Publication:
    return Publication(DLQ, _dead_letter, {"enriched": enriched_limit, DLQ: dlq_limit}, 1_000_000)


def _enriched(value: bytes, credits: int = 6) -> Outcome:
    return Outcome(
        OutcomeKind.ENRICHED, [OutRecord("enriched", b"k", value)], "L1", 1, credits=credits
    )


def test_an_output_that_fits_is_published_as_it_is() -> None:
    """Nothing changes for an enriched record under its topic's limit."""
    outcome = _enriched(b"x" * 100)
    assert _publication().fit(_Record(b"{}"), outcome) is outcome


def test_an_output_over_its_topics_limit_becomes_output_too_large() -> None:
    """An enriched record over leads.enriched's limit: the lead is dead-lettered with its
    original, and what it was charged stays counted."""
    fitted = _publication().fit(_Record(b"original"), _enriched(b"x" * 5_000, credits=6))
    assert fitted.kind is OutcomeKind.DLQ
    assert fitted.error_class == "output_too_large"
    assert fitted.credits == 6
    assert [(r.topic, r.value) for r in fitted.records] == [(DLQ, b"original")]


@given(size=st.integers(min_value=0, max_value=50_000), limit=st.integers(2_000, 20_000))
def test_a_dead_letter_always_fits_and_keeps_a_prefix_of_the_original(
    size: int, limit: int
) -> None:
    """Whatever the original's size, the DLQ record fits its limit; when cut, its value is
    the start of the original and the headers say so and give the original's size."""
    original = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    dlq = Outcome(OutcomeKind.DLQ, [OutRecord(DLQ, b"k", original, [("h", b"v")])], None, 1)
    fitted = _publication(dlq_limit=limit).fit(_Record(original), dlq)
    (out,) = fitted.records
    assert record_bytes(out) <= limit
    assert out.value is not None and original.startswith(out.value)
    headers = dict(out.headers)
    if out.value != original:
        assert headers[VALUE_TRUNCATED] == b"true"
        assert int(headers[ORIGINAL_SIZE]) == len(original)
    else:
        assert VALUE_TRUNCATED not in headers


def test_a_refused_output_alone_in_its_batch_teaches_the_limit() -> None:
    """The broker refused a record that was alone in its batch for its size: the topic's
    limit shrinks below that record, so the next one of that size is fitted before sending."""
    publication = _publication(enriched_limit=1_000_000)
    outcome = _enriched(b"x" * 3_000)
    (out,) = outcome.records
    instead = publication.refused(
        _Record(b"orig"), outcome, out, "MessageSizeTooLargeError", too_large=True, alone=True
    )
    assert instead.error_class == "output_too_large"
    assert publication.limit("enriched") == record_bytes(out) - 1
    assert publication.fit(_Record(b"o"), _enriched(b"y" * 3_000)).kind is OutcomeKind.DLQ


def test_a_refusal_for_another_reason_is_output_refused() -> None:
    """A policy or timestamp refusal dead-letters the lead as output_refused."""
    outcome = _enriched(b"x")
    (out,) = outcome.records
    instead = _publication().refused(
        _Record(b"orig"), outcome, out, "PolicyViolationError", too_large=False, alone=True
    )
    assert instead.error_class == "output_refused"
    assert _publication().limit("enriched") == 4_000


def test_a_dlq_record_refused_for_anything_but_size_is_unpublishable() -> None:
    """When the DLQ itself refuses a record there is nowhere left: raised, not dropped."""
    dlq = Outcome(OutcomeKind.DLQ, [OutRecord(DLQ, b"k", b"v")], None, 1)
    with pytest.raises(Unpublishable):
        _publication().refused(
            _Record(b"v"),
            dlq,
            dlq.records[0],
            "TopicAuthorizationFailed",
            too_large=False,
            alone=True,
        )
