"""The example provider answers per lead: enriched with a charge, or rejected."""

import asyncio

from streamproc_example_provider import DomainProvider

from streamproc.provider.api import Enrichment, LeadIn, ProviderRejected
from streamproc.settings import Settings


def test_each_lead_is_enriched_or_rejected() -> None:
    """A lead with a domain is enriched for one credit; one without is rejected."""
    provider = DomainProvider(Settings())
    answers = asyncio.run(
        provider.call([LeadIn("a", {"domain": "acme.example"}), LeadIn("b", {"email": "x"})])
    )
    assert answers[0] == Enrichment({"company": "Acme"}, credits=1)
    assert isinstance(answers[1], ProviderRejected)
