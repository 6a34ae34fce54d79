"""Shared by every test directory."""

from pathlib import Path

# CPython 3.11.7 (this machine's) can fail to compile a module with "SystemError: AST
# constructor recursion depth mismatch" (CPython gh-106905, fixed in 3.11.8). Seen when
# pytest's hypothesis plugin imports hypothesis lazily at the end of a run that had only
# integration tests; importing it here, at collection, avoids the late compile.
import hypothesis  # noqa: F401
import pytest

HERE = Path(__file__).resolve().parent

#: Directories whose tests share a session-wide server of their own (an authorizing broker
#: and its identity provider, a secured broker, a schema registry). The README's command
#: runs two pytest-xdist workers with ``--dist loadgroup``: each of these directories runs
#: on one worker, so its server starts once per run instead of once per worker; every
#: other test goes to whichever worker is free.
ONE_WORKER_DIRS = ("integration/auth", "integration/security", "integration/registry")


# tryfirst: xdist's own hook reads the groups from the markers when it renames the items.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.resolve().parent.relative_to(HERE).as_posix() + "/"
        group = next((d for d in ONE_WORKER_DIRS if where.startswith(d + "/")), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
