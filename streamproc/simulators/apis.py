"""Simulators of three real enrichment APIs, answering as their public documentation says,
for the declarative provider's examples (``examples/providers/``), tests and the benchmark.

* ``person-match``: a person-match API in the style of Apollo's People Enrichment:
  ``POST /api/v1/people/match`` (one person, ``{"person": {...} | null}``) and
  ``POST /api/v1/people/bulk_match`` (``{"details": [...]}``, at most 10; answers
  ``{"status": "success", "matches": [person | null, ...], "credits_consumed": n}``), key in
  ``x-api-key``; one credit per person matched.
* ``company-bulk``: a company enrichment API in the style of People Data Labs' Company
  Enrichment: ``GET /v5/company/enrich?website=...`` (``{"status": 200, ...}``, or 404 when
  no company matches) and ``POST /v5/company/enrich/bulk`` (``{"requests": [{"params":
  {...}}]}``, at most 100; a list of per-request objects, each with its own ``status``:
  200 or 404), key in ``X-Api-Key``; one credit per 200 only, and every answer says what
  it cost in its ``x-call-credits-spent`` header (0 for a 404), as People Data Labs' do.
* ``email-finder``: an e-mail finder in the style of Hunter's: ``GET /v2/email-finder?
  domain=...&first_name=...&last_name=...&api_key=...`` answers ``{"data": {"email": ... |
  null, "score": n}}``; billed only when an e-mail is found.
* ``email-verifier``: an e-mail verifier in the style of Hunter's: ``GET /v2/email-verifier?
  email=...&api_key=...`` answers ``{"data": {"status": "valid" | "invalid", "result":
  "deliverable" | "undeliverable", "score": n, "email": ...}}``; billed for every
  verification, whatever its status. An address whose domain ends with one of ``misses``
  (or ``.nomatch.test``) is ``invalid``.

Authentication (``auth``): ``key`` (each API's own key, above); ``oauth2``: OAuth2 client
credentials, ``POST /oauth/token`` (``grant_type=client_credentials``, the client's id and
secret, ``client_id`` and ``api_key``, in HTTP Basic or the form) answers an access token
that lives ``token_ttl_s``, and every API request must carry ``Authorization: Bearer
<token>`` (401 otherwise; ``DELETE /oauth/tokens`` revokes every token, for tests);
``basic``: ``Authorization: Basic`` of ``client_id:api_key``.

Scenarios by the lead's domain: ``*.nomatch.test`` matches nothing; ``*.ratelimit.test``
makes the first request that carries it a 429 with ``Retry-After: 0`` (the whole request,
as these APIs rate-limit by key); ``*.dropped.test`` is billed but left out of the first
bulk answer that carries it. ``reorder`` answers bulk items in reverse order (the company
API echoes each request's ``metadata`` in its item, as People Data Labs documents, so its
items can be matched by it). ``honour_idempotency`` answers a request whose
``Idempotency-Key`` was answered before with that answer again, billing nothing. ``GET
/stats`` gives requests, leads, credits, the statuses answered, and the charges per person
or company (``billed_twice``: how many were charged more than once). Run one with
``streamproc mock-provider --mode person-match`` (or ``company-bulk``, ``email-finder``,
``email-verifier``).
``misses`` adds domain suffixes one simulator finds nothing for (two simulators then find
different shares of the leads); ``POST /outage?status=503`` makes every API request answer
that status until ``DELETE /outage``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from streamproc.logs import get_logger
from streamproc.signals import until_signalled
from streamproc.simulators.provider import serve_app

__all__ = ["API_KINDS", "ApiKind", "ApiSimConfig", "api_stats", "build_api", "serve_api"]

ApiKind = Literal["person-match", "company-bulk", "email-finder", "email-verifier"]
API_KINDS: tuple[ApiKind, ...] = (
    "person-match", "company-bulk", "email-finder", "email-verifier",
)  # fmt: skip

PERSON_BULK_MAX = 10
#: What People Data Labs' answers say they cost (their response header).
CREDITS_HEADER = "x-call-credits-spent"
COMPANY_BULK_MAX = 100


@dataclass(frozen=True, slots=True)
class ApiSimConfig:
    kind: ApiKind
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = "test-key"
    #: Latency of every request, bulk or not: what a call costs on the wire.
    latency_ms: float = 0.0
    #: Bulk answers in reverse order of the request.
    reorder: bool = False
    #: A repeated ``Idempotency-Key`` gets its first (successful) answer, billed once.
    honour_idempotency: bool = False
    #: ``key``: the API's own key; ``oauth2``: a client-credentials token; ``basic``.
    auth: Literal["key", "oauth2", "basic"] = "key"
    client_id: str = "test-client"
    #: Lifetime of an OAuth2 access token.
    token_ttl_s: float = 3_600.0
    #: Domain suffixes this API matches nothing for, beside ``.nomatch.test``: two
    #: simulators with different ones find different shares of the leads (a waterfall's).
    misses: tuple[str, ...] = ()


@dataclass(slots=True)
class ApiStats:
    requests: int = 0
    leads: int = 0
    credits: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    limited: set[str] = field(default_factory=set)
    #: Domains already left out of a bulk answer (``*.dropped.test``: once each).
    dropped: set[str] = field(default_factory=set)
    #: Charges per person (e-mail) or company (website), whatever request carried them.
    charged: Counter[str] = field(default_factory=Counter)
    #: Successful answers per ``Idempotency-Key`` header (``honour_idempotency``).
    answered: dict[str, bytes] = field(default_factory=dict)
    replayed: int = 0
    #: OAuth2 access tokens issued, and each one's expiry (monotonic seconds).
    tokens: dict[str, float] = field(default_factory=dict)
    tokens_issued: int = 0
    #: Set by ``POST /outage?status=503``: every API request answers it (an outage).
    outage: int | None = None

    #: When each person or company was first charged (this process's monotonic clock).
    first_charged_at: dict[str, float] = field(default_factory=dict)

    def charge(self, who: str) -> None:
        self.credits += 1
        self.charged[who] += 1
        self.first_charged_at.setdefault(who, time.monotonic())

    @property
    def billed_twice(self) -> int:
        """How many people or companies were charged more than once."""
        return sum(1 for count in self.charged.values() if count > 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "leads": self.leads,
            "credits": self.credits,
            "by_status": dict(self.by_status),
            "billed_twice": self.billed_twice,
            # Who was charged more than once, and when first (monotonic seconds).
            "twice_first_at": {
                who: self.first_charged_at[who] for who, count in self.charged.items() if count > 1
            },
            "replayed": self.replayed,
            "tokens_issued": self.tokens_issued,
        }


_CONFIG = web.AppKey("config", ApiSimConfig)
_STATS = web.AppKey("stats", ApiStats)


def api_stats(app: web.Application) -> ApiStats:
    return app[_STATS]


def build_api(config: ApiSimConfig) -> web.Application:
    app = web.Application()
    app[_CONFIG] = config
    app[_STATS] = ApiStats()
    if config.kind == "person-match":
        app.router.add_post("/api/v1/people/match", _person_one)
        app.router.add_post("/api/v1/people/bulk_match", _person_bulk)
    elif config.kind == "company-bulk":
        app.router.add_get("/v5/company/enrich", _company_one)
        app.router.add_post("/v5/company/enrich/bulk", _company_bulk)
    elif config.kind == "email-verifier":
        app.router.add_get("/v2/email-verifier", _email_verifier)
    else:
        app.router.add_get("/v2/email-finder", _email_finder)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/outage", _outage)
    app.router.add_delete("/outage", _outage)
    if config.auth == "oauth2":
        app.router.add_post("/oauth/token", _token)
        app.router.add_delete("/oauth/tokens", _revoke)
    return app


@asynccontextmanager
async def serve_api(config: ApiSimConfig) -> AsyncIterator[str]:
    """Serve the simulator while the block runs; yields its base URL."""
    async with serve_app(build_api(config), config.host, config.port) as url:
        yield url


def run_api(config: ApiSimConfig) -> None:
    """Serve until SIGINT or SIGTERM (for the CLI)."""

    async def serve() -> None:
        async with serve_api(config) as url:
            get_logger(__name__).info("api simulator listening", kind=config.kind, url=url)
            await until_signalled()

    asyncio.run(serve())


# --- shared -----------------------------------------------------------------------------------


def _json(status: int, payload: Any, stats: ApiStats, **headers: str) -> web.Response:
    stats.by_status[str(status)] += 1
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


async def _enter(request: web.Request, key: str | None, domains: list[str]) -> web.Response | None:
    """Latency, key check and the rate-limit scenario: an error answer, or None to go on."""
    config, stats = request.app[_CONFIG], request.app[_STATS]
    stats.requests += 1
    if config.latency_ms:
        await asyncio.sleep(config.latency_ms / 1000)
    if stats.outage is not None:
        return _json(stats.outage, {"error": "service unavailable"}, stats)
    if not _authorized(request, key):
        return _json(401, {"error": "invalid api key"}, stats)
    idempotency_key = request.headers.get("Idempotency-Key")
    if config.honour_idempotency and idempotency_key in stats.answered:
        stats.replayed += 1
        body = stats.answered[idempotency_key]
        stats.by_status["200"] += 1
        return web.Response(status=200, body=body, content_type="application/json")
    fresh = [d for d in domains if d.endswith(".ratelimit.test") and d not in stats.limited]
    if fresh:
        stats.limited.update(fresh)
        return _json(429, {"error": "rate limit exceeded"}, stats, **{"Retry-After": "0"})
    return None


def _authorized(request: web.Request, key: str | None) -> bool:
    config, stats = request.app[_CONFIG], request.app[_STATS]
    given = request.headers.get("Authorization", "")
    if config.auth == "key":
        return key == config.api_key
    if config.auth == "basic":
        return given == _basic(config.client_id, config.api_key)
    scheme, _, token = given.partition(" ")
    expires = stats.tokens.get(token)
    return scheme.lower() == "bearer" and expires is not None and time.monotonic() < expires


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _token(request: web.Request) -> web.Response:
    """RFC 6749 4.4: client credentials, the client authenticated by Basic or the form."""
    config, stats = request.app[_CONFIG], request.app[_STATS]
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _json(400, {"error": "unsupported_grant_type"}, stats)
    by_header = request.headers.get("Authorization") == _basic(config.client_id, config.api_key)
    by_form = (
        form.get("client_id") == config.client_id and form.get("client_secret") == config.api_key
    )
    if not (by_header or by_form):
        return _json(401, {"error": "invalid_client"}, stats)
    token = secrets.token_urlsafe(24)
    stats.tokens[token] = time.monotonic() + config.token_ttl_s
    stats.tokens_issued += 1
    payload = {"access_token": token, "token_type": "Bearer", "expires_in": config.token_ttl_s}
    return _json(200, payload, stats)


async def _revoke(request: web.Request) -> web.Response:
    request.app[_STATS].tokens.clear()
    return web.Response(status=204)


def _matches(domain: str | None, misses: tuple[str, ...] = ()) -> bool:
    return bool(domain) and not str(domain).endswith((".nomatch.test", *misses))


async def _outage(request: web.Request) -> web.Response:
    """``POST /outage?status=503``: every API request answers that status from now on;
    ``DELETE /outage``: the API is back."""
    stats = request.app[_STATS]
    stats.outage = int(request.query.get("status", "503")) if request.method == "POST" else None
    return web.Response(status=204)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _domain(lead: dict[str, Any]) -> str | None:
    domain = lead.get("domain")
    if isinstance(domain, str) and domain:
        return domain.lower()
    email = lead.get("email")
    if isinstance(email, str) and "@" in email:
        return email.rsplit("@", 1)[1].lower()
    return None


def _answered(request: web.Request, payload: Any) -> web.Response:
    """A 200 answer, kept for its ``Idempotency-Key`` when the simulator honours keys."""
    config, stats = request.app[_CONFIG], request.app[_STATS]
    response = _json(200, payload, stats)
    key = request.headers.get("Idempotency-Key")
    if config.honour_idempotency and key:
        stats.answered[key] = orjson.dumps(payload)
    return response


def _bulk_items(request: web.Request, items: list[Any], domains: list[str]) -> list[Any]:
    """The items of a bulk answer as sent: each ``*.dropped.test`` domain left out the
    first time, and reversed with ``reorder``."""
    config, stats = request.app[_CONFIG], request.app[_STATS]
    kept = []
    for item, domain in zip(items, domains, strict=True):
        if domain.endswith(".dropped.test") and domain not in stats.dropped:
            stats.dropped.add(domain)
            continue
        kept.append(item)
    if config.reorder:
        kept.reverse()
    return kept


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_STATS].to_json())


# --- person match (Apollo style) ----------------------------------------------------------------


def _person(detail: dict[str, Any], misses: tuple[str, ...]) -> dict[str, Any] | None:
    domain = _domain(detail)
    if not _matches(domain, misses):
        return None
    email = detail.get("email") or f"someone@{domain}"
    n = _digest(str(email))
    return {
        "id": f"{n:08x}",
        "email": email,
        "title": ("CTO", "Head of Sales", "Engineer", "CFO")[n % 4],
        "organization": {"primary_domain": domain, "estimated_num_employees": 10 + n % 5000},
    }


async def _person_one(request: web.Request) -> web.Response:
    stats = request.app[_STATS]
    detail = await _body(request)
    if not isinstance(detail, dict):
        return _json(422, {"error": "invalid body"}, stats)
    refused = await _enter(request, request.headers.get("x-api-key"), [_domain(detail) or ""])
    if refused is not None:
        return refused
    stats.leads += 1
    person = _person(detail, request.app[_CONFIG].misses)
    if person is not None:
        stats.charge(str(person["email"]))
    return _answered(request, {"person": person})


async def _person_bulk(request: web.Request) -> web.Response:
    stats = request.app[_STATS]
    body = await _body(request)
    details = body.get("details") if isinstance(body, dict) else None
    if not isinstance(details, list) or not all(isinstance(d, dict) for d in details):
        return _json(422, {"error": "details must be a list of objects"}, stats)
    if len(details) > PERSON_BULK_MAX:
        return _json(422, {"error": f"at most {PERSON_BULK_MAX} details per request"}, stats)
    domains = [_domain(d) or "" for d in details]
    refused = await _enter(request, request.headers.get("x-api-key"), domains)
    if refused is not None:
        return refused
    matches = [_person(d, request.app[_CONFIG].misses) for d in details]
    found = sum(m is not None for m in matches)
    stats.leads += len(details)
    for match in matches:
        if match is not None:
            stats.charge(str(match["email"]))
    return _answered(
        request,
        {
            "status": "success",
            "total_requested_enrichments": len(details),
            "unique_enriched_records": found,
            "missing_records": len(details) - found,
            "credits_consumed": found,
            "matches": _bulk_items(request, matches, domains),
        },
    )


# --- company enrichment (People Data Labs style) -------------------------------------------------


def _company_domain(website: str | None) -> str:
    return (website or "").lower().removeprefix("https://").removeprefix("www.")


def _company(website: str | None, misses: tuple[str, ...]) -> dict[str, Any]:
    domain = _company_domain(website)
    if not _matches(domain, misses):
        return {"status": 404, "error": {"type": "not_found", "message": "No records were found"}}
    n = _digest(domain)
    return {
        "status": 200,
        "likelihood": 5 + n % 6,
        "name": domain.split(".")[0],
        "website": domain,
        "industry": ("software", "retail", "healthcare")[n % 3],
        "employee_count": 5 + n % 10_000,
    }


async def _company_one(request: web.Request) -> web.Response:
    stats = request.app[_STATS]
    website = request.query.get("website")
    refused = await _enter(request, request.headers.get("X-Api-Key"), [website or ""])
    if refused is not None:
        return refused
    stats.leads += 1
    answer = _company(website, request.app[_CONFIG].misses)
    if answer["status"] == 200:
        stats.charge(str(answer["website"]))
        response = _answered(request, answer)
        response.headers[CREDITS_HEADER] = "1"
        return response
    # A miss is a 404 of the whole call, free (People Data Labs' single enrichment).
    return _json(int(answer["status"]), answer, stats, **{CREDITS_HEADER: "0"})


async def _company_bulk(request: web.Request) -> web.Response:
    stats = request.app[_STATS]
    body = await _body(request)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not all(
        isinstance(r, dict) and isinstance(r.get("params"), dict) for r in requests
    ):
        return _json(400, {"error": {"message": "requests must be a list of {params}"}}, stats)
    if len(requests) > COMPANY_BULK_MAX:
        return _json(400, {"error": {"message": f"at most {COMPANY_BULK_MAX} requests"}}, stats)
    sites = [str(r["params"].get("website") or "") for r in requests]
    refused = await _enter(request, request.headers.get("X-Api-Key"), sites)
    if refused is not None:
        return refused
    answers = [_company(site, request.app[_CONFIG].misses) for site in sites]
    stats.leads += len(answers)
    for answer, one in zip(answers, requests, strict=True):
        if answer["status"] == 200:
            stats.charge(str(answer["website"]))
        if "metadata" in one:  # echoed, as People Data Labs does
            answer["metadata"] = one["metadata"]
    domains = [_company_domain(site) for site in sites]
    response = _answered(request, _bulk_items(request, answers, domains))
    response.headers[CREDITS_HEADER] = str(sum(a["status"] == 200 for a in answers))
    return response


# --- e-mail finder (Hunter style) ---------------------------------------------------------------


async def _email_finder(request: web.Request) -> web.Response:
    stats = request.app[_STATS]
    domain = request.query.get("domain")
    if not domain:
        return _json(400, {"errors": [{"id": "wrong_params", "code": 400}]}, stats)
    refused = await _enter(request, request.query.get("api_key"), [domain])
    if refused is not None:
        return refused
    stats.leads += 1
    first = request.query.get("first_name") or "alex"
    email = f"{first.lower()}@{domain}" if _matches(domain, request.app[_CONFIG].misses) else None
    if email is not None:
        stats.charge(email)
    data = {"email": email, "score": 0 if email is None else 60 + _digest(domain) % 40}
    return _json(
        200, {"data": {**data, "domain": domain}, "meta": {"params": dict(request.query)}}, stats
    )


# --- e-mail verifier (Hunter style) -------------------------------------------------------------


async def _email_verifier(request: web.Request) -> web.Response:
    stats = request.app[_STATS]
    email = request.query.get("email") or ""
    _, at, domain = email.rpartition("@")
    if not at or not domain:
        return _json(400, {"errors": [{"id": "wrong_params", "code": 400}]}, stats)
    refused = await _enter(request, request.query.get("api_key"), [domain])
    if refused is not None:
        return refused
    stats.leads += 1
    # Hunter bills a verification whatever it says of the address.
    stats.charge(email)
    valid = _matches(domain, request.app[_CONFIG].misses)
    data = {
        "status": "valid" if valid else "invalid",
        "result": "deliverable" if valid else "undeliverable",
        "score": 90 + _digest(email) % 10 if valid else _digest(email) % 20,
        "email": email,
    }
    return _json(200, {"data": data, "meta": {"params": {"email": email}}}, stats)
