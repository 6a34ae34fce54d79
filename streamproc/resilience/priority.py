"""A lead's priority score: a CEL expression over its fields, a floor, a decay with age.

**Why CEL** (``common-expression-language``, Rust bindings of the ``cel`` crate): the
score is arithmetic over fields (points for company size, for a country, minus points for
a free e-mail domain), and CEL has arithmetic, ``a ? b : c``, ``in`` and string functions;
it has no loops and no side effects, so every expression ends in time linear in its size
(google/cel-spec), which makes it safe to take from configuration. JMESPath, which we
already use for finding fields in provider answers, is a query language: it has no
arithmetic (a sum of conditional points is ``sum([...])`` over ``&&``/``||`` tricks) and
would make every score an exercise. ``cel-python`` (pure Python) pulls in pendulum, lark,
re2 and PyYAML; the Rust one has no native dependency and evaluates in about 25 µs.

The expression sees the lead as ``lead`` (a map of its fields). It must give a number;
anything else, or an evaluation error (a missing field, a type mismatch), is
:class:`ScoreError`, which the caller turns into the configured default score and a
metric rather than a failed lead. A lead scoring under the floor is ``below_floor``
(:class:`streamproc.errors.BelowFloor`, not retriable). docs/budget.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from streamproc.errors import BelowFloor, ConfigError, StreamprocError

__all__ = ["PriorityScore", "ScoreError", "decay"]


class ScoreError(StreamprocError):
    """The score expression could not be evaluated for this lead (or gave no number)."""


def decay(age_s: float, halflife_s: float | None) -> float:
    """The share of a lead's worth left after ``age_s`` seconds: halves every
    ``halflife_s`` (None: no decay). A lead from the future counts as new."""
    if halflife_s is None:
        return 1.0
    return float(0.5 ** (max(0.0, age_s) / halflife_s))


@dataclass(frozen=True, slots=True)
class PriorityScore:
    """A compiled score expression with its floor and decay half-life.

    Build it with :meth:`compile` at start-up: a bad expression is one
    :class:`~streamproc.errors.ConfigError` line then, never a surprise per lead.
    """

    expression: str
    floor: float | None
    halflife_s: float | None
    _program: Any

    @classmethod
    def compile(
        cls,
        expression: str,
        *,
        floor: float | None = None,
        halflife_s: float | None = None,
        setting: str = "priority_score",
    ) -> PriorityScore:
        if not expression.strip():
            raise ConfigError(f"{setting}: the score expression is empty")
        try:
            program = cel.compile(expression)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{setting}: not a valid CEL expression: {first}") from None
        unknown = sorted(set(program.variables()) - {"lead"})
        if unknown:
            raise ConfigError(
                f"{setting}: the expression may use only `lead`, not {', '.join(unknown)}"
            )
        if halflife_s is not None and halflife_s <= 0:
            raise ConfigError(f"{setting}: the decay half-life must be positive")
        return cls(expression, floor, halflife_s, program)

    def score(self, lead: Mapping[str, Any]) -> float:
        """The lead's score; :class:`ScoreError` when the expression fails on it."""
        try:
            value = self._program.execute({"lead": dict(lead)})
        except (
            KeyError,
            TypeError,
            ValueError,
            RuntimeError,
            ZeroDivisionError,
            OverflowError,
        ) as exc:
            raise ScoreError(f"score expression failed: {type(exc).__name__}: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScoreError(f"score expression gave {type(value).__name__}, not a number")
        return float(value)

    def check_floor(self, score: float) -> None:
        """:class:`BelowFloor` when ``score`` is under the floor."""
        if self.floor is not None and score < self.floor:
            raise BelowFloor(f"priority score {score:g} is below the floor {self.floor:g}")

    def worth(self, score: float, age_s: float) -> float:
        """``score · decay(age)``: what admitting the lead now is worth."""
        return score * decay(age_s, self.halflife_s)
