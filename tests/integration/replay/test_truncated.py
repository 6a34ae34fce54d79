"""A DLQ record whose value was cut to fit is parked by the replayer, never replayed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import orjson

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers, fit_record
from streamproc.replay.config import ReplayConfig
from streamproc.replay.decision import PARKED_REASON
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.settings import Settings
from tests.integration.kafka_io import read_all
from tests.integration.replay.dlq_io import Planted, keys, lead, plant_dlq

_AT = datetime.now(UTC).replace(microsecond=0)


def _timed_out(
    key: str, value: bytes, *, max_bytes: int | None = None
) -> tuple[bytes, bytes, list[tuple[str, bytes]], Planted]:
    """A retriable ``provider_timeout`` at attempt 1 (a replay candidate), its value cut to
    ``max_bytes`` as the processor's ``fit_record`` cuts it when given."""
    headers = encode_dlq_headers(
        [],
        Failure(ErrorClass.PROVIDER_TIMEOUT, "timed out", True),
        Origin("leads.raw", 1, 7, 1),
        1,
        _AT,
    )
    if max_bytes is not None:
        _, cut, headers = fit_record(key.encode(), value, headers, max_bytes)
        assert cut is not None and len(cut) < len(value)
        value = cut
    return key.encode(), value, headers, Planted(key, "provider_timeout", 1, "replay", _AT)


def _records() -> list[tuple[bytes, bytes, list[tuple[str, bytes]], Planted]]:
    big = orjson.dumps({"lead_id": "big", "domain": "big.example", "notes": "n" * 20_000})
    return [_timed_out("whole", lead("whole")), _timed_out("big", big, max_bytes=4_000)]


async def test_dry_run_counts_the_truncated_record_as_parked(topics: Settings) -> None:
    """The dry run says the truncated record would be parked (and counts it apart), and
    the whole one replayed."""
    await plant_dlq(topics, _records())
    report = await Replayer(ReplayConfig.from_settings(topics), ReplayOptions(dry_run=True)).run()
    assert report.to_json()["replayed"] == 1
    assert report.to_json()["parked"] == 1
    assert report.to_json()["parked_truncated"] == 1
    assert "1 of the parked would be truncated" in report.render_text(
        raw="raw", parked="parked", dlq="dlq"
    )


async def test_truncated_record_goes_to_parked_with_its_reason(topics: Settings) -> None:
    """A retriable record whose value the DLQ holds only in part goes straight to
    leads.parked with a reason naming the truncation and its origin; only the whole record
    goes back to leads.raw."""
    await plant_dlq(topics, _records())
    report = await Replayer(ReplayConfig.from_settings(topics), ReplayOptions()).run()
    assert keys(await read_all(topics, topics.topic_raw)) == Counter({"whole": 1})
    assert (report.total("replay"), report.total("park")) == (1, 1)
    assert report.to_json()["parked_truncated"] == 1
    parked = await read_all(topics, topics.topic_parked)
    assert keys(parked) == Counter({"big": 1})
    reason = parked[0].headers[PARKED_REASON].decode()
    assert reason.startswith("truncated")
    assert "leads.raw partition 1 offset 7" in reason
