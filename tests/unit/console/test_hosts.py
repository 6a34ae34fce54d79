"""The Host allow-list: what the console answers under (DNS rebinding)."""

from __future__ import annotations

import pytest

from streamproc.console.hosts import HostAllowList, host_name

DEFAULT = HostAllowList.of((), bind_host="0.0.0.0", machine="worker-7")


@pytest.mark.parametrize(
    "header",
    [
        "localhost",
        "localhost:8080",
        "LOCALHOST.",
        "app.localhost:8080",
        "127.0.0.1:8080",
        "10.1.2.3",
        "[::1]:8080",
        "worker-7:8080",
        None,
    ],
)
def test_local_names_ip_literals_and_the_machine_are_answered(header: str | None) -> None:
    """localhost names, IP literals, the machine's name and no Host at all are answered."""
    assert DEFAULT.allows(header)


@pytest.mark.parametrize(
    "header", ["attacker.example", "attacker.example:8080", "localhost.attacker.example", ""]
)
def test_other_names_are_refused(header: str) -> None:
    """Any other name (a rebinding page's own) is refused, whatever its port."""
    assert not DEFAULT.allows(header)


def test_configured_names_and_a_named_bind_address_are_answered() -> None:
    """Names the operator lists, and the bind address when it is a name, are answered."""
    hosts = HostAllowList.of(
        ("Console.Example.com", " "), bind_host="ops.internal", machine="worker-7"
    )
    assert hosts.allows("console.example.com:443")
    assert hosts.allows("ops.internal:8080")
    assert not hosts.allows("example.com")


def test_a_star_answers_any_host() -> None:
    """``*`` turns the check off (for a proxy that checks Host itself)."""
    assert HostAllowList.of(("*",), bind_host="", machine="").allows("anything.example")


def test_host_name_drops_the_port_and_brackets() -> None:
    """The name is lower case, without port, brackets or a trailing dot."""
    assert host_name("[::1]:8080") == "::1"
    assert host_name("Example.COM.:80") == "example.com"
    assert host_name("::1") == "::1"
