"""Which DLQ records a replay run (or ``dlq show``) is about: the ``--error-class``,
``--since``/``--until``, ``--key``, ``--retriable`` and ``--attempt`` filters, parsed from
the command line and matched against a :class:`DlqView`.

Pure. Parsing errors are one-line :class:`~streamproc.errors.ConfigError` s that name the
flag, what was given and what is accepted (the CLI turns them into exit code 2).

Matching rules, all of which must hold (an absent filter matches everything):

* ``error_classes``: the record's class (``unclassified`` for foreign records) is one of them;
* ``since`` <= failure time < ``until`` (a half-open interval, so consecutive windows
  never overlap); a record whose failure time is unknown matches no time filter;
* ``key``: the record key is exactly these UTF-8 bytes;
* ``retriable``: the record's ``retriable`` is this value (``None`` in the filter's set
  stands for "unknown", as foreign records read);
* ``min_attempt`` <= attempt <= ``max_attempt``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from streamproc.errors import ConfigError, ErrorClass
from streamproc.replay.interop import UNCLASSIFIED, DlqView
from streamproc.timestamps import utc_iso

__all__ = [
    "KNOWN_CLASSES",
    "RETRIABLE_CHOICES",
    "ReplayFilter",
    "parse_attempts",
    "parse_error_classes",
    "parse_moment",
    "parse_retriable",
]

#: Every value ``--error-class`` accepts.
KNOWN_CLASSES: tuple[str, ...] = (*(c.value for c in ErrorClass), UNCLASSIFIED)

#: Every value ``--retriable`` accepts: foreign records do not say, and read as ``unknown``.
RETRIABLE_CHOICES: tuple[str, ...] = ("true", "false", "unknown")
_RETRIABLE = {"true": True, "false": False, "unknown": None}

_ATTEMPTS = re.compile(r"^(\d+)(?:(\+)|-(\d+))?$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """The record filters of one run; all ``None``/empty means every record matches."""

    error_classes: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    key: bytes | None = None
    #: The ``retriable`` values that match (``None``: unknown); empty matches every record.
    retriable: frozenset[bool | None] = frozenset()
    min_attempt: int | None = None
    max_attempt: int | None = None

    @property
    def active(self) -> bool:
        """Whether any filter is set (``--limit`` is not a filter: it never skips a record)."""
        return bool(self.error_classes or self.retriable) or any(
            v is not None
            for v in (self.since, self.until, self.key, self.min_attempt, self.max_attempt)
        )

    def matches(self, view: DlqView, key: bytes | None) -> bool:
        if self.error_classes and view.error_class not in self.error_classes:
            return False
        if self.since is not None or self.until is not None:
            at = view.failed_at
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at >= self.until:
                return False
        if self.retriable and view.retriable not in self.retriable:
            return False
        if self.min_attempt is not None and view.attempt < self.min_attempt:
            return False
        if self.max_attempt is not None and view.attempt > self.max_attempt:
            return False
        return self.key is None or key == self.key

    def describe(self) -> str:
        """One line for logs and the summary: ``error_class in {...}, since ...``."""
        parts = []
        if self.error_classes:
            parts.append("error_class in {" + ", ".join(sorted(self.error_classes)) + "}")
        if self.since is not None:
            parts.append(f"failed_at >= {utc_iso(self.since)}")
        if self.until is not None:
            parts.append(f"failed_at < {utc_iso(self.until)}")
        if self.key is not None:
            parts.append(f"key = {self.key.decode('utf-8', errors='replace')!r}")
        if self.retriable:
            names = sorted(n for n, v in _RETRIABLE.items() if v in self.retriable)
            parts.append("retriable in {" + ", ".join(names) + "}")
        if self.min_attempt is not None and self.min_attempt == self.max_attempt:
            parts.append(f"attempt = {self.min_attempt}")
        else:
            if self.min_attempt is not None:
                parts.append(f"attempt >= {self.min_attempt}")
            if self.max_attempt is not None:
                parts.append(f"attempt <= {self.max_attempt}")
        return ", ".join(parts) or "none (every record)"

    @classmethod
    def parse(
        cls,
        *,
        error_classes: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
        key: str | None = None,
        retriable: Iterable[str] = (),
        attempt: str | None = None,
        now: datetime,
    ) -> ReplayFilter:
        """Build the filters from the flags' text; ``now`` anchors durations such as ``2h``."""
        since_at = parse_moment(since, "--since", now) if since is not None else None
        until_at = parse_moment(until, "--until", now) if until is not None else None
        if since_at is not None and until_at is not None and since_at >= until_at:
            raise ConfigError(
                f"--since {since!r} is not before --until {until!r}: the window is empty"
            )
        if key is not None and key == "":
            raise ConfigError("--key: give the record key (the lead_id), not an empty string")
        min_attempt, max_attempt = parse_attempts(attempt) if attempt is not None else (None, None)
        return cls(
            error_classes=parse_error_classes(error_classes),
            since=since_at,
            until=until_at,
            key=key.encode() if key is not None else None,
            retriable=parse_retriable(retriable),
            min_attempt=min_attempt,
            max_attempt=max_attempt,
        )


def parse_error_classes(values: Iterable[str]) -> frozenset[str]:
    """Validate ``--error-class`` values (repeatable, comma-separated lists accepted)."""
    out: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().replace("-", "_")
            if not name:
                continue
            if name not in KNOWN_CLASSES:
                close = difflib.get_close_matches(name, KNOWN_CLASSES, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(
                    f"--error-class {part.strip()!r} is not an error class{hint}; "
                    f"known: {', '.join(KNOWN_CLASSES)}"
                )
            out.add(name)
    return frozenset(out)


def parse_retriable(values: Iterable[str]) -> frozenset[bool | None]:
    """Validate ``--retriable`` values (repeatable, comma-separated): true, false, unknown."""
    out: set[bool | None] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in _RETRIABLE:
                raise ConfigError(
                    f"--retriable {part.strip()!r}: expected {', '.join(RETRIABLE_CHOICES)}"
                )
            out.add(_RETRIABLE[name])
    return frozenset(out)


def parse_attempts(text: str) -> tuple[int, int | None]:
    """``--attempt``: ``N`` (exactly), ``N+`` (N or more) or ``N-M`` (N to M, inclusive);
    the bounds ``(min, max)``, ``max`` ``None`` for no upper bound."""
    match = _ATTEMPTS.match(text.strip())
    low = int(match.group(1)) if match else 0
    high = None if match is None or match.group(2) else int(match.group(3) or low)
    if match is None or low < 1 or (high is not None and high < low):
        raise ConfigError(
            f"--attempt {text!r}: expected N (exactly), N+ (N or more) or N-M, N >= 1; "
            "e.g. 3+ for records processed three times or more"
        )
    return low, high


def parse_moment(text: str, flag: str, now: datetime) -> datetime:
    """An ISO-8601 moment (naive means UTC; a bare date is its midnight UTC), or a
    duration ago: ``90m``, ``2h``, ``1.5d``, ``1w``."""
    value = text.strip()
    match = _DURATION.match(value.lower())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r}: expected an ISO-8601 time (2026-11-26T03:00:00Z, 2026-11-26) "
            "or a duration ago (90m, 2h, 1d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
