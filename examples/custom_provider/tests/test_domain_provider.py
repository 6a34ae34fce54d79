"""The example provider answers per lead: enriched with a charge, or rejected."""

import asyncio

from streamproc_example_provider import DomainProvider

from streamproc.provider.api import Enrichment, LeadIn, ProviderConfig, ProviderRejected


def test_each_lead_is_enriched_or_rejected() -> None:
    """A lead with a domain is enriched for one credit; one without is rejected."""
    provider = DomainProvider(ProviderConfig(name="example-domain"))
    answers = asyncio.run(
        provider.call([LeadIn("a", {"domain": "acme.example"}), LeadIn("b", {"email": "x"})])
    )
    assert answers[0] == Enrichment({"company": "Acme"}, credits=1)
    assert isinstance(answers[1], ProviderRejected)


def test_its_own_table_sets_the_price() -> None:
    """``credits_per_domain`` in its options is what each enriched lead is charged."""
    config = ProviderConfig(name="example-domain", options={"credits_per_domain": 2})
    answers = asyncio.run(DomainProvider(config).call([LeadIn("a", {"domain": "acme.example"})]))
    assert answers == [Enrichment({"company": "Acme"}, credits=2)]
