"""What the web console reads of the settings, taken once: :class:`ConsoleConfig`.

The console (on a processor's ops server or ``streamproc console``) gets this small frozen
object from the command layer, not the whole :class:`~streamproc.settings.Settings` (the
providers' keys and the Kafka password included): a reader sees what the page depends
on. The settings stay the one flat environment surface; each field is the setting of the
same name, whose description is its documentation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from streamproc.processing.spending_control import change_spending
from streamproc.replay.config import ReplayConfig
from streamproc.resilience.spending import SpendingAction
from streamproc.settings import Settings

__all__ = ["ConsoleConfig", "SpendingChanger"]


class SpendingChanger(Protocol):
    """Apply one change of the group's spending; the budget as it then stands
    (:func:`~streamproc.processing.spending_control.change_spending`)."""

    async def __call__(
        self, action: SpendingAction, *, by: str, why: str, limit: int | None = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """Where the console listens and whom it lets in, the DLQ it shows and replays (with
    the group, topics and Kafka connection in :attr:`replay`, the group's state in its
    :attr:`~streamproc.replay.config.ReplayConfig.state`), and the spending changes the
    console starts."""

    #: The DLQ page and its replays; also the group whose lag is shown, on ``topic_raw``.
    replay: ReplayConfig
    console_host: str
    console_port: int | None
    #: With no ``console_port``, the console shares the ops server's ``http_host``.
    http_port: int
    console_allowed_hosts: tuple[str, ...]
    console_token: SecretStr | None
    console_read_token: SecretStr | None
    change_spending: SpendingChanger = field(repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleConfig:
        """The console's part of ``settings``."""
        replay = ReplayConfig.from_settings(settings)
        return cls(
            replay=replay,
            console_host=settings.console_host,
            console_port=settings.console_port,
            http_port=settings.http_port,
            console_allowed_hosts=settings.console_allowed_hosts,
            console_token=settings.console_token,
            console_read_token=settings.console_read_token,
            change_spending=functools.partial(change_spending, replay.state),
        )

    @property
    def window_days(self) -> int:
        """The waterfall's ``adaptive.window_days``: the days its answer counts cover."""
        return self.replay.state.window_days
