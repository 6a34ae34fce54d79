"""The declarative HTTP provider: any JSON enrichment API, described in the settings file.

The ``[streamproc.provider_declarative]`` table (docs/provider.md, "Declarative HTTP";
examples in ``examples/providers/``) says how to ask and where to read the answer:

* the request: ``method``, ``url`` (``batch_method``, ``batch_url`` for the bulk
  endpoint), ``headers`` and ``query``, ``body`` (one lead), ``batch_body`` with
  ``"{{ leads }}"`` standing for the list of ``batch_item`` (default: ``body``), one per
  lead. In every template a string ``"{{ expr }}"`` is the value of the JMESPath ``expr``
  on the lead (its type kept), and ``{{ expr }}`` inside a longer string is its text;
  ``${NAME}`` is the environment variable ``NAME`` (secrets stay out of the file), read
  once at start-up. Every template sees the lead with its ``lead_id`` and its
  ``idempotency_key`` (:func:`~streamproc.provider.api.idempotency_key`: put it in
  ``batch_item`` where the API takes a key per item); a header that uses lead data is
  rendered on the lead of a one-lead call, and is the request's key in a bulk call
  (``DeclarativeProvider._header_values``);
* the answer (JMESPath): ``items``, the list of per-lead items of a bulk answer, in the
  order of the request unless ``item_id`` says which lead each item answers (the item's
  id, equal to the lead's ``lead_item_id``, by default its ``lead_id``:
  :mod:`.matching`), and ``single_item``, the item in a one-lead answer (default: the
  whole answer); in each item ``result`` (the data to publish), ``status`` and
  ``statuses`` (a status value → ``success``, ``no_match``, ``rejected``,
  ``rate_limited``, ``retriable``: how a partial failure is reported), and ``credits``
  (the lead's charge) or ``credits_per_match`` (a fixed charge per success); ``no_match``
  says whether a lead without a match is a :class:`~streamproc.errors.NoMatch` (``no_match``:
  the DLQ class ``no_match``, or the next provider of a waterfall), ``rejected`` (DLQ, as
  ``provider_rejected``) or published ``empty``;
* a request's charge as a whole: ``credits_header`` (a response header) or
  ``batch_credits`` (JMESPath on a bulk answer), split across its leads by
  :func:`~streamproc.provider.charges.split_total`;
* ``auth``: HTTP Basic or OAuth2 client credentials (:mod:`.auth`).

An HTTP status other than 2xx means what ``http_statuses`` says for every lead of the call
(a People Data Labs 404 is ``no_match``); one it does not list is classified for the whole
call as the contract's table says (429 with ``Retry-After``, 5xx, 401/403, 402, other 4xx).
One attempt per call; the pipeline retries (:mod:`streamproc.processing.calls`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
import jmespath
import orjson
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamproc import __version__, tracing
from streamproc.errors import (
    ConfigError,
    InvalidPayload,
    LeadError,
    NoMatch,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from streamproc.logs import get_logger
from streamproc.provider.api import (
    Answer,
    Enrichment,
    HeadersHook,
    LeadIn,
    batch_idempotency_key,
)
from streamproc.provider.auth import (
    AuthConfig,
    BasicAuthConfig,
    ClientCredentials,
    basic_authorization,
)
from streamproc.provider.charges import split_total
from streamproc.provider.classify import classify_response, parse_retry_after, whole_credits
from streamproc.provider.client import _network_transport, pool_limits
from streamproc.provider.config import ProviderConfig
from streamproc.provider.http_errors import request_errors
from streamproc.provider.matching import id_text, match_items
from streamproc.redact import ENV_REFERENCE

__all__ = ["DeclarativeConfig", "DeclarativeProvider"]

log = get_logger(__name__)

Status = Literal["success", "no_match", "rejected", "rate_limited", "retriable"]

_WHOLE = re.compile(r"^\{\{\s*(.+?)\s*\}\}$")
_PART = re.compile(r"\{\{\s*(.+?)\s*\}\}")
_ENV = ENV_REFERENCE  # redact.secret_values masks what it names in every log line
_LEADS = "leads"


class DeclarativeConfig(BaseModel):
    """The ``provider_declarative`` table, validated at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["GET", "POST", "PUT"] = "POST"
    url: str
    batch_url: str | None = None
    batch_method: Literal["GET", "POST", "PUT"] = "POST"
    batch_size: int = Field(1, ge=1, le=1_000)
    #: The API has only its bulk endpoint: a lead alone goes there too, as a batch of one.
    always_batch: bool = False
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}
    body: Any = None
    batch_body: Any = None
    batch_item: Any = None
    items: str | None = None
    #: Where each item of a bulk answer says which lead it answers (JMESPath on the item):
    #: items are matched by this id, not by position (``None``: by position).
    item_id: str | None = None
    #: The id a lead's item echoes at ``item_id`` (JMESPath on the lead, with its
    #: ``lead_id`` and ``idempotency_key``); the request must carry it (``batch_item``).
    lead_item_id: str = "lead_id"
    single_item: str = "@"
    result: str = "@"
    status: str | None = None
    statuses: dict[str, Status] = {}
    unlisted_status: Status = "rejected"
    #: What a non-2xx HTTP status means for every lead of the call (``"404" = "no_match"``);
    #: a status not listed is classified as the contract says (docs/provider.md).
    http_statuses: dict[str, Status] = {}
    #: ``no_match``: a :class:`~streamproc.errors.NoMatch` (DLQ class ``no_match``; in a
    #: waterfall, the next provider); ``rejected``: ``provider_rejected``, as before 0.x;
    #: ``empty``: published with an empty enrichment.
    no_match: Literal["no_match", "rejected", "empty"] = "no_match"
    credits: str | None = None
    credits_per_match: int | None = Field(None, ge=0)
    #: A response header with the whole request's charge (``x-call-credits-spent``).
    credits_header: str | None = None
    #: JMESPath, on a bulk answer, to the whole request's charge (``credits_consumed``).
    batch_credits: str | None = None
    auth: AuthConfig | None = None


