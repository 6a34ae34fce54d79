"""The declarative provider's status map, request charges and auth helpers, against the API
simulators over real HTTP (no Kafka)."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from streamproc.errors import NoMatch, ProviderAuthError
from streamproc.provider.api import Enrichment, LeadIn
from streamproc.provider.config import ProviderConfig
from streamproc.provider.declarative import DeclarativeProvider
from streamproc.settings import Settings
from streamproc.simulators.apis import ApiSimConfig, serve_api
from tests.integration.conftest import ROOT

EXAMPLES = ROOT / "examples" / "providers"


def _example(name: str, **changes: Any) -> Settings:
    table: dict[str, Any] = tomllib.loads((EXAMPLES / name).read_text())["streamproc"]
    declarative = {**table.pop("provider_declarative"), **changes}
    return Settings(**table, provider_declarative=declarative)


@asynccontextmanager
async def _started(settings: Settings) -> AsyncIterator[DeclarativeProvider]:
    provider = DeclarativeProvider(ProviderConfig.from_settings(settings, "declarative"))
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        stats: dict[str, Any] = (await client.get(f"{url}/stats")).json()
        return stats


def _lead(i: int, domain: str) -> LeadIn:
    return LeadIn(f"l{i}", {"email": f"pat{i}@{domain}", "domain": domain, "first_name": "Pat"})


async def test_a_people_data_labs_404_is_a_no_match_billed_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The company API's one-lead call answers 404 for a miss: the lead is a NoMatch (DLQ
    class no_match, not retriable), charged 0 as the x-call-credits-spent header says; a
    match is charged the header's 1."""
    async with serve_api(ApiSimConfig("company-bulk")) as url:
        monkeypatch.setenv("COMPANY_API_URL", url)
        monkeypatch.setenv("COMPANY_API_KEY", "test-key")
        async with _started(_example("company_bulk.toml")) as provider:
            (miss,) = await provider.call([_lead(1, "gone.nomatch.test")])
            (hit,) = await provider.call([_lead(2, "acme.example")])
        stats = await _stats(url)
    assert isinstance(miss, NoMatch)
    assert (miss.error_class.value, miss.retriable, miss.credits) == ("no_match", False, 0)
    assert not miss.counts_against_breaker and not miss.maybe_charged
    assert isinstance(hit, Enrichment) and hit.credits == 1
    assert stats["by_status"] == {"404": 1, "200": 1}
    assert stats["credits"] == 1


async def test_a_bulk_requests_header_charge_is_split_to_equal_the_apis_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk answer's x-call-credits-spent header is the request's charge, split across
    the leads matched: the charges add up to the API's own count, and the miss is free."""
    async with serve_api(ApiSimConfig("company-bulk")) as url:
        monkeypatch.setenv("COMPANY_API_URL", url)
        monkeypatch.setenv("COMPANY_API_KEY", "test-key")
        # credits_per_match 5 would be wrong: the header must win over it.
        settings = _example("company_bulk.toml", credits_per_match=5)
        leads = [_lead(i, "nothing.nomatch.test" if i == 3 else f"co{i}.example") for i in range(8)]
        async with _started(settings) as provider:
            answers = await provider.call(leads)
        stats = await _stats(url)
    assert isinstance(answers[3], NoMatch) and answers[3].credits == 0
    charged = [a.credits for a in answers if isinstance(a, Enrichment)]
    assert charged == [1] * 7
    assert sum(charged) == stats["credits"] == 7


