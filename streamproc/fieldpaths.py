"""Paths into a decoded record: a JSON Pointer (``/contact/email``) or dotted (``contact.email``).

A leaf because both the settings (which validate the lead field mapping at start-up) and
the records (which read leads through it) need it. Pure: no I/O, no imports of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MISSING", "Path", "parse_path", "read_path"]

#: A parsed path: the keys from the top, each a key of an object (or an index of an array,
#: when the value found there is an array and the key is a decimal number).
Path = tuple[str, ...]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What :func:`read_path` returns when the record has nothing at the path.
MISSING: Any = _Missing()


def parse_path(text: str) -> Path:
    """Parse a JSON Pointer (RFC 6901, starts with ``/``) or a dotted path.

    Raises ValueError with a one-line reason. The empty pointer (the whole record) and
    empty keys of dotted paths (``a..b``) are refused: a lead field is never the record
    itself, and a doubled dot is a typo far more often than a key named ``""``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "a path must be a non-empty string such as /contact/email or contact.email"
        )
    if text.startswith("/"):
        keys = text[1:].split("/")
        for key in keys:
            rest = key.replace("~0", "").replace("~1", "")
            if "~" in rest:
                raise ValueError(f"{text!r}: '~' in a JSON Pointer must be ~0 or ~1")
        return tuple(key.replace("~1", "/").replace("~0", "~") for key in keys)
    keys = text.split(".")
    if any(not key for key in keys):
        raise ValueError(f"{text!r}: empty key in a dotted path (use a JSON Pointer for odd keys)")
    return tuple(keys)


def read_path(obj: Any, path: Path) -> Any:
    """The value at ``path`` in ``obj``, or :data:`MISSING` when there is none."""
    for key in path:
        if isinstance(obj, Mapping):
            if key not in obj:
                return MISSING
            obj = obj[key]
        elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
            if not key.isdecimal() or int(key) >= len(obj):
                return MISSING
            obj = obj[int(key)]
        else:
            return MISSING
    return obj
