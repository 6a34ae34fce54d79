"""What the DLQ commands read of the settings, taken once: :class:`ReplayConfig`.

``replay``, ``dlq show``, ``dlq stats`` (and the console's DLQ page, which uses them) get
this small frozen object from the command layer, not the whole
:class:`~streamproc.settings.Settings` (the providers' keys and the console's tokens
included): a reader sees what a replay depends on. The settings stay the one flat
environment surface; each field is the setting of the same name, whose description is
its documentation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings
from streamproc.state.group_state import GroupState
from streamproc.state.view import StateView, watch_state

__all__ = ["ReplayConfig", "StateOpener"]

#: Restores the group's state topic into a fresh reader view and tails it while inside:
#: what the safety check reads (breaker, budget). Opened per run, so each run reads under
#: an owner id of its own.
StateOpener = Callable[[], AbstractAsyncContextManager[StateView]]


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """The Kafka connection, the group and topics a replay reads and writes, the price it
    checks the budget against, and how to open the group's state for that check."""

    kafka: KafkaConnection
    #: The processor's group: the replayer's is ``<group_id>-replayer``.
    group_id: str
    topic_raw: str
    topic_parked: str
    topic_dlq: str
    credits_per_lead: int
    #: Where ``replay --metrics-port`` listens.
    http_host: str
    open_state: StateOpener = field(repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayConfig:
        """The DLQ commands' part of ``settings``."""

        # The state reader is built of the breaker, budget and cache settings, which are
        # the state view's to read, not the replayer's.
        @contextlib.asynccontextmanager
        async def open_state() -> AsyncIterator[StateView]:
            state = GroupState.reader(settings)
            async with watch_state(settings, state):
                yield state

        return cls(
            kafka=KafkaConnection.from_settings(settings),
            group_id=settings.group_id,
            topic_raw=settings.topic_raw,
            topic_parked=settings.topic_parked,
            topic_dlq=settings.topic_dlq,
            credits_per_lead=settings.credits_per_lead,
            http_host=settings.http_host,
            open_state=open_state,
        )
