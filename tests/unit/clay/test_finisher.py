"""Finishing pending leads exactly once, with a fake producer and state store: duplicates,
stale sweeps, fencing by another instance, Kafka failures."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import (
    InvalidTimestampError,
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
)

from streamproc.clay import finisher as finisher_module
from streamproc.clay.config import ClayConfig
from streamproc.clay.finisher import Finish, Finisher, FinishUnavailable
from streamproc.clay.pending import PendingLead, PendingRegistry
from streamproc.errors import OutputRefused, OutputTooLarge
from streamproc.kafka.config import KafkaConnection
from streamproc.records.dlq import Origin
from streamproc.records.outcome import OutRecord
from streamproc.settings import Settings


def _pending(lead_id: str, correlation: str = "c1") -> dict[str, Any]:
    return PendingLead(
        lead_id=lead_id,
        correlation_id=correlation,
        deadline=10.0,
        submitted_at=0.0,
        owner="me",
        attempt=1,
        origin=Origin("raw", 0, 1, 0),
        key=lead_id.encode(),
        value=b"{}",
        headers=(),
        webhook="w",
    ).to_dict()


class _Store:
    topic = "state"

    def __init__(self) -> None:
        self.on_catch_up: Callable[[], None] = lambda: None
        self.catch_ups = 0

    def partition_for(self, key: str) -> int:
        return 1

    def record(self, key: str, value: dict[str, Any] | None) -> OutRecord:
        assert value is None
        return OutRecord("state", key.encode(), None, [], 1)

    async def catch_up(self, partitions: list[int], timeout_s: float = 30.0) -> None:
        self.catch_ups += 1
        self.on_catch_up()


#: Decides whether the broker refuses a record: (topic, value) -> the refusal, or None.
Refuse = Callable[[str, bytes | None], Exception | None]


class _Producer:
    """Records what each transaction sent; ``fail`` makes the next commits raise, ``refuse``
    fails the delivery of the records it picks."""

    def __init__(
        self, log: list[list[bytes]], fail: list[Exception], refuse: Refuse | None = None
    ) -> None:
        self._log = log
        self._fail = fail
        self._refuse = refuse or (lambda topic, value: None)
        self._open: list[bytes] | None = None
        self.aborted = 0
        self.sent: list[tuple[str, Any]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def begin_transaction(self) -> None:
        self._open = []

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        assert self._open is not None
        self.sent.append((topic, kw))
        self._open.append(kw["key"] if topic == "state" else topic.encode())
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        refusal = self._refuse(topic, kw["value"])
        if refusal is None:
            delivery.set_result(None)
        else:
            delivery.set_exception(refusal)
        return delivery

    async def commit_transaction(self) -> None:
        if self._fail:
            raise self._fail.pop(0)
        assert self._open is not None
        self._log.append(self._open)
        self._open = None

    async def abort_transaction(self) -> None:
        self.aborted += 1
        self._open = None


def _finisher(
    fail: list[Exception] | None = None, refuse: Refuse | None = None, **kw: Any
) -> tuple[Finisher, PendingRegistry, _Store, list[list[bytes]], list[_Producer]]:
    registry = PendingRegistry()
    store = _Store()
    committed: list[list[bytes]] = []
    producers: list[_Producer] = []
    failures = fail if fail is not None else []

    def factory(tid: str) -> Any:
        producer = _Producer(committed, failures, refuse)
        producers.append(producer)
        return producer

    settings = Settings(topic_dlq="dlq")
    kw.setdefault("dlq_max_bytes", 1_000_000)  # no broker to ask
    finisher = Finisher(
        ClayConfig.from_settings(settings),
        KafkaConnection.from_settings(settings),
        store,  # type: ignore[arg-type]
        registry,
        group_id=settings.group_id,
        factory=factory,
        **kw,
    )
    return finisher, registry, store, committed, producers


def _enriched(_: PendingLead) -> list[OutRecord]:
    return [OutRecord("enriched", b"k", b"v")]


async def test_duplicate_callbacks_at_the_same_moment_publish_once() -> None:
    """Two finishes of one lead in flight together: one transaction with one output and one
    tombstone; the second is told it was not pending."""
    finisher, registry, _, committed, _ = _finisher()
    registry.apply("L1/c1", _pending("L1"))
    first, second = await asyncio.gather(
        finisher.finish(Finish("L1", "c1", _enriched)),
        finisher.finish(Finish("L1", "c1", _enriched)),
    )
    await finisher.stop()
    assert sorted([first.published, second.published]) == [False, True]
    assert committed == [[b"enriched", b"clay/pending/L1/c1"]]
    assert registry.is_done("L1", "c1")


async def test_a_finished_lead_is_refused_at_once_without_waiting_for_the_tail() -> None:
    """After the commit the registry knows the lead is done: a later duplicate publishes
    nothing, though the tail never delivered the tombstone."""
    finisher, registry, _, committed, _ = _finisher()
    registry.apply("L1/c1", _pending("L1"))
    assert (await finisher.finish(Finish("L1", "c1", _enriched))).published
    again = await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert not again.published
    assert len(committed) == 1


async def test_a_finish_of_one_submission_does_not_touch_another_of_the_same_lead() -> None:
    """A callback or timeout for correlation c1 publishes nothing when only c2 is pending."""
    finisher, registry, _, committed, _ = _finisher()
    registry.apply("L1/c2", _pending("L1", "c2"))
    result = await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert not result.published
    assert committed == []
    assert registry.get("L1", "c2") is not None


async def test_fenced_by_another_instance_that_finished_the_lead_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our commit is fenced; re-fencing catches up and sees the other instance's tombstone:
    the retry decides the lead is done and commits nothing."""
    monkeypatch.setattr(finisher_module, "_BACKOFF_S", 0.0)
    finisher, registry, store, committed, producers = _finisher(fail=[ProducerFenced()])
    registry.apply("L1/c1", _pending("L1"))
    fenced_once = [False]

    def catch_up() -> None:
        if fenced_once[0]:
            registry.apply("L1/c1", None)  # what the other instance committed before fencing us
        fenced_once[0] = True

    store.on_catch_up = catch_up
    result = await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert not result.published
    assert committed == []
    assert producers[0].aborted == 1
    assert len(producers) == 2
    assert store.catch_ups == 2


