"""Kafka client construction: one place that turns a :class:`KafkaConnection` (the
settings a client reads) into aiokafka arguments.

Every consumer we build reads ``read_committed`` with auto-commit off (aiokafka's defaults,
``read_uncommitted`` and auto-commit on, would break exactly-once), and values are raw
bytes: decoding happens in our code, because a deserializer that raises inside aiokafka
makes it re-read the same record forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    GroupAuthorizationFailedError,
    InvalidProducerEpoch,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    ProducerFenced,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.helpers import create_ssl_context

from streamproc.errors import ConfigError, KafkaAuthorizationError, KafkaSetupError
from streamproc.kafka import closed_connection
from streamproc.kafka.config import KafkaConnection
from streamproc.kafka.oauth import token_provider
from streamproc.records.outcome import OutRecord
from streamproc.settings import SaslMechanism, SecurityProtocol

# Every client of ours is made here: a write to a dead socket must fail as aiokafka expects.
closed_connection.install()

__all__ = [
    "Refusal",
    "admin_client",
    "assign_from_committed",
    "connection_kwargs",
    "consumer",
    "delivery_reported_by_commit",
    "max_request_bytes",
    "partitions_of",
    "send_all",
    "start_client",
    "stop_quietly",
    "transaction",
    "transactional_producer",
]


def _ssl_context(connection: KafkaConnection) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(connection.ssl_cafile) if connection.ssl_cafile else None,
            certfile=str(connection.ssl_certfile) if connection.ssl_certfile else None,
            keyfile=str(connection.ssl_keyfile) if connection.ssl_keyfile else None,
            password=connection.ssl_key_password.get_secret_value()
            if connection.ssl_key_password
            else None,
        )
        return context
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"ssl settings: cannot load the CA/certificate/key ({exc.__class__.__name__}: "
            f"{getattr(exc, 'strerror', None) or exc.args[-1]}); check STREAMPROC_SSL_*"
        ) from None


def connection_kwargs(connection: KafkaConnection) -> dict[str, Any]:
    """Bootstrap and security arguments shared by every client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "security_protocol": connection.security_protocol.value,
    }
    if connection.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        kwargs["ssl_context"] = _ssl_context(connection)
    mechanism = connection.sasl_in_use
    if mechanism in (SaslMechanism.OAUTHBEARER, SaslMechanism.AWS_MSK_IAM):
        # MSK's IAM tokens travel as OAUTHBEARER too (AWS's signer docs).
        kwargs["sasl_mechanism"] = "OAUTHBEARER"
        kwargs["sasl_oauth_token_provider"] = token_provider(connection)
    elif mechanism is not None:
        assert connection.sasl_password is not None  # checked by the settings model
        kwargs["sasl_mechanism"] = mechanism.value
        kwargs["sasl_plain_username"] = connection.sasl_username
        kwargs["sasl_plain_password"] = connection.sasl_password.get_secret_value()
    return kwargs


def consumer(
    connection: KafkaConnection, *topics: str, group_id: str | None, **extra: Any
) -> AIOKafkaConsumer:
    """A read-committed consumer without auto-commit; ``extra`` adds or overrides options.

    A group's rebalance timeout (how long the coordinator waits for every member to rejoin)
    is its ``max_poll_interval_ms``, as in the Java client: aiokafka's default is the session
    timeout (10 s), shorter than a revocation may take (``revoke_grace_s``), so a member
    still revoking was evicted, and took the partitions back from the other one in turn.
    """
    if group_id is not None and "rebalance_timeout_ms" not in extra:
        extra["rebalance_timeout_ms"] = extra.get(
            "max_poll_interval_ms", connection.max_poll_interval_ms
        )
    kwargs: dict[str, Any] = {
        **connection_kwargs(connection),
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "key_deserializer": None,
        "value_deserializer": None,
        **extra,
    }
    assert kwargs["isolation_level"] == "read_committed"
    assert not kwargs["enable_auto_commit"]
    return AIOKafkaConsumer(*topics, **kwargs)


#: aiokafka's default batch size per partition.
_DEFAULT_BATCH_BYTES = 16_384


def max_request_bytes(connection: KafkaConnection) -> int:
    """The producer's ``max_request_size``: room for an enriched lead of the largest size."""
    return max(connection.max_lead_bytes * 2, 1_048_576)


