"""Logging: one explicit structlog configuration for the whole process.

JSON lines by default (and always when stderr is not a terminal), the console renderer on
a TTY. Whatever the format:

* e-mail addresses anywhere in the event (keys, values, nested, exception texts) are
  masked, ``jane.doe@acme.com`` → ``j***@acme.com``: leads carry personal data and logs
  travel far;
* CR/LF and other control characters in strings are escaped, so a user-supplied string
  cannot forge a log line in the console renderer (JSON escapes them anyway);
* an exception is rendered as a plain traceback, file, line and message only: never the
  frames' local variables, which hold the raw lead and the request headers with the API
  key (the console renderer's rich tracebacks print them by default);
* the secrets given to :func:`configure_logging` (see :func:`streamproc.redact.secret_values`)
  are replaced by ``**********`` in every rendered line, however they got there; so are
  the input values pydantic quotes in its validation errors.

Lines of the standard library's loggers (aiokafka, asyncio) get the same masking.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from pydantic import SecretStr

__all__ = ["MIN_SECRET_CHARS", "configure_logging", "get_logger", "mask_emails"]

_MASK = "**********"
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A traceback keeps its line breaks and indentation; any other control character in it is
# escaped like everywhere else.
_CONTROL_IN_TRACEBACK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# pydantic quotes the offending input in its errors ("input_value={'email': ...}"), and an
# input is often a lead.
_PYDANTIC_INPUT = re.compile(r"input_value=.*?, input_type=")

#: Shorter secrets are not looked for in rendered lines: a secret of three characters
#: would mask that string in every word of every line. Typed secrets (``SecretStr``) are
#: masked whatever their length.
MIN_SECRET_CHARS = 4


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], mask_emails(value))
    if isinstance(value, SecretStr):
        return _MASK
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, BaseException):
        return _clean(str(value))
    return value


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key == "exc_info":
            continue
        event[key] = _clean(event[key])
    return event


def _clean_traceback(text: str) -> str:
    text = _PYDANTIC_INPUT.sub(f"input_value={_MASK}, input_type=", mask_emails(text))
    return _CONTROL_IN_TRACEBACK.sub(lambda m: repr(m.group())[1:-1], text)


def _scrub_rendered_exception(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "exception" in event and isinstance(event["exception"], str):
        event["exception"] = _clean_traceback(event["exception"])
    return event


def _redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that masks every secret in a rendered line.

    Each secret is looked for as written, as JSON escapes it and as ``repr`` does (the
    console renderer's form for values inside containers), longest first.
    """
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_CHARS:
            forms |= {secret, orjson.dumps(secret).decode()[1:-1], repr(secret)[1:-1]}
    if not forms:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    return lambda text: pattern.sub(_MASK, text)


class _ScrubbingFormatter(logging.Formatter):
    """The standard library's lines (aiokafka, asyncio), masked like structlog's."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(_clean_traceback(super().format(record)))


def wants_color(environ: Mapping[str, str] | None = None) -> bool:
    """Colour on a terminal unless ``NO_COLOR`` is set to anything non-empty (no-color.org)."""
    env = os.environ if environ is None else environ
    return not env.get("NO_COLOR")


def configure_logging(
    level: str = "INFO", fmt: str = "auto", *, secrets: Iterable[str] = ()
) -> None:
    """Configure structlog once for the process (``fmt``: ``json``, ``console``, ``auto``).

    ``secrets`` are strings that must never be printed (the settings' secret values); they
    are masked in every rendered line of either format. Calling it again replaces the
    previous configuration, secrets included.
    """
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    redact = _redactor(secrets)
    renderer: Callable[[Any, str, MutableMapping[str, Any]], str | bytes]
    if console:
        # The exception is already text when it gets here (format_exc_info below), so the
        # renderer's own formatter, rich with locals by default, never sees an exc_info.
        renderer = structlog.dev.ConsoleRenderer(
            colors=wants_color(), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(
            serializer=lambda obj, **_: orjson.dumps(obj, default=str).decode()
        )

    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        line = renderer(logger, name, event)
        return redact(line if isinstance(line, str) else line.decode())

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            structlog.processors.format_exc_info,
            _scrub_rendered_exception,
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Resolve sys.stderr at each call, not at configuration: tests and embedding
        # applications swap it, and a logger bound to a closed stream would raise.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configure_stdlib(level, redact)


class _StdlibHandler(logging.StreamHandler[TextIO]):
    """Ours, so a second configure_logging replaces it instead of adding another."""


def _configure_stdlib(level: str, redact: Callable[[str], str]) -> None:
    """Like ``logging.basicConfig``: a root handler unless someone else installed one (an
    embedding application, pytest), then their configuration stands."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(handler)
    if not root.handlers:
        handler = _StdlibHandler(sys.stderr)
        handler.setFormatter(_ScrubbingFormatter(redact))
        root.addHandler(handler)
        root.setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)
    # httpx logs every request's full URL at INFO ("HTTP Request: GET https://...?api_key=
    # ..."), and a provider's key may ride in the query: never, whatever the level.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # aiokafka logs through the standard library; keep its noise out unless debugging.
    logging.getLogger("aiokafka").setLevel(logging.ERROR if level != "DEBUG" else logging.INFO)
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, _StartupTransients) for f in coordinator.filters):
        coordinator.addFilter(_StartupTransients())


class _StartupTransients(logging.Filter):
    """aiokafka logs ERROR while a fresh broker elects the group coordinator, a normal
    start-up transient it retries by itself (a newcomer's first screen showed it). Such a
    line is dropped below DEBUG; a coordinator that stays away still shows in the group
    never joining (/readyz, `partitions.assigned` never logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        transient = "GroupCoordinatorNotAvailable" in record.getMessage()
        return not transient or logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
