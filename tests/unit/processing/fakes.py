"""Fakes shared by the guard's tests: a provider call's result and a settable wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    """What a provider call returned, as the guard reads it."""

    data: dict[str, Any]
    credits: int = 6
    attempts: int = 1


class Clock:
    """Wall-clock seconds that move only when a test sets ``t``."""

    def __init__(self) -> None:
        self.t = 1_764_158_400.0

    def __call__(self) -> float:
        return self.t