def transactional_producer(
    connection: KafkaConnection, transactional_id: str, *, max_batch_bytes: int | None = None
) -> AIOKafkaProducer:
    """``max_batch_bytes``: the smallest ``max.message.bytes`` of the topics it writes.
    The broker checks a whole batch against the limit, so a batch of small records that
    together exceed it would be refused with no record at fault."""
    batch = _DEFAULT_BATCH_BYTES if max_batch_bytes is None else max_batch_bytes
    return AIOKafkaProducer(
        **connection_kwargs(connection),
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        transaction_timeout_ms=connection.transaction_timeout_ms,
        linger_ms=5,
        max_request_size=max_request_bytes(connection),
        max_batch_size=max(min(batch, _DEFAULT_BATCH_BYTES), 1024),
    )


def admin_client(connection: KafkaConnection) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_kwargs(connection))


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """A topic's partitions, sorted; empty when it does not exist.

    A topic created a moment ago may need a few metadata rounds. ``consumer.topics()``
    returns a fresh cluster view but does not keep it, so the client is asked directly.
    """
    for _ in range(20):
        cluster = await consumer._client.fetch_all_metadata()
        partitions: set[int] | None = cluster.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await asyncio.sleep(0.25)
    return []


async def assign_from_committed(
    consumer: AIOKafkaConsumer, topic: str, *, from_start: bool = False
) -> dict[TopicPartition, tuple[int, int]]:
    """Assign every partition of ``topic`` and seek each to the consumer group's committed
    offset (``from_start``: to the first record); returns ``(start, end)`` offsets per
    partition. Below the log start retention already deleted the records: start at the
    first one. ``KafkaSetupError`` when the topic does not exist."""
    partitions = await partitions_of(consumer, topic)
    if not partitions:
        raise KafkaSetupError(f"topic {topic} does not exist: run `streamproc topics create`")
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    beginnings = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        committed = None if from_start else await consumer.committed(tp)
        start = max(committed or 0, beginnings[tp])
        consumer.seek(tp, start)
        ranges[tp] = (start, ends[tp])
    return ranges


async def start_client(
    connection: KafkaConnection, client: AIOKafkaConsumer | AIOKafkaProducer | AIOKafkaAdminClient
) -> None:
    """Start an aiokafka client, or stop it and raise :class:`KafkaSetupError` in one line.

    The one translation of "cannot reach Kafka" for every command. The bootstrap is
    bounded by ``kafka_connect_timeout_s``: a server that accepts the connection and never
    answers would otherwise hold it for the request timeout (40 s). The rest of the start
    is not: a transactional producer's initialisation waits until the coordinator has
    aborted the transaction a previous owner left open, which is the point of it. A
    client left unstopped is reported by asyncio as unclosed at exit, so a failed one is
    stopped.
    """
    # aiokafka's network client; a second bootstrap inside start() reuses its state.
    network = getattr(client, "client", None) or client._client
    try:
        with _bootstrap_errors_unlogged():
            await asyncio.wait_for(network.bootstrap(), timeout=connection.connect_timeout_s)
            await client.start()
    except asyncio.CancelledError:
        await _close(client)
        raise
    except _AUTHORIZATION_REFUSALS as exc:
        await _close(client)
        raise KafkaAuthorizationError(_refusal_line(client, exc)) from None
    except (TimeoutError, KafkaError, OSError) as exc:
        await _close(client)
        reason = (
            f"no answer within {connection.connect_timeout_s:g} s "
            "(STREAMPROC_KAFKA_CONNECT_TIMEOUT_S)"
            if isinstance(exc, TimeoutError)
            else exc.__class__.__name__
        )
        # The wording of kafka.preflight, which every command runs first.
        raise KafkaSetupError(
            f"cannot reach Kafka at {connection.bootstrap_servers} ({reason}): is the broker "
            "up, and STREAMPROC_BOOTSTRAP_SERVERS right?"
        ) from None


#: What the broker answers when an ACL is missing (the preflight catches most of these
#: first; this is for what it cannot see, such as Describe granted where Read is needed).
_AUTHORIZATION_REFUSALS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    ClusterAuthorizationFailedError,
)


def _refusal_line(
    client: AIOKafkaConsumer | AIOKafkaProducer | AIOKafkaAdminClient, exc: BaseException
) -> str:
    what = {
        TopicAuthorizationFailedError: "a topic",
        GroupAuthorizationFailedError: "the consumer group",
        TransactionalIdAuthorizationFailed: "the transactional id",
        ClusterAuthorizationFailedError: "the cluster",
    }.get(type(exc), "a resource")
    txn = getattr(getattr(client, "_txn_manager", None), "transactional_id", None)
    if isinstance(exc, TransactionalIdAuthorizationFailed) and txn:
        what = f"transactional id {txn!r} (needs Write)"
    group = getattr(client, "_group_id", None)
    if isinstance(exc, GroupAuthorizationFailedError) and group:
        what = f"group {group!r} (needs Read)"
    return (
        f"Kafka refused access to {what} ({type(exc).__name__}): an ACL is missing; "
        "docs/security.md lists the ACLs of each command"
    )


