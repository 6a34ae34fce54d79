"""The README and the user guide point at what exists: links, files and commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from streamproc.cli import _build_parser
from streamproc.completion import subcommands

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A markdown link or image whose target is a path in this repository (not a URL, not an
#: anchor on the same page).
_LINK = re.compile(r"!?\[[^\]]*\]\((?!https?://|mailto:|#)([^)\s#]+)(?:#[^)]*)?\)")
#: `streamproc <words>` at the start of a code block's line, or opening an inline code span.
_IN_BLOCK = re.compile(r"^\s*(streamproc(?: [a-z][a-z-]*)+)")
_INLINE = re.compile(r"`(streamproc(?: [a-z][a-z-]*)+)")


def _links() -> list[tuple[str, str]]:
    return [
        (page.relative_to(ROOT).as_posix(), target)
        for page in PAGES
        for target in _LINK.findall(page.read_text())
    ]


@pytest.mark.parametrize(("page", "target"), _links())
def test_every_link_resolves(page: str, target: str) -> None:
    """A link in the README or the guide names a file that is in the repository."""
    assert (ROOT / page).parent.joinpath(target).exists(), f"{page} links to missing {target}"


def _commands() -> list[str]:
    found: set[str] = set()
    for page in PAGES:
        in_block = False
        for line in page.read_text().splitlines():
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            found.update((_IN_BLOCK if in_block else _INLINE).findall(line))
    return sorted(found)


def test_the_pages_name_commands() -> None:
    """The scan below finds the README's commands (it would pass vacuously otherwise)."""
    commands = _commands()
    assert "streamproc run" in commands
    assert "streamproc topics create" in commands


@pytest.mark.parametrize("command", _commands())
def test_every_documented_command_exists(command: str) -> None:
    """Each `streamproc <command>` the pages name is a command of the CLI: every word is a
    subcommand of the one before, until a command that takes no subcommand (after which
    come its arguments, or prose)."""
    parser = _build_parser()
    for word in shlex.split(command)[1:]:
        choices = subcommands(parser)
        if not choices:
            break
        assert word in choices, f"`{command}`: {word!r} is not one of {sorted(choices)}"
        parser = choices[word]
    assert not subcommands(parser), f"`{command}` stops before naming an action"
