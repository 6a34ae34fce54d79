"""What may be printed of the settings: secrets, and the secret parts of URLs, masked.

Three kinds of secret hide in the settings:

* ``SecretStr`` fields (API key, passwords, the callback secret): masked whole;
* URLs that carry a credential: the userinfo (``https://user:pass@host``) and the values of
  token-like query or fragment parameters (``?api_key=``, ``&sig=``, ``#access_token=``);
* URLs that *are* a credential: whoever knows a Clay table webhook's URL can add rows to
  the table, so its path is masked and only the scheme and host are shown, with the
  webhook's id (the hash that metrics and logs use) to tell several apart;
* the environment variables the declarative provider's table names as ``${NAME}``
  (docs/provider.md): they hold its API key, which may travel in a URL's query;
* credentials written literally into that table (or into ``provider_options``, an
  installed provider's own table): a value under a secret-looking name
  anywhere in it (a header ``X-Api-Key`` or ``Authorization: Bearer sk-...``, a query
  parameter ``api_key``, a body field ``password``; :func:`is_secret_param` decides), and
  the credentials of its URLs. A value that only refers to one (``${NAME}``, or
  ``{{ expr }}`` on the lead) holds no literal and stays readable.

:func:`printable_settings` is what ``config show`` prints; :func:`secret_values` lists the
strings that must never reach a log line, for :func:`streamproc.logs.configure_logging`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from pydantic import AnyHttpUrl, SecretStr

from streamproc.settings import Settings

__all__ = [
    "ENV_REFERENCE",
    "MASK",
    "is_secret_param",
    "mask_url",
    "printable_settings",
    "secret_values",
    "webhook_id",
]

MASK = "**********"

#: ``${NAME}`` in the declarative provider's table: the environment variable ``NAME``.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def webhook_id(url: str) -> str:
    """A short, stable, non-secret id for a webhook URL (keys, metric labels, logs)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


#: URL settings whose path is itself the credential.
_SECRET_PATH_FIELDS = frozenset({"clay_webhook_urls"})

#: Words that make a query parameter a credential when they are a whole part of its name
#: (``api_key``, ``X-Amz-Signature``, ``hub.verify_token``): ``key`` alone must not catch
#: ``monkey``, so short words only count as a separate part of the name.
_SECRET_NAME_PARTS = frozenset(
    {
        "auth",
        "authorization",
        "credential",
        "credentials",
        "hmac",
        "jwt",
        "key",
        "pass",
        "passwd",
        "password",
        "pwd",
        "secret",
        "session",
        "sig",
        "signature",
        "token",
    }
)
#: ... and these anywhere in the name (``accesstoken``, ``clientsecret``, ``apikey``).
_SECRET_NAME_WORDS = ("token", "secret", "passw", "signature", "apikey", "credential")

_NAME_PARTS = re.compile(r"[^a-z0-9]+")

#: A reference in a declarative template: ``{{ expr }}`` (lead data) or ``${NAME}``.
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}")
#: Words that may stand before a credential in a header value (``Bearer <token>``).
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "apikey", "api-key", "key", "digest"})


def is_secret_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential (case-insensitive)."""
    lowered = unquote(name).lower()
    if any(word in lowered for word in _SECRET_NAME_WORDS):
        return True
    return any(part in _SECRET_NAME_PARTS for part in _NAME_PARTS.split(lowered))


def mask_url(url: str, *, secret_path: bool = False) -> str:
    """``url`` with its userinfo and token-like parameter values masked.

    With ``secret_path``, the path, query and fragment are masked too and only the scheme
    and host remain. A string that is not a readable URL is masked whole: it cannot be
    told which part of it is secret.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return MASK
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal: urlsplit drops the brackets
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = f"{MASK}@{netloc}"
    if secret_path:
        return urlunsplit(SplitResult(parts.scheme, netloc, "/" + MASK, "", ""))
    return urlunsplit(
        SplitResult(
            parts.scheme,
            netloc,
            parts.path,
            _mask_params(parts.query),
            _mask_params(parts.fragment),
        )
    )


def _mask_params(text: str) -> str:
    """``a=1&token=x`` → ``a=1&token=**********``; raw text kept for the rest."""
    if not text:
        return text
    pairs = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_param(name):
            value = MASK
        pairs.append(f"{name}{sep}{value}")
    return "&".join(pairs)