def _compile(expr: str, where: str) -> ParsedResult:
    try:
        return jmespath.compile(expr)
    except jmespath.exceptions.JMESPathError as exc:
        raise ConfigError(
            f"provider_declarative.{where}: {expr!r} is not JMESPath ({exc})"
        ) from None


class _Template:
    """A JSON template compiled once: its ``{{ expr }}`` parts parsed, ``${ENV}`` read."""

    def __init__(self, template: Any, where: str) -> None:
        self._where = where
        self._tree = self._prepare(template)
        #: No ``{{ expr }}`` in it: the same for every lead.
        self.static = _static(self._tree)

    def _prepare(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {_env(k, self._where): self._prepare(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._prepare(v) for v in node]
        if isinstance(node, str):
            node = _env(node, self._where)
            whole = _WHOLE.match(node)
            if whole:
                name = whole.group(1)
                return ("leads",) if name == _LEADS else ("whole", _compile(name, self._where))
            parts = _PART.split(node)
            if len(parts) == 1:
                return node
            return (
                "text",
                [p if i % 2 == 0 else _compile(p, self._where) for i, p in enumerate(parts)],
            )
        return node

    def render(self, lead: Any, leads: list[Any] | None = None) -> Any:
        return _render(self._tree, lead, leads)


def _static(node: Any) -> bool:
    if isinstance(node, dict):
        return all(_static(v) for v in node.values())
    if isinstance(node, list):
        return all(_static(v) for v in node)
    return not isinstance(node, tuple)


def _render(node: Any, lead: Any, leads: list[Any] | None) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, lead, leads) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, lead, leads) for v in node]
    if isinstance(node, tuple):
        if node[0] == "leads":
            return leads
        if node[0] == "whole":
            return node[1].search(lead)
        return "".join(p if isinstance(p, str) else _text(p.search(lead)) for p in node[1])
    return node


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _env(text: str, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(
                f"provider_declarative.{where}: environment variable {name} is not set"
            )
        return found

    return _ENV.sub(value, text)


class DeclarativeProvider:
    """A :class:`~streamproc.provider.api.Provider` configured by ``provider_declarative``
    (its :class:`~streamproc.provider.config.ProviderConfig`'s ``options``).

    ``transport`` replaces the network (``streamproc try`` records each exchange with it)."""

    #: Its URLs are in its own table: ``provider_url`` is not asked for.
    needs_provider_url = False

    def __init__(
        self,
        provider: ProviderConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            config = DeclarativeConfig.model_validate(dict(provider.options))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"provider_declarative.{loc}: {err['msg']}") from None
        batched = config.batch_size > 1 or config.always_batch
        if batched and (config.batch_url is None or config.batch_body is None):
            raise ConfigError("provider_declarative: batch_size > 1 needs batch_url and batch_body")
        if batched and config.items is None:
            raise ConfigError("provider_declarative: batch_size > 1 needs items")
        if config.credits_header is not None and config.batch_credits is not None:
            raise ConfigError(
                "provider_declarative: credits_header and batch_credits both give the request's "
                "charge: keep one"
            )
        for code in config.http_statuses:
            if not (code.isdigit() and 300 <= int(code) <= 599):
                raise ConfigError(
                    f"provider_declarative.http_statuses: {code!r} is not a non-2xx HTTP status"
                )
        self.config = config
        self.batch_size = config.batch_size
        self._provider = provider
        self._url = _Template(config.url, "url")
        self._batch_url = _Template(config.batch_url or config.url, "batch_url")
        self._query = _Template(config.query, "query")
        self._body = _Template(config.body, "body")
        self._batch_body = _Template(config.batch_body, "batch_body")
        self._batch_item = _Template(
            config.batch_item if config.batch_item is not None else config.body, "batch_item"
        )
        self._headers = _Template(
            {"User-Agent": f"streamproc/{__version__}", **config.headers}, "headers"
        )
        self._items = None if config.items is None else _compile(config.items, "items")
        self._item_id = None if config.item_id is None else _compile(config.item_id, "item_id")
        self._lead_item_id = _compile(config.lead_item_id, "lead_item_id")
        self._single_item = _compile(config.single_item, "single_item")
        self._result = _compile(config.result, "result")
        self._status = None if config.status is None else _compile(config.status, "status")
        self._credits = None if config.credits is None else _compile(config.credits, "credits")
        self._batch_credits = (
            None
            if config.batch_credits is None
            else _compile(config.batch_credits, "batch_credits")
        )
        self._oauth: ClientCredentials | None = None
        self._authorization: str | None = None
        auth = config.auth
        if isinstance(auth, BasicAuthConfig):
            self._authorization = basic_authorization(
                _env(auth.username, "auth.username"), _env(auth.password, "auth.password")
            )
        elif auth is not None:
            auth = auth.model_copy(
                update={
                    name: _env(value, f"auth.{name}")
                    for name, value in auth.model_dump().items()
                    if isinstance(value, str)
                }
            )
            if problem := _url_problem(auth.token_url):
                raise ConfigError(f"provider_declarative.auth.token_url: {problem}")
            self._oauth = ClientCredentials(auth)
        self._transport = transport
        # What the config alone decides is checked once, here: a bad URL or header is the
        # config's mistake (one line at start-up), not every lead's.
        for where, template in (("url", self._url), ("batch_url", self._batch_url)):
            if template.static and (problem := _url_problem(template.render({}))):
                raise ConfigError(f"provider_declarative.{where}: {problem}")
        fixed = {k: v for k, v in self._headers._tree.items() if isinstance(v, str)}
        if problem := _headers_problem(fixed):
            raise ConfigError(f"provider_declarative.headers: {problem}")
        self._http: httpx.AsyncClient | None = None
        #: Told every answer's headers (the pipeline's pacer learns the API's quota).
        self.on_headers: HeadersHook | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport
                or _network_transport(
                    self._provider.http_transport, pool_limits(self._provider.max_in_flight)
                ),
                timeout=httpx.Timeout(self._provider.timeout_s),
                follow_redirects=False,
            )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def call(self, leads: Sequence[LeadIn]) -> list[Answer]:
        http = self._http
        if http is None:
            raise RuntimeError("DeclarativeProvider.start() must be awaited before call()")
        # A lead alone (a batch that did not fill) takes the single endpoint.
        bulk = len(leads) > 1 or self.config.always_batch
        # What is rendered from a lead's own data (URL, headers) is checked per lead: a lead
        # that would make an unsendable request (a CR/LF in its id, a bad URL) is answered
        # invalid_payload alone and left out of the request, so it neither fails the others
        # nor counts as a provider failure (docs/provider.md).
        refused: list[Answer | None] = []  # None: the lead is in the request
        sendable: list[LeadIn] = []
        ids: list[str] = []  # matched by id: what each lead of the request carries
        carried: set[str] = set()
        for one in leads:
            context = _context(one)
            problem = self._unsendable(context, bulk)
            ident = None
            if problem is None and bulk and self._item_id is not None:
                ident = id_text(self._lead_item_id.search(context))
                if ident is None:
                    problem = f"it has no {self.config.lead_item_id} to match its answer by"
                elif ident in carried:
                    # Two leads carrying one id could not be told apart in the answer: the
                    # second waits for the next attempt, in a request of its own.
                    refused.append(
                        ProviderError("another lead of the bulk request carries the same id")
                    )
                    continue
            if problem is None:
                sendable.append(one)
                refused.append(None)
                if ident is not None:
                    ids.append(ident)
                    carried.add(ident)
            else:
                refused.append(InvalidPayload(f"lead cannot be sent to the provider: {problem}"))
        results = iter(await self._request(http, sendable, bulk, ids) if sendable else ())
        return [next(results) if answer is None else answer for answer in refused]

    def _unsendable(self, lead: Mapping[str, Any], bulk: bool) -> str | None:
        """Why the request rendered from ``lead`` cannot go out, or None."""
        url = self._batch_url if bulk else self._url
        if not url.static and (problem := _url_problem(url.render(lead))):
            return problem
        if not bulk and not self._headers.static:
            return _headers_problem(_header_values(self._headers.render(lead)))
        return None

    async def _request(
        self, http: httpx.AsyncClient, leads: Sequence[LeadIn], bulk: bool, ids: list[str]
    ) -> list[Answer]:
        config = self.config
        first = _context(leads[0])
        if bulk:
            items_in = [self._batch_item.render(_context(one)) for one in leads]
            url = self._batch_url.render(first)
            body = self._batch_body.render(first, items_in)
            params = None
            method = config.batch_method
        else:
            url = self._url.render(first)
            body = self._body.render(first)
            query = self._query.render(first)
            params = {k: v for k, v in query.items() if v is not None} or None
            method = config.method
        auth: dict[str, str] = {}
        if self._oauth is not None:
            auth["Authorization"] = await self._oauth.authorization(http)
        elif self._authorization is not None:
            auth["Authorization"] = self._authorization
        with request_errors("provider"):
            response = await http.request(
                method,
                url,
                params=params,
                content=None if body is None or method == "GET" else orjson.dumps(body),
                headers={
                    **self._header_values(leads, first, bulk),
                    **auth,
                    **_JSON,
                    # Tracing: the call span's context (docs/tracing.md).
                    **(
                        {k.decode(): v.decode() for k, v in tracing.http_headers()}
                        if tracing.enabled
                        else {}
                    ),
                },
            )
        code = response.status_code
        if self.on_headers is not None:
            self.on_headers(response.headers)
        header_total = self._header_total(response.headers)
        if not 200 <= code <= 299:
            meaning = config.http_statuses.get(str(code))
            if meaning == "no_match":
                # The whole call found nothing (a People Data Labs 404): a miss per lead.
                if isinstance(header_total, LeadError):
                    return [header_total] * len(leads)
                shares = split_total(header_total or 0, [False] * len(leads))
                return [self._miss(share) for share in shares]
            if meaning is not None and meaning != "success":
                raise _call_failure(meaning, code, response.headers)
            if meaning is None:
                if code == 401 and self._oauth is not None:
                    self._oauth.refused()
                # Raises the class of the whole call's failure.
                classify_response(code, b"{}", response.headers, default_credits=0, now=time.time)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ProviderError("provider answered an unreadable body") from None
        total = header_total
        if bulk and self._batch_credits is not None:
            total = _total(self._batch_credits.search(answer))
        if not bulk:
            return self._settled([self._single_item.search(answer)], total)
        assert self._items is not None
        items = self._items.search(answer)
        if self._item_id is not None and isinstance(items, list):
            return self._matched(items, ids, total)
        if not isinstance(items, list) or len(items) != len(leads):
            raise ProviderError(
                f"provider's bulk answer has no list of {len(leads)} items at {config.items!r}"
            )
        return self._settled(items, total)

    def _header_total(self, headers: httpx.Headers) -> int | LeadError | None:
        """The request's charge from ``credits_header``: None when not configured or not
        sent (the per-lead rules apply), a failure when it is not a number."""
        name = self.config.credits_header
        if name is None:
            return None
        value = headers.get(name)
        if value is None:
            return None
        try:
            number: float | None = float(value)
        except ValueError:
            number = None
        return _total(number)

    def _settled(self, items: Sequence[Any | None], total: int | LeadError | None) -> list[Answer]:
        """The answer of each item (``_NO_ITEM``: the lead has none), the request's ``total``
        (when the API gave one) split across them (:func:`split_total`)."""
        if isinstance(total, LeadError):
            return [total] * len(items)
        verdicts = [None if item is _NO_ITEM else self._verdict(item) for item in items]
        shares: list[int | None] = [None] * len(items)
        if total is not None:
            matched = [v is not None and v[0] == "success" for v in verdicts]
            shares = list(split_total(total, matched))
        answers: list[Answer] = []
        for item, verdict, share in zip(items, verdicts, shares, strict=True):
            if verdict is None:
                answers.append(
                    ProviderError(
                        "provider's bulk answer has no item for this lead", maybe_charged=True
                    )
                )
            else:
                answers.append(self._answer(item, *verdict, share))
        return answers

    def _matched(
        self, items: list[Any], ids: list[str], total: int | LeadError | None = None
    ) -> list[Answer]:
        """Each lead's answer from the item that echoes its id. A lead without one item
        (dropped, or answered twice) fails alone, retriable and counted as possibly billed
        (the provider may have charged it; its idempotency key is the same on the retry); an
        item no lead sent is given to nobody."""
        assert self._item_id is not None
        echoed = [id_text(self._item_id.search(item)) for item in items]
        matched = match_items(ids, echoed, items)
        if matched.missing or matched.ambiguous or matched.unknown:
            # Counts only: an id may be an e-mail, and the log is no place for lead data.
            log.warning(
                "provider.bulk_unmatched",
                leads=len(ids),
                items=len(items),
                missing=len(matched.missing),
                ambiguous=len(matched.ambiguous),
                unknown=matched.unknown,
            )
        # By id, None is a lead no item answered (a null item echoes no id).
        answers = self._settled([_NO_ITEM if i is None else i for i in matched.items], total)
        for index in matched.ambiguous:
            answers[index] = ProviderError(
                "provider's bulk answer has several items for this lead", maybe_charged=True
            )
        return answers

    def _header_values(
        self, leads: Sequence[LeadIn], first: Mapping[str, Any], bulk: bool
    ) -> dict[str, str]:
        """The request's headers. A one-lead call renders them on its lead
        (``{{ idempotency_key }}`` is its Idempotency-Key). In a bulk call a header that
        uses lead data carries the request's key instead
        (:func:`~streamproc.provider.api.batch_idempotency_key`): the same leads give the
        same key, whatever their order, and any other set another one, so a retry of a
        different subset is never taken for the first request (docs/provider.md)."""
        if not bulk or self._headers.static:
            return _header_values(self._headers.render(first))
        key = batch_idempotency_key(one.idempotency_key for one in leads)
        return {
            name: value if isinstance(value, str) else key
            for name, value in self._headers._tree.items()
        }

    def _verdict(self, item: Any) -> tuple[Status, Any]:
        """An item's status and result."""
        config = self.config
        data = self._result.search(item)
        if self._status is None:
            return ("success" if data is not None else "no_match"), data
        value = self._status.search(item)
        return config.statuses.get(_key(value), config.unlisted_status), data

    def _answer(self, item: Any, status: Status, data: Any, share: int | None) -> Answer:
        """The lead's answer; ``share`` is its part of the request's charge, when the API
        gave one (it wins over the per-item rules)."""
        if status == "success":
            if not isinstance(data, dict):
                return ProviderError("provider's result is not a JSON object")
            credits = self._charge(item) if share is None else share
            if isinstance(credits, LeadError):
                return credits
            return Enrichment(data, credits)
        if status == "no_match":
            return self._miss(share or 0)
        if status == "rate_limited":
            return RateLimited("provider rate-limited this lead")
        if status == "retriable":
            return ProviderError("provider failed this lead")
        return ProviderRejected("provider rejected this lead")

    def _miss(self, credits: int) -> Answer:
        """A lead the provider found nothing for, billed ``credits`` (0 unless the API bills
        misses), as ``no_match`` says."""
        how = self.config.no_match
        if how == "empty":
            return Enrichment({}, credits)
        if how == "rejected":
            return ProviderRejected("provider found no match", maybe_charged=credits > 0)
        return NoMatch("provider found no match", credits=credits)

    def _charge(self, item: Any) -> int | LeadError:
        if self._credits is not None:
            charged = whole_credits(self._credits.search(item))
            if charged is None:
                return ProviderError("provider's charge is not a number")
            return charged
        if self.config.credits_per_match is not None:
            return self.config.credits_per_match
        return self._provider.credits_per_lead