class _BootstrapErrorFilter(logging.Filter):
    """Drops aiokafka's own "Unable connect to" line: the failure is reported in ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable connect to")


@contextlib.contextmanager
def _bootstrap_errors_unlogged() -> Iterator[None]:
    logger = logging.getLogger("aiokafka.client")
    quiet = _BootstrapErrorFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


async def _close(client: AIOKafkaConsumer | AIOKafkaProducer | AIOKafkaAdminClient) -> None:
    if isinstance(client, AIOKafkaAdminClient):
        with contextlib.suppress(Exception):
            await client.close()
    else:
        await stop_quietly(client)


#: How long stopping a client may take. aiokafka's stop first flushes what the producer
#: holds, and waits for ever when its requests can never end (see closed_connection.py).
STOP_TIMEOUT_S = 10.0


async def stop_quietly(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Stop an aiokafka client during shutdown, never raising its errors, within
    ``STOP_TIMEOUT_S`` (then its sender is cancelled and its connections closed unflushed:
    a transactional producer's unflushed records were never committed).

    Its close may re-raise a CancelledError of its own background tasks: that one is
    swallowed unless our own task is the one being cancelled.
    """
    _forget_failed_transaction(client)
    try:
        await asyncio.wait_for(client.stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        logging.getLogger(__name__).warning(
            "kafka client stop took over %s s: closed without flushing", STOP_TIMEOUT_S
        )
        await _close_unflushed(client)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        logging.getLogger(__name__).debug("kafka client stop failed: %r", exc)


async def _close_unflushed(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    sender_task = getattr(getattr(client, "_sender", None), "sender_task", None)
    if sender_task is not None:
        sender_task.cancel()
    connections = getattr(client, "_client", None) or getattr(client, "client", None)
    if connections is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connections.close(), STOP_TIMEOUT_S)


def delivery_reported_by_commit(delivery: asyncio.Future[Any]) -> None:
    """Mark a transactional send's delivery future as handled.

    :func:`send_all` reads every delivery's result, but not when it is cut short (a send
    that raises, a cancelled commit): when a producer is fenced the futures left behind all
    fail, and asyncio would print "Future exception was never retrieved" once per record at
    garbage collection: noise that hides real errors.
    """
    delivery.add_done_callback(_retrieve)


def _retrieve(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled():
        delivery.exception()


#: Broker answers that refuse one record and leave the producer usable: sent again
#: unchanged, the record fails the same way, so it must go elsewhere (the DLQ). Anything
#: else (fencing, a lost connection, an authorization refusal for the whole topic) is the
#: producer's or the deployment's failure, not the record's, and is raised.
_RECORD_REFUSALS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,  # over max.message.bytes or the producer's max_request_size
    RecordListTooLargeError,
    InvalidTimestampError,  # outside message.timestamp.*.max.ms
    PolicyViolationError,
    CorruptRecordException,  # the broker validated the record and refused it
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One record the producer or the broker would not write: its index and the reason."""

    index: int
    error: BaseException

    @property
    def too_large(self) -> bool:
        return isinstance(self.error, MessageSizeTooLargeError | RecordListTooLargeError)


async def send_all(
    producer: AIOKafkaProducer, records: Sequence[OutRecord], *, one_at_a_time: bool = False
) -> list[Refusal]:
    """Send records inside the producer's open transaction and wait for each one's answer.

    aiokafka commits a transaction even when a batch in it failed, so a commit alone does
    not prove that a record was written: every delivery is awaited before the caller
    commits. Returns the records refused for themselves (see ``_RECORD_REFUSALS``; a
    record with neither key nor value counts as one), in order; the caller must then abort
    and send something else in their place, with a new producer (after a refused batch an
    idempotent producer's sequence numbers are out of step: its next sends fail). Raises any
    other failure.

    The broker refuses whole batches, so when several records were refused together the
    culprit is not known; ``one_at_a_time`` sends each record in a batch of its own and
    stops at the first refusal, which is then the record's own.
    """
    deliveries: list[tuple[int, asyncio.Future[Any]]] = []
    refused: list[Refusal] = []
    for index, out in enumerate(records):
        if out.key is None and out.value is None:
            refused.append(Refusal(index, ValueError("a record needs a key or a value")))
            if one_at_a_time:
                break
            continue
        try:
            delivery = await producer.send(
                out.topic,
                value=out.value,
                key=out.key,
                headers=out.headers or None,
                partition=out.partition,
                timestamp_ms=out.timestamp_ms,
            )
        except _RECORD_REFUSALS as exc:  # over max_request_size: refused before sending
            refused.append(Refusal(index, exc))
            if one_at_a_time:
                break
            continue
        delivery_reported_by_commit(delivery)
        deliveries.append((index, delivery))
        if one_at_a_time:
            await asyncio.wait([delivery])
            if delivery.cancelled() or delivery.exception() is not None:
                break
    if deliveries:
        await asyncio.wait([delivery for _, delivery in deliveries])
    failures: list[BaseException] = []
    for index, delivery in deliveries:
        error = delivery.exception() if not delivery.cancelled() else asyncio.CancelledError()
        if error is None:
            continue
        if isinstance(error, _RECORD_REFUSALS):
            refused.append(Refusal(index, error))
        else:
            failures.append(error)
    # Once a batch is refused, the producer's later batches fail out of sequence: those
    # failures follow from the refusal and are not reported. A fence never follows from a
    # refusal: another producer owns the partition now, and the caller must stand down
    # rather than replace its producer (which would fence the new owner back).
    for error in failures:
        if isinstance(error, ProducerFenced | InvalidProducerEpoch):
            raise error
    if failures and not refused:
        raise failures[0]
    refused.sort(key=lambda refusal: refusal.index)
    return refused


@contextlib.asynccontextmanager
async def transaction(producer: AIOKafkaProducer) -> AsyncIterator[None]:
    """One Kafka transaction: begun on entry, committed when the block ends, aborted (at
    most 5 s, never raising) when it raises.

    The error raised is the one that broke the producer, when one did. aiokafka's
    background sender can die of a fencing error (another producer took our transactional
    id over) between two transactions or in the middle of one; the producer is then in a
    fatal state, and the next ``begin_transaction`` or ``send`` fails with a bare
    ``AssertionError`` or ``IllegalOperation`` about the state instead. Callers handle the
    real cause (``ProducerFenced`` and the like: a ``KafkaError``).
    """
    await _raise_sender_failure(producer)
    await producer.begin_transaction()
    try:
        yield
        await producer.commit_transaction()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.abort_transaction(), timeout=5)
        broken = _sender_failure(producer)
        if broken is not None and broken is not exc:
            raise broken.with_traceback(None) from exc
        raise
    except BaseException:  # cancelled: abort what is open, stay cancelled
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.abort_transaction(), timeout=5)
        raise


def _sender_failure(producer: AIOKafkaProducer) -> BaseException | None:
    # No public way to ask (aiokafka 0.14); without the internals, assume it is healthy.
    sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if sender_task is None or not sender_task.done() or sender_task.cancelled():
        return None
    failure: BaseException | None = sender_task.exception()
    return failure


async def _raise_sender_failure(producer: AIOKafkaProducer) -> None:
    broken = _sender_failure(producer)
    if broken is not None:
        # The same exception object each time: drop the traceback it gathered last time.
        raise broken.with_traceback(None)


def _forget_failed_transaction(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Retrieve the failures a fenced transactional producer leaves in futures nobody awaits.

    aiokafka 0.14 fails its "transaction end" waiter (replacing the one the caller saw) and
    the drain waiter of every pending batch; asyncio logs each one as "Future exception was
    never retrieved" at garbage collection: ERROR lines on every rebalance that fences a
    producer. On CPython 3.11.7 that logging, run by the collector in the middle of an
    ``ast.parse`` elsewhere, can even surface as "SystemError: AST constructor recursion depth
    mismatch" (CPython gh-106905). The failure itself was reported to the caller already.
    """
    waiters: list[Any] = []
    txn_manager = getattr(client, "_txn_manager", None)
    if txn_manager is not None:
        waiters.append(txn_manager.wait_for_transaction_end())
    accumulator = getattr(client, "_message_accumulator", None)
    batches = list(getattr(accumulator, "_pending_batches", ()))
    for queue in getattr(accumulator, "_batches", {}).values():
        batches.extend(queue)
    waiters.extend(getattr(batch, "_drain_waiter", None) for batch in batches)
    for waiter in waiters:
        if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
            waiter.exception()
    _forget_orphaned_requests(client)


def _forget_orphaned_requests(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """A producer's sender that died of a fencing leaves its produce requests running, and
    no one awaits them: one that was waiting to send its batch again ends in aiokafka's
    own ``KeyError`` (the fencing failed the batch meanwhile), logged as "Task exception was
    never retrieved" (seen once in test_transaction.py's fenced producer)."""
    sender = getattr(client, "_sender", None)
    sender_task = getattr(sender, "sender_task", None)
    if sender_task is None or not sender_task.done():
        return
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if (
            frame is not None
            and frame.f_code.co_name == "_send_produce_req"
            and frame.f_locals.get("self") is sender
        ):
            task.add_done_callback(_retrieve)
