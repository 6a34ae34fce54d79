"""Logging: one explicit structlog configuration for the whole process.

JSON lines by default (and always when stderr is not a terminal), the console renderer on
a TTY. Two processors run on every event, whatever the renderer:

* e-mail addresses anywhere in the event (keys, values, nested) are masked,
  ``jane.doe@acme.com`` → ``j***@acme.com``: leads carry personal data and logs travel far;
* CR/LF and other control characters in strings are escaped, so a user-supplied string
  cannot forge a log line in the console renderer (JSON escapes them anyway).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

__all__ = ["configure_logging", "get_logger", "mask_emails"]

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], mask_emails(value))
    if isinstance(value, SecretStr):
        return "**********"
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


def _scrub_rendered_exception(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "exception" in event and isinstance(event["exception"], str):
        event["exception"] = mask_emails(event["exception"])
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog once for the process (``fmt``: ``json``, ``console``, ``auto``)."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub,
    ]
    renderer: Any
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        shared += [structlog.processors.format_exc_info, _scrub_rendered_exception]
        renderer = structlog.processors.JSONRenderer(
            serializer=lambda obj, **_: __import__("orjson").dumps(obj, default=str).decode()
        )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Resolve sys.stderr at each call, not at configuration: tests and embedding
        # applications swap it, and a logger bound to a closed stream would raise.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # aiokafka logs through the standard library; keep its noise out unless debugging.
    logging.basicConfig(
        level=logging.WARNING if level != "DEBUG" else logging.INFO,
        format="%(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.ERROR if level != "DEBUG" else logging.INFO)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