_JSON = {"Content-Type": "application/json"}
#: A lead of a bulk request that no item of the answer answered (dropped, ambiguous).
_NO_ITEM = object()


def _total(value: Any) -> int | LeadError | None:
    """A request's whole charge: None when the answer has none, a failure when it is not a
    number (possibly billed: counted at the estimate)."""
    if value is None:
        return None
    charged = whole_credits(value)
    if charged is None:
        return ProviderError("provider's charge is not a number", maybe_charged=True)
    return charged


def _call_failure(meaning: Status, code: int, headers: httpx.Headers) -> LeadError:
    """The failure of a whole call whose HTTP status ``http_statuses`` maps."""
    if meaning == "rate_limited":
        retry = headers.get("retry-after")
        return RateLimited(
            f"provider answered {code}",
            retry_after_s=None if retry is None else parse_retry_after(retry, time.time),
        )
    if meaning == "retriable":
        return ProviderError(f"provider answered {code}")
    return ProviderRejected(f"provider answered {code}")


#: A header value both transports send (RFC 9110 field-value, ASCII: httpx encodes header
#: values as ASCII, h11 refuses edge whitespace, aiohttp control characters).
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?")


def _headers_problem(headers: Mapping[str, str]) -> str | None:
    for name, value in headers.items():
        if not _FIELD_VALUE.fullmatch(value):
            return f"header {name} is not a valid HTTP header value (control or non-ASCII)"
    return None


def _url_problem(url: Any) -> str | None:
    if not isinstance(url, str):
        return "the URL is not text"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "not a valid URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "not an absolute http(s) URL"
    return None


def _header_values(headers: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else _text(v) for k, v in headers.items()}


def _key(value: Any) -> str:
    """A status value as the ``statuses`` table's keys spell it (TOML keys are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _context(one: LeadIn) -> Mapping[str, Any]:
    """The lead as the templates see it: its ``lead_id`` (the lead's own when it has one)
    and its ``idempotency_key`` (always streamproc's)."""
    lead = one.lead
    if "lead_id" in lead:
        return {**lead, "idempotency_key": one.idempotency_key}
    return {**lead, "lead_id": one.lead_id, "idempotency_key": one.idempotency_key}
