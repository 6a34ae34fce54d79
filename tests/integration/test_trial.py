"""``streamproc try``: one lead through the configured provider, as a child process, against
the API simulators over real HTTP. No broker: the command must not need one."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streamproc.simulators.apis import ApiSimConfig, serve_api
from tests.integration.conftest import ROOT

#: A key that would stand out in any output that leaked it.
KEY = "sk-live-4f9a1c7e"
#: Nothing listens here: a command that tried Kafka would fail or hang, not pass.
NO_KAFKA = "127.0.0.1:1"


@dataclass(frozen=True)
class _Done:
    returncode: int
    stdout: str
    stderr: str


async def _try(env: dict[str, str], *args: str, stdin: bytes | None = None) -> _Done:
    """The command as a child, awaited: the simulator it calls runs on this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamproc", "try", *args,
        env=env, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout=120)
    assert proc.returncode is not None
    return _Done(proc.returncode, out.decode(), err.decode())


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    return env | {"STREAMPROC_BOOTSTRAP_SERVERS": NO_KAFKA, "PYTHONPATH": str(ROOT)} | extra


def _lead(domain: str) -> str:
    return orjson.dumps({"lead_id": "l1", "email": f"pat@{domain}", "domain": domain}).decode()


async def test_a_404_no_match_is_shown_step_by_step_and_would_go_to_the_dlq() -> None:
    """The company example, a lead the API does not know: the GET as sent (key masked), its
    404 and the header's charge of 0, classified no_match, not retriable, and the DLQ record
    it would be; the key appears nowhere in the output."""
    async with serve_api(ApiSimConfig("company-bulk", api_key=KEY)) as url:
        env = _env(COMPANY_API_URL=url, COMPANY_API_KEY=KEY)
        done = await _try(
            env, "--config", "examples/providers/company_bulk.toml", "--json",
            "--lead", _lead("gone.nomatch.test"),
        )  # fmt: skip
        text = await _try(
            env, "--config", "examples/providers/company_bulk.toml",
            stdin=_lead("gone.nomatch.test").encode(),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    trial: dict[str, Any] = orjson.loads(done.stdout)
    (step,) = trial["steps"]
    (exchange,) = step["exchanges"]
    assert exchange["method"] == "GET"
    assert exchange["url"] == f"{url}/v5/company/enrich?website=gone.nomatch.test"
    assert exchange["headers"]["x-api-key"] == "***"
    assert (exchange["status"], exchange["answer_headers"]["x-call-credits-spent"]) == (404, "0")
    assert (step["outcome"], step["retriable"], step["credits"]) == ("no_match", False, 0)
    assert trial["topic"] == "leads.dlq"
    assert trial["headers"]["streamproc.error.class"] == "no_match"
    assert text.returncode == 0 and "answer: no_match" in text.stdout
    assert "would publish to leads.dlq" in text.stdout
    for output in (done.stdout, done.stderr, text.stdout, text.stderr):
        assert KEY not in output


async def test_an_oauth2_api_shows_the_token_request_then_the_call_and_the_record(
    tmp_path: Path,
) -> None:
    """Against a simulator that takes only client-credentials tokens: the token request and
    the API call, both with credentials masked (neither the secret nor the token printed),
    then the enriched record with the credit charged."""
    async with serve_api(ApiSimConfig("email-finder", api_key=KEY, auth="oauth2")) as url:
        settings_file = (ROOT / "examples" / "providers" / "email_finder.toml").read_text()
        config = settings_file + (
            "\n[streamproc.provider_declarative.auth]\n"
            'type = "oauth2_client_credentials"\n'
            'token_url = "${EMAIL_API_URL}/oauth/token"\n'
            'client_id = "test-client"\n'
            'client_secret = "${EMAIL_CLIENT_SECRET}"\n'
        )
        env = _env(EMAIL_API_URL=url, EMAIL_API_KEY="unused", EMAIL_CLIENT_SECRET=KEY)
        path = tmp_path / "oauth2.toml"
        path.write_text(config)
        done = await _try(env, "--config", str(path), "--json", "--lead", _lead("acme.example"))
    assert done.returncode == 0, done.stderr
    trial = orjson.loads(done.stdout)
    (step,) = trial["steps"]
    token, call = step["exchanges"]
    assert (token["method"], token["url"], token["status"]) == ("POST", f"{url}/oauth/token", 200)
    assert token["headers"]["authorization"] == "Basic ***"
    assert call["headers"]["authorization"] == "Bearer ***"
    assert call["status"] == 200
    assert (step["outcome"], step["credits"]) == ("enriched", 1)
    assert trial["topic"] == "leads.enriched"
    assert trial["value"]["enrichment"]["email"] == "alex@acme.example"  # no first_name
    assert trial["value"]["enrichment_meta"]["credits"] == 1
    assert KEY not in done.stdout + done.stderr


async def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A declarative table without its url, and a lead without lead_id: each one clear line
    on stderr, exit code 2, nothing on stdout."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[streamproc]\nprovider = "declarative"\n[streamproc.provider_declarative]\nbody = {}\n'
    )
    bad_config = await _try(_env(), "--config", str(config), "--lead", _lead("acme.example"))
    bad_lead = await _try(_env(), "--config", str(config), "--lead", '{"email": "a@b.example"}')
    assert bad_config.returncode == 2 and bad_config.stdout == ""
    assert bad_config.stderr.splitlines() == [
        "streamproc: provider_declarative.url: Field required"
    ]
    assert bad_lead.returncode == 2
    assert len(bad_lead.stderr.splitlines()) == 1
    assert bad_lead.stderr.startswith("streamproc: --lead: not a lead streamproc would take")