async def test_a_fenced_commit_is_retried_with_a_new_producer_when_still_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a fencing error with the lead still pending, a new producer publishes it once."""
    monkeypatch.setattr(finisher_module, "_BACKOFF_S", 0.0)
    finisher, registry, _, committed, producers = _finisher(fail=[ProducerFenced()])
    registry.apply("L1/c1", _pending("L1"))
    result = await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert result.published
    assert committed == [[b"enriched", b"clay/pending/L1/c1"]]
    assert len(producers) == 2


@pytest.mark.parametrize(
    "failure",
    ["kafka_down", "contention_past_patience"],
)
async def test_when_kafka_does_not_take_it_the_lead_stays_pending_and_the_caller_is_told(
    failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt fails (Kafka down: MAX_ATTEMPTS; fenced by others: past
    CONTENTION_PATIENCE_S): the caller gets FinishUnavailable, the lead stays pending."""
    monkeypatch.setattr(finisher_module, "_BACKOFF_S", 0.0)
    monkeypatch.setattr(finisher_module, "_CONTENTION_BACKOFF_S", 0.0)
    failures: list[Exception]
    if failure == "kafka_down":
        failures = [KafkaConnectionError() for _ in range(finisher_module.MAX_ATTEMPTS)]
    else:
        monkeypatch.setattr(finisher_module, "CONTENTION_PATIENCE_S", 0.0)
        failures = [ProducerFenced(), ProducerFenced()]
    finisher, registry, _, committed, _ = _finisher(fail=failures)
    registry.apply("L1/c1", _pending("L1"))
    with pytest.raises(FinishUnavailable):
        await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert committed == []
    assert registry.get("L1", "c1") is not None


