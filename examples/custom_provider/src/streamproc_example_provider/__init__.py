"""An example streamproc provider: enriches a lead from its domain, 25 leads per call.

A real one would call an SDK or an API in ``call``; streamproc does the retries, the
breaker, the budget, the cache, the DLQ and exactly-once around it. It is given its own
configuration only (:class:`~streamproc.provider.api.ProviderConfig`): its table
``[streamproc.provider_options]`` as ``options``, its URL and key, the timeout and the
retry policy; never the Kafka or Clay secrets of the settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamproc.provider.api import Answer, Enrichment, LeadIn, ProviderConfig, ProviderRejected

__all__ = ["DomainProvider"]


class DomainProvider:
    batch_size = 25
    #: Credits charged since the process started: what the "provider" would bill.
    charged = 0

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        #: ``credits_per_domain = 2`` in ``[streamproc.provider_options]`` changes the price.
        self.credits = int(config.options.get("credits_per_domain", 1))

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        answers: list[Answer] = []
        for one in leads:
            domain = one.lead.get("domain")
            if not domain:
                answers.append(ProviderRejected("no domain to enrich"))
                continue
            answers.append(Enrichment({"company": domain.split(".")[0].title()}, self.credits))
            DomainProvider.charged += self.credits
        return answers
