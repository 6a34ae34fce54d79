"""The records that finish a pending lead: its enriched lead, or its DLQ record.

Built from the pending-lead state record alone (the input record was committed long ago):
the enriched lead from the original value's JSON fields, the DLQ record from the original
bytes and headers, unchanged (or, with ``max_bytes``, cut to fit and marked so), plus the
DLQ headers of :mod:`streamproc.records.dlq`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from streamproc.clay.pending import PendingLead
from streamproc.errors import ErrorClass
from streamproc.processing.handler import enriched_value
from streamproc.records.dlq import Failure, encode_dlq_headers, fit_record
from streamproc.records.lead import Source
from streamproc.records.outcome import OutRecord

__all__ = ["dead_letter_record", "enriched_record"]


def _key(lead: PendingLead) -> bytes:
    return lead.key if lead.key is not None else lead.lead_id.encode()


def enriched_record(
    topic: str,
    lead: PendingLead,
    data: dict[str, Any],
    *,
    credits: int,
    now: datetime,
    processor: dict[str, str],
) -> OutRecord:
    """The ``leads.enriched`` record of a lead Clay called back with ``data``."""
    obj = orjson.loads(lead.value)  # it was decoded and validated before it was submitted
    value = enriched_value(
        obj,
        data,
        source=Source.PROVIDER,
        credits=credits,
        attempt=lead.attempt,
        enriched_at=now,
        processor=processor,
    )
    return OutRecord(topic, _key(lead), value, list(lead.headers))


def dead_letter_record(
    topic: str,
    lead: PendingLead,
    error_class: ErrorClass,
    message: str,
    *,
    retriable: bool,
    now: datetime,
    max_bytes: int | None = None,
) -> OutRecord:
    """The ``leads.dlq`` record: original bytes and headers, plus the failure headers.

    With ``max_bytes``, a record that would be larger is cut to fit (the value first; the
    key and headers when they alone are over), and says so in its headers
    (:func:`~streamproc.records.dlq.fit_record`).
    """
    headers = encode_dlq_headers(
        lead.headers,
        Failure(error_class, message, retriable),
        lead.origin,
        lead.attempt,
        now,
    )
    key: bytes | None = _key(lead)
    value: bytes | None = lead.value
    if max_bytes is not None:
        key, value, headers = fit_record(key, value, headers, max_bytes)
    return OutRecord(topic, key, value, headers)
