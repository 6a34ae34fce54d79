"""An example streamproc provider: enriches a lead from its domain, 25 leads per call.

A real one would call an SDK or an API in ``call``; streamproc does the retries, the
breaker, the budget, the cache, the DLQ and exactly-once around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamproc.provider.api import Answer, Enrichment, LeadIn, ProviderRejected
from streamproc.settings import Settings

__all__ = ["DomainProvider"]


class DomainProvider:
    batch_size = 25
    #: Credits charged since the process started: what the "provider" would bill.
    charged = 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        answers: list[Answer] = []
        for one in leads:
            domain = one.lead.get("domain")
            if not domain:
                answers.append(ProviderRejected("no domain to enrich"))
                continue
            answers.append(Enrichment({"company": domain.split(".")[0].title()}, credits=1))
            DomainProvider.charged += 1
        return answers
