"""``python -m bench``: streamproc's throughput benchmark against its baselines and peers.

It starts nothing by hand: the local Kafka broker (``scripts/kafka-local``, started only if
it is not running, and then stopped at the end), the mock provider in a child process,
fresh topics per scenario, and every measured pipeline (streamproc itself, the
``sequential`` reference pattern, the ``kafka-ceiling`` and ``http-ceiling`` baselines,
Faust and Quix Streams apps) as child processes whose CPU and memory are sampled from
outside. See ``bench/README.md`` for usage and the exact definitions of each number.

This package is a tool, not part of streamproc: nothing in ``streamproc`` imports it.
"""

__all__: list[str] = []
