"""Resilience: the pure, synchronous state machines the Kafka/HTTP shell consults per lead.

One module per concept, none doing I/O or reading a clock (``now`` is always an argument):

* :mod:`~streamproc.resilience.breaker`: the circuit breaker (closed / open / half-open),
  snapshot and restore in epoch seconds.
* :mod:`~streamproc.resilience.budget`: budget days (:func:`budget_day`,
  :func:`day_end`) in the budget's time zone.
* :mod:`~streamproc.resilience.claims`: the group-wide :class:`ClaimLedger`, a
  deterministic fold over an ordered log of claim events that every instance replays.
* :mod:`~streamproc.resilience.health`: the sliding-window success rate behind ``/status``.
* :mod:`~streamproc.resilience.token_bucket`: the rate limit of Clay submissions and
  ``replay --rate``.
* :mod:`~streamproc.resilience.cache` and :mod:`~streamproc.resilience.receipts`: the
  enrichment cache and the answers leads paid for, as the state topic keeps them.
"""
