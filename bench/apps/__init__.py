"""The programs the benchmark runs as child processes (one module per program).

Each is started as ``python -m bench.apps.<name>`` and configured through ``BENCH_*``
environment variables (see :mod:`bench.apps.common`). They import nothing from
``streamproc`` and as little as they can, so their memory and CPU are their own.
"""
