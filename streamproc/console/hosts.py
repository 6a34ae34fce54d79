"""Which ``Host`` the console answers under: the defence against DNS rebinding.

Pure. A page on an attacker's site can make a browser resolve the attacker's own name to
this server's address and then read the console's answers as same-origin; the one thing
it cannot choose is the ``Host`` header, which stays the attacker's name. So the console
answers only under names it knows: ``localhost`` (and ``*.localhost``, which browsers
always resolve to the loopback), any IP address literal (a page served from that address
is this server's own origin, not a rebinding), its bind address, this machine's name, and
the names the operator lists in ``console_allowed_hosts`` (``*``: any, for a proxy that
checks ``Host`` itself). A request without a ``Host`` header (not a browser's) is let
through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["HostAllowList", "host_name"]

_ANY = "*"
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def host_name(header: str) -> str:
    """The name of a ``Host`` header, lower case, without its port or trailing dot
    (``[::1]:8080`` → ``::1``)."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """The names the console answers under (besides localhost and IP literals)."""

    names: frozenset[str]
    any_host: bool = False

    @classmethod
    def of(cls, configured: Iterable[str], *, bind_host: str, machine: str) -> HostAllowList:
        """From ``console_allowed_hosts``, the bind address and the machine's name."""
        listed = {host_name(n) for n in configured if n.strip()}
        if _ANY in listed:
            return cls(frozenset(), any_host=True)
        own = {host_name(h) for h in (bind_host, machine) if h not in _WILDCARD_BINDS}
        return cls(frozenset((listed | own) - {""}))

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header is answered."""
        if self.any_host or header is None:
            return True
        name = host_name(header)
        if name == "localhost" or name.endswith(".localhost") or _is_ip(name):
            return True
        return name in self.names