async def test_an_apollo_bulk_answers_credits_consumed_is_split_across_its_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The person API's bulk answer says ``credits_consumed`` at its top: that total, split
    across the people matched, is what the leads are charged, and equals the API's count
    (credits_per_match 3, the wrong per-lead guess, is not used)."""
    async with serve_api(ApiSimConfig("person-match")) as url:
        monkeypatch.setenv("PERSON_API_URL", url)
        monkeypatch.setenv("PERSON_API_KEY", "test-key")
        settings = _example("person_match.toml", credits_per_match=3)
        leads = [_lead(i, "x.nomatch.test" if i in (2, 5) else f"co{i}.example") for i in range(10)]
        async with _started(settings) as provider:
            answers = await provider.call(leads)
        stats = await _stats(url)
    assert [type(a).__name__ for a in answers].count("NoMatch") == 2
    charged = sum(a.credits for a in answers if isinstance(a, Enrichment))
    assert charged == stats["credits"] == 8


def _oauth(url: str, **auth: Any) -> dict[str, Any]:
    return {
        "type": "oauth2_client_credentials",
        "token_url": f"{url}/oauth/token",
        "client_id": "${CLIENT_ID}",
        "client_secret": "${CLIENT_SECRET}",
        **auth,
    }


@pytest.mark.parametrize("client_auth", ["basic", "body"])
async def test_oauth2_client_credentials_one_token_for_every_call_and_a_new_one_after_a_401(
    monkeypatch: pytest.MonkeyPatch, client_auth: str
) -> None:
    """Against a simulator that takes only client-credentials tokens: 20 concurrent calls
    share one token fetched once; once the API revokes it, the call that meets the 401
    fails as an auth error and the next call fetches a fresh token and succeeds."""
    async with serve_api(ApiSimConfig("email-finder", auth="oauth2")) as url:
        monkeypatch.setenv("EMAIL_API_URL", url)
        monkeypatch.setenv("EMAIL_API_KEY", "unused")
        monkeypatch.setenv("CLIENT_ID", "test-client")
        monkeypatch.setenv("CLIENT_SECRET", "test-key")
        settings = _example("email_finder.toml", auth=_oauth(url, client_auth=client_auth))
        async with _started(settings) as provider:
            leads = [_lead(i, f"co{i}.example") for i in range(20)]
            answers = await asyncio.gather(*(provider.call([one]) for one in leads))
            assert all(isinstance(a, Enrichment) for (a,) in answers)
            assert (await _stats(url))["tokens_issued"] == 1
            async with httpx.AsyncClient() as client:
                await client.delete(f"{url}/oauth/tokens")
            with pytest.raises(ProviderAuthError):
                await provider.call([_lead(21, "co21.example")])
            (again,) = await provider.call([_lead(21, "co21.example")])
        stats = await _stats(url)
    assert isinstance(again, Enrichment)
    assert stats["tokens_issued"] == 2
    assert stats["by_status"]["401"] == 1


async def test_oauth2_refused_client_credentials_are_an_auth_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong client secret: the token endpoint's 401 is a ProviderAuthError (against the
    breaker, logged loudly), and the API is never called."""
    async with serve_api(ApiSimConfig("email-finder", auth="oauth2")) as url:
        monkeypatch.setenv("EMAIL_API_URL", url)
        monkeypatch.setenv("EMAIL_API_KEY", "unused")
        monkeypatch.setenv("CLIENT_ID", "test-client")
        monkeypatch.setenv("CLIENT_SECRET", "wrong")
        settings = _example("email_finder.toml", auth=_oauth(url))
        async with _started(settings) as provider:
            with pytest.raises(ProviderAuthError, match="token endpoint answered 401"):
                await provider.call([_lead(1, "co1.example")])
        stats = await _stats(url)
    assert stats["leads"] == 0 and stats["tokens_issued"] == 0


@pytest.mark.parametrize(("password", "works"), [("test-key", True), ("wrong", False)])
async def test_http_basic_auth(monkeypatch: pytest.MonkeyPatch, password: str, works: bool) -> None:
    """HTTP Basic from ``${ENV}`` values: the right pair is served, a wrong one is an auth
    error."""
    async with serve_api(ApiSimConfig("email-finder", auth="basic")) as url:
        monkeypatch.setenv("EMAIL_API_URL", url)
        monkeypatch.setenv("EMAIL_API_KEY", "unused")
        monkeypatch.setenv("API_PASSWORD", password)
        auth = {"type": "basic", "username": "test-client", "password": "${API_PASSWORD}"}
        async with _started(_example("email_finder.toml", auth=auth)) as provider:
            if works:
                (answer,) = await provider.call([_lead(1, "co1.example")])
                assert isinstance(answer, Enrichment) and answer.data["email"]
            else:
                with pytest.raises(ProviderAuthError):
                    await provider.call([_lead(1, "co1.example")])
