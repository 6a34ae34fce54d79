"""What the web console reads of the settings, taken once: :class:`ConsoleConfig`.

The console (on a processor's ops server or ``streamproc console``) gets this small frozen
object from the command layer, not the whole :class:`~streamproc.settings.Settings` (the
providers' keys and the Kafka password included): a reader sees what the page depends
on. The settings stay the one flat environment surface; each field is the setting of the
same name, whose description is its documentation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from streamproc.processing.spending_control import change_spending
from streamproc.replay.config import ReplayConfig
from streamproc.resilience.spending import SpendingAction
from streamproc.settings import Settings
from streamproc.state.group_state import GroupState
from streamproc.state.store import StateStore
from streamproc.state.view import StateView, watch_state, window_days

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
    the group, topics and Kafka connection in :attr:`replay`), and the few state
    operations the console starts, made from the settings the state view reads."""

    #: The DLQ page and its replays; also the group whose lag is shown, on ``topic_raw``.
    replay: ReplayConfig
    console_host: str
    console_port: int | None
    #: With no ``console_port``, the console shares the ops server's ``http_host``.
    http_port: int
    console_allowed_hosts: tuple[str, ...]
    console_token: SecretStr | None
    console_read_token: SecretStr | None
    #: The waterfall's ``adaptive.window_days``: the days its answer counts cover.
    window_days: int
    change_spending: SpendingChanger = field(repr=False, compare=False)
    #: A fresh reader of the group's state (``streamproc console``'s own view).
    state_reader: Callable[[], GroupState] = field(repr=False, compare=False)
    #: Restores the state topic into a view and tails it while inside.
    watch_state: Callable[[StateView], AbstractAsyncContextManager[StateStore]] = field(
        repr=False, compare=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleConfig:
        """The console's part of ``settings``."""
        return cls(
            replay=ReplayConfig.from_settings(settings),
            console_host=settings.console_host,
            console_port=settings.console_port,
            http_port=settings.http_port,
            console_allowed_hosts=settings.console_allowed_hosts,
            console_token=settings.console_token,
            console_read_token=settings.console_read_token,
            window_days=window_days(settings),
            change_spending=functools.partial(change_spending, settings),
            state_reader=functools.partial(GroupState.reader, settings),
            watch_state=functools.partial(watch_state, settings),
        )
