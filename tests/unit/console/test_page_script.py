"""The console page's script parses: a syntax error blanks the whole page."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources

import pytest

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (the browser test covers it)")
def test_the_page_script_is_valid_javascript() -> None:
    """``node --check`` accepts console.js (a name declared twice once stopped every render)."""
    assert NODE is not None
    with resources.as_file(
        resources.files("streamproc.console").joinpath("static", "console.js")
    ) as script:
        checked = subprocess.run(
            [NODE, "--check", str(script)], capture_output=True, text=True, timeout=60
        )
    assert checked.returncode == 0, checked.stderr
