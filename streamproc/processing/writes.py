"""The guard's writes to the state topic: in the order issued, without waiting for them."""

from __future__ import annotations

import asyncio
from typing import Any

from streamproc.logs import get_logger
from streamproc.records.outcome import OutRecord
from streamproc.state.store import StateStore

__all__ = ["StateWrites"]

log = get_logger(__name__)


class StateWrites:
    """Appends to the state topic for the guard; nothing is written until :meth:`attach`.

    :meth:`write` does not wait, so budget and cache records go out at once, outside the
    lead's transaction; :meth:`drain` waits for every write issued so far (at shutdown).
    """

    def __init__(self) -> None:
        self._store: StateStore | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    def attach(self, store: StateStore) -> None:
        self._store = store

    @property
    def attached(self) -> bool:
        return self._store is not None

    def write(self, key: str, value: dict[str, Any] | None) -> None:
        """Append one record (``None``: a tombstone); dropped when no store is attached."""
        if self._store is None:
            return
        # StateStore.append fixes the record's place in the log at the call, so writes
        # land in the order issued here (the budget's settles and tombstones need that).
        task = asyncio.ensure_future(self._store.append(key, value))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def record(
        self, key: str, value: dict[str, Any] | None, *, beside: str | None = None
    ) -> OutRecord | None:
        """A state record to write in a lead's transaction, on the partition of ``beside``
        (default: its own key's); None when no store is attached."""
        store = self._store
        if store is None:
            return None
        record = store.record(key, value)
        if beside is None:
            return record
        # Built, not dataclasses.replace'd: this is once per lead (bench/).
        return OutRecord(record.topic, record.key, record.value, [], store.partition_for(beside))

    async def round_trip(self, key: str, value: dict[str, Any] | None) -> None:
        """Append one record and wait until this process has applied it from the topic."""
        if self._store is None:
            raise RuntimeError("no state store attached")
        partition, offset = await self._store.append(key, value)
        await self._store.wait_applied(partition, offset)

    async def drain(self) -> None:
        """Wait for the writes issued so far (a failed one is logged, not raised)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("state.write_failed", error=repr(task.exception()))
