"""Each component reads its own narrow configuration: the modules below never import nor
name the whole settings model (the command layer and ``app.py`` take their part of it
once, through a ``*Config.from_settings``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "streamproc"

#: Modules that read a narrow frozen config, never ``Settings`` (path under streamproc/).
NARROW = [
    "kafka/client.py",
    "kafka/oauth.py",
    "replay/replayer.py",
    "replay/show.py",
    "replay/stats.py",
    "replay/command.py",
    "console/api.py",
    "console/lag.py",
    "console/command.py",
    "processing/handler.py",
    "processing/guard.py",
    "processing/processor.py",
    "processing/claimant.py",
]


def settings_named_in(source: str) -> list[str]:
    """Where ``source`` imports or names ``Settings`` (a name, an attribute, an
    annotation, string annotations included)."""
    tree = ast.parse(source)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "Settings":
            found.append(f"line {node.lineno}: name")
        elif isinstance(node, ast.Attribute) and node.attr == "Settings":
            found.append(f"line {node.lineno}: attribute")
        elif isinstance(node, ast.ImportFrom):
            if any(alias.name == "Settings" for alias in node.names):
                found.append(f"line {node.lineno}: import")
        elif isinstance(node, ast.arg | ast.AnnAssign | ast.FunctionDef | ast.AsyncFunctionDef):
            annotation = (
                node.returns
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                else node.annotation
            )
            if annotation is not None and "Settings" in ast.unparse(annotation):
                found.append(f"line {node.lineno}: annotation")
    return found


@pytest.mark.parametrize("module", NARROW)
def test_a_narrow_module_never_names_the_settings_model(module: str) -> None:
    """The module neither imports nor names Settings, not even in an annotation."""
    assert settings_named_in((PACKAGE / module).read_text()) == [], module


def test_the_check_sees_every_way_of_naming_the_settings() -> None:
    """An import, a call, an attribute and a string annotation each count."""
    source = (
        "from streamproc.settings import Settings\n"
        "import streamproc.settings as s\n"
        "def f(x: 'Settings') -> None: ...\n"
        "y = s.Settings()\n"
    )
    assert [where.split(": ")[1] for where in settings_named_in(source)] == [
        "import",
        "annotation",
        "attribute",
    ]
