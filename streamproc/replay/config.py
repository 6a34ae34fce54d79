"""What the DLQ commands read of the settings, taken once: :class:`ReplayConfig`.

``replay``, ``dlq show``, ``dlq stats`` (and the console's DLQ page, which uses them) get
this small frozen object from the command layer, not the whole
:class:`~streamproc.settings.Settings` (the providers' keys and the console's tokens
included): a reader sees what a replay depends on. The settings stay the one flat
environment surface; each field is the setting of the same name, whose description is
its documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings
from streamproc.state.config import StateConfig

__all__ = ["ReplayConfig"]


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """The Kafka connection, the group and topics a replay reads and writes, the price it
    checks the budget against, and the group's state it reads for that check."""

    kafka: KafkaConnection
    #: The processor's group: the replayer's is ``<group_id>-replayer``.
    group_id: str
    topic_raw: str
    topic_parked: str
    topic_dlq: str
    credits_per_lead: int
    #: Where ``replay --metrics-port`` listens.
    http_host: str
    #: What the safety check reads (breaker, budget): a fresh reader per run
    #: (:func:`~streamproc.state.view.read_state`), under an owner id of its own.
    state: StateConfig

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayConfig:
        """The DLQ commands' part of ``settings``."""
        return cls(
            kafka=KafkaConnection.from_settings(settings),
            group_id=settings.group_id,
            topic_raw=settings.topic_raw,
            topic_parked=settings.topic_parked,
            topic_dlq=settings.topic_dlq,
            credits_per_lead=settings.credits_per_lead,
            http_host=settings.http_host,
            state=StateConfig.from_settings(settings),
        )