async def test_a_failing_build_fails_only_its_own_lead() -> None:
    """A bug building one lead's output fails that lead's request; the batch goes on."""
    finisher, registry, _, committed, _ = _finisher()
    registry.apply("L1/c1", _pending("L1"))
    registry.apply("L2/c1", _pending("L2"))

    def broken(_: PendingLead) -> list[OutRecord]:
        raise RuntimeError("bug")

    bad, good = await asyncio.gather(
        finisher.finish(Finish("L1", "c1", broken)),
        finisher.finish(Finish("L2", "c1", _enriched)),
        return_exceptions=True,
    )
    await finisher.stop()
    assert isinstance(bad, FinishUnavailable)
    assert not isinstance(good, BaseException) and good.published
    assert committed == [[b"enriched", b"clay/pending/L2/c1"]]


async def test_contention_outlasting_the_kafka_attempts_still_publishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two instances fencing each other in turns is contention, not failure: more fencings
    than MAX_ATTEMPTS in a row still end in one publication (CI saw a 503 here before)."""
    monkeypatch.setattr(finisher_module, "_CONTENTION_BACKOFF_S", 0.0)
    fencings = finisher_module.MAX_ATTEMPTS + 3
    finisher, registry, _, committed, producers = _finisher(
        fail=[ProducerFenced() for _ in range(fencings)]
    )
    registry.apply("L1/c1", _pending("L1"))
    result = await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert result.published
    assert committed == [[b"enriched", b"clay/pending/L1/c1"]]
    assert len(producers) == fencings + 1


def _too_large_for(limit: int, topic: str = "enriched") -> Refuse:
    """The broker of a topic whose max.message.bytes is ``limit``."""

    def refuse(to: str, value: bytes | None) -> Exception | None:
        return MessageSizeTooLargeError() if to == topic and len(value or b"") > limit else None

    return refuse


def _big(_: PendingLead) -> list[OutRecord]:
    return [OutRecord("enriched", b"L1", b"x" * 5_000)]


def _last_dlq(producers: list[_Producer]) -> dict[str, Any]:
    """The last DLQ record any producer sent, as send_all passed it."""
    sent = [kw for producer in producers for topic, kw in producer.sent if topic == "dlq"]
    return sent[-1]


async def test_an_output_the_broker_refuses_is_replaced_by_its_dlq_record() -> None:
    """The enriched record of L1 is refused as too large in a batch with L2: the batch is
    aborted and tried again one lead per transaction on a new producer; L1's transaction
    holds its DLQ record (output_too_large, original bytes, origin), L2's its own output."""
    finisher, registry, _, committed, producers = _finisher(refuse=_too_large_for(1_000))
    registry.apply("L1/c1", _pending("L1"))
    registry.apply("L2/c1", _pending("L2"))
    big, small = await asyncio.gather(
        finisher.finish(Finish("L1", "c1", _big)),
        finisher.finish(Finish("L2", "c1", _enriched)),
    )
    replaced = finisher.stats()["outputs_replaced"]
    await finisher.stop()
    assert committed == [[b"dlq", b"clay/pending/L1/c1"], [b"enriched", b"clay/pending/L2/c1"]]
    assert [producer.aborted for producer in producers] == [1, 1, 0]
    assert big.published and isinstance(big.replaced, OutputTooLarge)
    assert small.published and small.replaced is None
    dlq = _last_dlq(producers)
    headers = dict(dlq["headers"])
    assert dlq["value"] == b"{}"  # the original, not the refused output
    assert headers["streamproc.error.class"] == b"output_too_large"
    assert headers["streamproc.error.retriable"] == b"false"
    assert headers["streamproc.original.offset"] == b"1"
    assert replaced == 1
    assert registry.is_done("L1", "c1") and registry.is_done("L2", "c1")


async def test_a_refusal_that_is_not_about_size_is_output_refused() -> None:
    """An invalid timestamp refusal makes an output_refused DLQ record."""

    def refuse(topic: str, value: bytes | None) -> Exception | None:
        return InvalidTimestampError() if topic == "enriched" else None

    finisher, registry, _, committed, producers = _finisher(refuse=refuse)
    registry.apply("L1/c1", _pending("L1"))
    result = await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert isinstance(result.replaced, OutputRefused)
    assert committed == [[b"dlq", b"clay/pending/L1/c1"]]
    assert dict(_last_dlq(producers)["headers"])["streamproc.error.class"] == b"output_refused"


