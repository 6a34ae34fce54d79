"""The DLQ replayer (``streamproc replay``): back to ``leads.raw``, or on to ``leads.parked``.

One module per concept: ``interop`` (reading streamproc, Spring Kafka and Kafka Connect DLQ
headers), ``filters``, ``decision`` (replay or park, and the headers written), ``rate``,
``safety`` (the breaker/budget pre-flight), ``report``, ``progress``, ``replayer`` (the
Kafka shell; its docstring has the offset semantics), ``command`` (the CLI glue),
``stats`` (``streamproc dlq stats``: what is waiting for the replayer), ``detail`` (one
record for a person or a program) and ``show`` (``streamproc dlq show``).
"""
