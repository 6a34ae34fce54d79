"""Which providers, and which segment, for a lead: the first route whose condition holds.

Conditions are JMESPath, not CEL: JMESPath is already how the declarative provider reads
answers (one language for the user), it has a specification with compliance tests, cannot
loop, call out or allocate without bound (safe in a configuration file), and its Python
library is already a dependency. CEL would add a second language and a native dependency
for what these rules need: comparisons, ``contains``, ``starts_with``, ``&&``/``||`` over
the lead's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

from streamproc.errors import ConfigError
from streamproc.waterfall.config import WaterfallConfig

__all__ = ["Routed", "Router"]


@dataclass(frozen=True, slots=True)
class Routed:
    """A lead's segment and the providers its waterfall may use, in the configured order."""

    segment: str
    providers: tuple[str, ...]


class Router:
    """Routes compiled once; :meth:`route` is pure."""

    def __init__(self, config: WaterfallConfig) -> None:
        self._all = tuple(p.name for p in config.providers)
        self._default = config.default_segment
        self._routes: list[tuple[ParsedResult, Routed]] = []
        for index, route in enumerate(config.routes):
            try:
                condition = jmespath.compile(route.when)
            except jmespath.exceptions.JMESPathError as exc:
                raise ConfigError(
                    f"waterfall.routes[{index}].when: {route.when!r} is not JMESPath ({exc})"
                ) from None
            chosen = route.providers or self._all
            # The configured order of the whole waterfall, whatever order the route lists.
            ordered = tuple(name for name in self._all if name in chosen)
            self._routes.append((condition, Routed(route.segment, ordered)))

    def route(self, lead: Mapping[str, Any]) -> Routed:
        """The first route whose condition is true of ``lead`` (JMESPath truth: not false,
        null, or an empty string, list or object); else every provider, default segment."""
        for condition, routed in self._routes:
            try:
                value = condition.search(lead)
            except jmespath.exceptions.JMESPathError:
                # A type error on this lead's data (a number where text was expected) is a
                # condition that does not hold for it, not a failure of the lead.
                continue
            if value not in (False, None, "", [], {}):
                return routed
        return Routed(self._default, self._all)
