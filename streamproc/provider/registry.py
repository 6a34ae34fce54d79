"""Providers by name: the entry points of the group ``streamproc.providers``.

A package registers a provider with, in its ``pyproject.toml``::

    [project.entry-points."streamproc.providers"]
    my-api = "my_package:MyProvider"

and ``provider = "my-api"`` selects it. The entry point is loaded when ``run`` starts, so
a provider that cannot be imported is one line at start-up, never a traceback mid-stream.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from streamproc.errors import ConfigError
from streamproc.provider.api import ENTRY_POINT_GROUP

__all__ = ["installed_providers", "load_provider_factory", "needs_provider_url"]


def installed_providers() -> list[str]:
    """The names of the installed providers, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_provider_factory(name: str) -> Any:
    """What the entry point ``name`` names (a provider class or factory), or a ConfigError
    in one line: unknown names list the installed ones."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(installed_providers()) or "none"
        raise ConfigError(
            f"provider {name!r} is not installed (installed: {known}); a provider package "
            f"registers itself under the entry point group {ENTRY_POINT_GROUP}"
        )
    entry = found[0]
    try:
        return entry.load()
    except Exception as exc:
        raise ConfigError(
            f"provider {name!r}: its entry point {entry.value} cannot be loaded "
            f"({type(exc).__name__}: {exc}); is its package installed in this environment?"
        ) from None


def needs_provider_url(factory: Any) -> bool:
    """Whether the provider ``factory`` builds calls the ``provider_url`` setting: its
    ``needs_provider_url`` attribute (the ``http`` provider's is true). A provider with its
    own URLs (``declarative``, a plugin) does not say so, and ``run`` starts without one."""
    return getattr(factory, "needs_provider_url", False) is True