def _literal_credential(value: str) -> str | None:
    """The credential written literally in ``value`` (found under a secret-looking name),
    without its scheme word; None when the value only refers to one (templates)."""
    rest = _TEMPLATE.sub("", value).strip()
    scheme, _, tail = rest.partition(" ")
    if scheme.lower() in _AUTH_SCHEMES:
        rest = tail.strip()
    return rest or None


def _is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


#: The parts of the declarative table that make the request (the rest reads the answer,
#: where a status named ``token_expired`` is no credential).
_REQUEST_PARTS = frozenset(
    {"url", "batch_url", "headers", "query", "body", "batch_body", "batch_item"}
)


def _request_parts(table: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k in _REQUEST_PARTS}


def _masked_table(node: Any, secret_name: bool = False) -> Any:
    """A copy of a request part of the declarative table, literal credentials masked."""
    if isinstance(node, dict):
        return {k: _masked_table(v, is_secret_param(str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked_table(v, secret_name) for v in node]
    if isinstance(node, str):
        if secret_name and _literal_credential(node) is not None:
            return MASK
        return mask_url(node) if _is_url(node) else node
    if secret_name and isinstance(node, int | float) and not isinstance(node, bool):
        return MASK
    return node


def _table_secrets(node: Any, secret_name: bool = False) -> Iterator[str]:
    """The literal credentials of a request part of the declarative table."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _table_secrets(value, is_secret_param(str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from _table_secrets(value, secret_name)
    elif isinstance(node, str):
        literal = _literal_credential(node) if secret_name else None
        if literal is not None:
            yield from (node, literal)
        if _is_url(node):
            yield from _url_secrets(node, secret_path=False)
    elif secret_name and isinstance(node, int | float) and not isinstance(node, bool):
        yield str(node)


def printable_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready values with every secret masked (``config show``)."""
    values = settings.model_dump(mode="json")
    for name in values:
        raw = getattr(settings, name)
        if name == "provider_declarative" and raw is not None:
            values[name] = {**raw, **_masked_table(_request_parts(raw))}
        elif name == "provider_options" and raw is not None:
            values[name] = _masked_table(raw)
        elif name == "providers" and raw is not None:
            # A waterfall's instances: each table as a declarative one's, or any provider's.
            values[name] = {member: _masked_table(table) for member, table in raw.items()}
        elif isinstance(raw, SecretStr):
            values[name] = MASK
        elif isinstance(raw, AnyHttpUrl):
            values[name] = mask_url(str(raw), secret_path=name in _SECRET_PATH_FIELDS)
        elif isinstance(raw, tuple) and raw and all(isinstance(v, AnyHttpUrl) for v in raw):
            if name in _SECRET_PATH_FIELDS:
                values[name] = [
                    f"{mask_url(str(v), secret_path=True)} (webhook {webhook_id(str(v))})"
                    for v in raw
                ]
            else:
                values[name] = [mask_url(str(v)) for v in raw]
    return values


def secret_values(settings: Settings) -> frozenset[str]:
    """Every string in ``settings`` that must never be printed: secret fields' values, URL
    credentials and token parameter values, whole secret URLs with their paths, and the
    values of the environment variables the declarative provider's table refers to."""
    return frozenset(value for value in _secrets(settings) if value)


def _env_references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _env_references(key)
            yield from _env_references(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _env_references(value)
    elif isinstance(node, str):
        for name in ENV_REFERENCE.findall(node):
            found = os.environ.get(name)
            if found:
                yield found


def _secrets(settings: Settings) -> Iterator[str]:
    yield from _env_references(settings.provider_declarative)
    yield from _table_secrets(_request_parts(settings.provider_declarative or {}))
    yield from _table_secrets(settings.provider_options or {})
    for table in (settings.providers or {}).values():
        yield from _env_references(table)
        yield from _table_secrets(table)
    for name in type(settings).model_fields:
        raw = getattr(settings, name)
        if isinstance(raw, SecretStr):
            yield raw.get_secret_value()
            continue
        urls = raw if isinstance(raw, tuple) else (raw,)
        for url in urls:
            if isinstance(url, AnyHttpUrl):
                yield from _url_secrets(str(url), secret_path=name in _SECRET_PATH_FIELDS)


def _url_secrets(url: str, *, secret_path: bool) -> Iterator[str]:
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        yield from (user, password, unquote(user), unquote(password))
    if secret_path:
        yield url
        yield parts.path
        return
    for text in (parts.query, parts.fragment):
        for pair in text.split("&"):
            name, sep, value = pair.partition("=")
            if sep and is_secret_param(name):
                yield from (value, unquote(value))
