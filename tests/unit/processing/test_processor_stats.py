"""The processor's counters of committed leads (the /status ``processing`` block)."""

from __future__ import annotations

from typing import Any, cast

from streamproc.errors import ErrorClass
from streamproc.processing.config import ProcessorConfig
from streamproc.processing.lane import CommitResult
from streamproc.processing.processor import Processor
from streamproc.records.lead import Source
from streamproc.records.outcome import Outcome, OutcomeKind
from streamproc.settings import Settings


def _outcome(kind: OutcomeKind, source: Source | None = None) -> tuple[Any, Outcome]:
    record = cast(Any, type("R", (), {"topic": "raw", "partition": 0, "offset": 1})())
    error = ErrorClass.PROVIDER_ERROR if kind is OutcomeKind.DLQ else None
    return record, Outcome(kind, [], "L1", 1, error_class=error, source=source)


def test_enriched_leads_are_counted_by_source_under_plain_names() -> None:
    """Each enriched lead counts once under its source's name, one without a source under
    ``provider``; a dead-lettered lead counts under none."""
    processor = Processor(ProcessorConfig.from_settings(Settings()), cast(Any, None))
    outcomes = [
        _outcome(OutcomeKind.ENRICHED),
        _outcome(OutcomeKind.ENRICHED, Source.PROVIDER),
        _outcome(OutcomeKind.ENRICHED, Source.CACHE),
        _outcome(OutcomeKind.ENRICHED, Source.FALLBACK),
        _outcome(OutcomeKind.DLQ),
    ]
    processor._account(CommitResult(outcomes, 2))
    stats = processor.stats
    assert stats.by_source == {"provider": 2, "cache": 1, "fallback": 1}
    assert all(type(name) is str for name in stats.by_source)
    assert (stats.committed, stats.enriched, stats.transactions) == (5, 4, 1)