async def test_a_replacement_over_the_limit_keeps_the_start_of_the_original() -> None:
    """With a DLQ limit below the original's size, the DLQ value is its first bytes and the
    headers say it was cut and how large the original is."""
    finisher, registry, _, committed, producers = _finisher(
        refuse=_too_large_for(100), dlq_max_bytes=2_000
    )
    original = {**_pending("L1"), "value": base64.b64encode(b"y" * 4_000).decode()}
    registry.apply("L1/c1", original)
    result = await finisher.finish(Finish("L1", "c1", _big))
    await finisher.stop()
    assert isinstance(result.replaced, OutputTooLarge)
    assert committed == [[b"dlq", b"clay/pending/L1/c1"]]
    dlq = _last_dlq(producers)
    headers = dict(dlq["headers"])
    assert 0 < len(dlq["value"]) < 2_000 and b"y" * len(dlq["value"]) == dlq["value"]
    assert headers["streamproc.value.truncated"] == b"true"
    assert headers["streamproc.original.size"] == b"4000"


async def test_a_sequence_gap_seen_before_the_refusal_isolates_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit failing with OutOfOrderSequenceNumber (a refusal whose own answer was not
    seen) is retried one lead per transaction on a new producer."""
    monkeypatch.setattr(finisher_module, "_BACKOFF_S", 0.0)
    finisher, registry, _, committed, producers = _finisher(fail=[OutOfOrderSequenceNumber()])
    registry.apply("L1/c1", _pending("L1"))
    registry.apply("L2/c1", _pending("L2"))
    results = await asyncio.gather(
        finisher.finish(Finish("L1", "c1", _enriched)),
        finisher.finish(Finish("L2", "c1", _enriched)),
    )
    await finisher.stop()
    assert [r.published for r in results] == [True, True]
    assert committed == [
        [b"enriched", b"clay/pending/L1/c1"],
        [b"enriched", b"clay/pending/L2/c1"],
    ]
    assert len(producers) == 2


async def test_a_refused_dlq_record_is_retried_and_then_the_caller_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the DLQ topic refuses the replacement too, nothing is committed, the batch is
    retried as any Kafka failure, the caller hears FinishUnavailable, the lead stays pending."""
    monkeypatch.setattr(finisher_module, "_BACKOFF_S", 0.0)

    def refuse(topic: str, value: bytes | None) -> Exception | None:
        return MessageSizeTooLargeError() if topic in ("enriched", "dlq") else None

    finisher, registry, _, committed, producers = _finisher(refuse=refuse)
    registry.apply("L1/c1", _pending("L1"))
    with pytest.raises(FinishUnavailable):
        await finisher.finish(Finish("L1", "c1", _enriched))
    await finisher.stop()
    assert committed == []
    # One producer spent by the output's refusal, then one per failed attempt.
    assert len(producers) == 1 + finisher_module.MAX_ATTEMPTS
    assert registry.get("L1", "c1") is not None


async def test_two_submissions_of_one_lead_are_finished_each_once() -> None:
    """The same lead id pending twice (c1, c2): each finish publishes its own output with
    its own tombstone; a second finish of c1 publishes nothing."""
    finisher, registry, _, committed, _ = _finisher()
    registry.apply("L1/c1", _pending("L1", "c1"))
    registry.apply("L1/c2", _pending("L1", "c2"))
    first = await finisher.finish(Finish("L1", "c1", _enriched))
    again = await finisher.finish(Finish("L1", "c1", _enriched))
    second = await finisher.finish(Finish("L1", "c2", _enriched))
    await finisher.stop()
    assert (first.published, again.published, second.published) == (True, False, True)
    assert committed == [
        [b"enriched", b"clay/pending/L1/c1"],
        [b"enriched", b"clay/pending/L1/c2"],
    ]