async def test_the_http_provider_is_tried_with_its_key_masked() -> None:
    """The default `http` provider (the mock's contract): the POST with its Bearer key
    masked and its Idempotency-Key, the 200, the charge the answer states."""
    from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider

    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, api_key=KEY)) as url:
        env = _env(STREAMPROC_PROVIDER_URL=f"{url}/enrich", STREAMPROC_PROVIDER_API_KEY=KEY)
        done = await _try(env, "--json", "--lead", _lead("acme.example"))
    assert done.returncode == 0, done.stderr
    trial = orjson.loads(done.stdout)
    (step,) = trial["steps"]
    (exchange,) = step["exchanges"]
    assert (exchange["method"], exchange["status"]) == ("POST", 200)
    assert exchange["headers"]["authorization"] == "Bearer ***"
    assert len(exchange["headers"]["idempotency-key"]) == 64
    assert (step["outcome"], step["credits"]) == ("enriched", 6)
    assert trial["value"]["enrichment_meta"]["credits"] == 6
    assert KEY not in done.stdout + done.stderr


def _person(domain: str) -> str:
    lead = {"lead_id": "l1", "email": f"pat@{domain}", "domain": domain, "first_name": "Pat"}
    return orjson.dumps(lead).decode()


async def test_a_waterfall_is_tried_step_by_step_with_the_merged_record() -> None:
    """The e-mail waterfall example, an enterprise lead the finder does not know: finder
    asked first (configured order), its miss free and masked; people finds it for 1 credit;
    the record is the merged enrichment with each provider's step in enrichment_meta. A lead
    neither knows: both missed, the DLQ record as no_match. The key is printed nowhere."""
    finder_sim = ApiSimConfig("email-finder", api_key=KEY, misses=(".corp.test",))
    people_sim = ApiSimConfig("person-match", api_key=KEY)
    async with serve_api(finder_sim) as finder_url, serve_api(people_sim) as people_url:
        env = _env(
            EMAIL_API_URL=finder_url,
            EMAIL_API_KEY=KEY,
            PERSON_API_URL=people_url,
            PERSON_API_KEY=KEY,
        )
        config = ("--config", "examples/waterfall/email_waterfall.toml")
        found = await _try(env, *config, "--json", "--lead", _person("c2.corp.test"))
        nobody = await _try(env, *config, "--json", "--lead", _person("gone.nomatch.test"))
        shown = await _try(env, *config, "--lead", _person("c2.corp.test"))
    assert found.returncode == 0, found.stderr
    trial = orjson.loads(found.stdout)
    assert trial["segment"] == "enterprise"
    finder, people = trial["steps"]
    assert (finder["provider"], finder["waterfall"], finder["credits"]) == ("finder", "missed", 0)
    (asked,) = finder["exchanges"]
    assert (
        asked["url"].startswith(f"{finder_url}/v2/email-finder") and "api_key=***" in asked["url"]
    )
    assert (people["provider"], people["waterfall"], people["credits"]) == ("people", "found", 1)
    assert people["exchanges"][0]["headers"]["x-api-key"] == "***"
    assert trial["topic"] == "leads.enriched"
    assert trial["value"]["enrichment"]["email"] == "pat@c2.corp.test"
    meta = trial["value"]["enrichment_meta"]
    assert meta["credits"] == 1
    assert meta["providers"] == [
        {"provider": "finder", "outcome": "missed", "credits": 0},
        {"provider": "people", "outcome": "found", "credits": 1},
    ]
    assert nobody.returncode == 0, nobody.stderr
    dlq = orjson.loads(nobody.stdout)
    assert [s["waterfall"] for s in dlq["steps"]] == ["missed", "missed"]
    assert dlq["topic"] == "leads.dlq"
    assert dlq["headers"]["streamproc.error.class"] == "no_match"
    assert shown.returncode == 0, shown.stderr
    assert "waterfall: segment enterprise" in shown.stdout
    assert "step 2: provider people" in shown.stdout
    assert "waterfall total: 1 credits" in shown.stdout
    assert KEY not in found.stdout + nobody.stdout + shown.stdout + shown.stderr


