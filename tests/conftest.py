"""Shared by every test directory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# CPython 3.11.7 (this machine's) can fail to compile a module with "SystemError: AST
# constructor recursion depth mismatch" (CPython gh-106905, fixed in 3.11.8). Seen when
# pytest's hypothesis plugin imports hypothesis lazily at the end of a run that had only
# integration tests; importing it here, at collection, avoids the late compile.
import hypothesis  # noqa: F401
import pytest

if TYPE_CHECKING:
    from xdist.scheduler.protocol import Scheduling

#: Directories whose tests share a session-wide server of their own (an authorizing broker
#: and its identity provider, a secured broker, a schema registry). The README's command
#: runs two pytest-xdist workers: each of these directories runs on one worker, so its
#: server starts once per run instead of once per worker; every other test goes to
#: whichever worker is free.
ONE_WORKER_DIRS = ("tests/integration/auth/", "tests/integration/security/",
                   "tests/integration/registry/")  # fmt: skip


# xdist's own `--dist loadgroup` (xdist_group markers) renames items through an attribute
# pytest 9 no longer reads, so every test landed on either worker: the grouping is here.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Scheduling | None:
    """With ``-n`` (xdist's default ``--dist load``), tests one at a time to whichever worker
    is free, except that each of ``ONE_WORKER_DIRS`` is one unit of work."""
    if config.getvalue("dist") != "load":
        return None  # an explicit --dist mode is obeyed
    from xdist.scheduler import LoadScopeScheduling

    class SharedServersScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((d for d in ONE_WORKER_DIRS if nodeid.startswith(d)), nodeid)

    return SharedServersScheduling(config, log)
