"""A guard stub for the handler's tests: no breaker, no budget, no cache."""

from __future__ import annotations

from typing import Any

from streamproc.errors import LeadError
from streamproc.processing.handler import Admission, CallResult
from streamproc.records.lead import Lead


class OpenGuard:
    """Admits every call and remembers nothing; subclass it to change one answer."""

    async def admit(self, lead: Lead, receipt: str | None = None) -> Admission:
        return Admission()

    def settle(
        self, admission: Admission, result: CallResult | None, error: LeadError | None
    ) -> None:
        return None

    def cancelled(self, admission: Admission) -> None:
        return None

    def fallback(self, lead: Lead, error: LeadError) -> dict[str, Any] | None:
        return None

    async def may_retry(self, admission: Admission, error: LeadError) -> bool:
        return True

    def hold_after(self, error: LeadError) -> bool:
        return False