async def test_a_waterfall_with_a_verifier_shows_its_verdict_as_a_step(tmp_path: Path) -> None:
    """The e-mail waterfall example with an e-mail verifier: the finder's address is asked
    about (the found value in the verifier's request), verified, and the verifier's step
    and credit are in the steps and the record's enrichment_meta."""
    config = tmp_path / "verified.toml"
    config.write_text(
        (ROOT / "examples" / "waterfall" / "email_waterfall.toml").read_text()
        + """
[streamproc.waterfall.verify]
provider = "verifier"
field = "email"
accept = "status == 'valid'"

[streamproc.providers.verifier]
type = "declarative"
method = "GET"
url = "${VERIFY_API_URL}/v2/email-verifier"
query = { email = "{{ email }}", api_key = "${VERIFY_API_KEY}" }
result = "data"
credits_per_match = 1
"""
    )
    async with (
        serve_api(ApiSimConfig("email-finder", api_key=KEY)) as finder_url,
        serve_api(ApiSimConfig("person-match", api_key=KEY)) as people_url,
        serve_api(ApiSimConfig("email-verifier", api_key=KEY)) as verifier_url,
    ):
        env = _env(
            EMAIL_API_URL=finder_url,
            EMAIL_API_KEY=KEY,
            PERSON_API_URL=people_url,
            PERSON_API_KEY=KEY,
            VERIFY_API_URL=verifier_url,
            VERIFY_API_KEY=KEY,
        )
        # The lead's own address differs from the one the finder finds: the verifier must be
        # asked about the found one.
        lead = {"lead_id": "l1", "email": "x@other.test", "domain": "s1.smb.test",
                "first_name": "Pat"}  # fmt: skip
        done = await _try(
            env, "--config", str(config), "--json", "--lead", orjson.dumps(lead).decode()
        )
    assert done.returncode == 0, done.stderr
    trial = orjson.loads(done.stdout)
    finder, verifier = trial["steps"]
    assert (finder["provider"], finder["waterfall"]) == ("finder", "found")
    assert (verifier["provider"], verifier["waterfall"], verifier["credits"]) == (
        "verifier", "verified", 1,
    )  # fmt: skip
    url = verifier["exchanges"][0]["url"].replace("%40", "@")
    assert "email=pat@s1.smb.test" in url, url
    assert trial["value"]["enrichment_meta"]["providers"][-1] == {
        "provider": "verifier", "outcome": "verified", "credits": 1,
    }  # fmt: skip
