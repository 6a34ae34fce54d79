"""ClayService's callback side without Kafka: a callback finishes only the submission its
correlation id names; others are duplicates, mismatches or unknown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from streamproc.clay.callback import Callback
from streamproc.clay.finisher import Finish, Finished
from streamproc.clay.pending import PendingLead
from streamproc.clay.receiver import CallbackResult
from streamproc.clay.service import ClayService
from streamproc.processing.config import GuardConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.dlq import Origin
from streamproc.records.outcome import OutRecord
from streamproc.settings import Settings


class _Store:
    restored = asyncio.Event()

    def record(self, key: str, value: dict[str, Any] | None) -> OutRecord:
        return OutRecord("state", key.encode(), None if value is None else orjson.dumps(value))


class _Finisher:
    """Finishes what the registry holds, as the real one decides it; remembers the jobs."""

    def __init__(self, service: ClayService) -> None:
        self._service = service
        self.jobs: list[Finish] = []
        self.built: list[list[OutRecord]] = []

    async def finish(self, job: Finish) -> Finished:
        self.jobs.append(job)
        lead = self._service.registry.get(job.lead_id, job.correlation_id)
        if lead is None:
            return Finished(False)
        self.built.append(job.build(lead))
        self._service.registry.completed(lead)
        return Finished(True, lead)

    async def stop(self) -> None: ...


def _pending(correlation_id: str, email: str) -> dict[str, Any]:
    return PendingLead(
        lead_id="L1",
        correlation_id=correlation_id,
        deadline=10**10,
        submitted_at=0.0,
        owner="me",
        attempt=1,
        origin=Origin("raw", 0, 1, 0),
        key=b"L1",
        value=orjson.dumps({"lead_id": "L1", "email": email}),
        headers=(),
        webhook="w",
    ).to_dict()


@pytest.fixture
async def service() -> AsyncIterator[tuple[ClayService, _Finisher]]:
    settings = Settings.model_validate(
        {
            "provider_mode": "clay",
            "clay_webhook_urls": "https://api.clay.example/hook/a",
            "clay_callback_secret": "s",
            "clay_callback_wait_s": 0.05,
        }
    )
    guard = ResilienceGuard(
        GuardConfig.from_settings(settings), clock=lambda: 1_764_158_400.0, owner="me"
    )
    service = ClayService(
        settings,
        guard,
        _Store(),  # type: ignore[arg-type]
        processor_version="t",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    finisher = _Finisher(service)
    service.finisher = finisher  # type: ignore[assignment]
    await service.start()
    yield service, finisher
    await service.stop()


def _callback(correlation_id: str, title: str = "cto") -> Callback:
    return Callback("L1", correlation_id, {"title": title}, None, None)


Served = tuple[ClayService, _Finisher]


async def test_a_callback_finishes_its_own_submission_not_another_of_the_lead(
    service: Served,
) -> None:
    """With c1 and c2 pending, the callback of c2 publishes c2's own record (its e-mail) and
    leaves c1 pending."""
    clay, finisher = service
    clay.on_state("clay/pending/L1/c1", _pending("c1", "old@x.example"), 1, 0)
    clay.on_state("clay/pending/L1/c2", _pending("c2", "new@x.example"), 1, 1)
    assert await clay.complete(_callback("c2")) is CallbackResult.ENRICHED
    ((record,),) = finisher.built
    assert orjson.loads(record.value or b"{}")["email"] == "new@x.example"
    assert clay.registry.get("L1", "c1") is not None
    assert [(job.lead_id, job.correlation_id) for job in finisher.jobs] == [("L1", "c2")]


async def test_a_replay_of_a_finished_submission_is_a_duplicate_and_finishes_nothing(
    service: Served,
) -> None:
    """c1 finished, c2 pending: c1's callback again answers duplicate and never reaches
    the finisher, so c2 stays pending for its own callback."""
    clay, finisher = service
    clay.on_state("clay/pending/L1/c1", _pending("c1", "old@x.example"), 1, 0)
    assert await clay.complete(_callback("c1")) is CallbackResult.ENRICHED
    clay.on_state("clay/pending/L1/c2", _pending("c2", "new@x.example"), 1, 1)
    assert await clay.complete(_callback("c1", "replayed")) is CallbackResult.DUPLICATE
    assert len(finisher.jobs) == 1
    assert clay.registry.get("L1", "c2") is not None


async def test_a_correlation_id_of_no_submission_is_a_logged_mismatch(service: Served) -> None:
    """A callback naming a submission that never existed, while the lead has one pending,
    is a mismatch, logged as a warning, and finishes nothing."""
    clay, finisher = service
    clay.on_state("clay/pending/L1/c1", _pending("c1", "old@x.example"), 1, 0)
    with capture_logs() as logs:
        result = await clay.complete(_callback("forged"))
    assert result is CallbackResult.CORRELATION_MISMATCH
    assert finisher.jobs == []
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "clay.callback_correlation_mismatch"
    ]


async def test_a_callback_of_a_lead_with_nothing_pending_is_unknown(service: Served) -> None:
    """No submission of the lead pending or finished: unknown lead."""
    clay, finisher = service
    assert await clay.complete(_callback("c1")) is CallbackResult.UNKNOWN_LEAD
    assert finisher.jobs == []


async def test_a_callback_that_beats_its_pending_record_waits_for_it(service: Served) -> None:
    """c2's callback arrives while only c1 is pending; c2's record shows up within the wait:
    c2 is the one finished."""
    clay, finisher = service
    clay.on_state("clay/pending/L1/c1", _pending("c1", "old@x.example"), 1, 0)
    answer = asyncio.ensure_future(clay.complete(_callback("c2")))
    await asyncio.sleep(0.01)
    clay.on_state("clay/pending/L1/c2", _pending("c2", "new@x.example"), 1, 1)
    assert await answer is CallbackResult.ENRICHED
    assert [job.correlation_id for job in finisher.jobs] == ["c2"]
