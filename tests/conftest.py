"""Shared by every test directory."""

# CPython 3.11.7 (this machine's) can fail to compile a module with "SystemError: AST
# constructor recursion depth mismatch" (CPython gh-106905, fixed in 3.11.8). Seen when
# pytest's hypothesis plugin imports hypothesis lazily at the end of a run that had only
# integration tests; importing it here, at collection, avoids the late compile.
import hypothesis  # noqa: F401
