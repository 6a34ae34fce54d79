"""Stand-ins for the paid services, for demos, tests and benchmarks; never in production.

:mod:`.provider` plays the synchronous enrichment provider, :mod:`.clay` a Clay table
(webhooks, then callbacks), and :mod:`.command` is ``streamproc mock-provider``. Only the
CLI and the tests import this package: no product module may (the architecture test,
``tests/unit/test_architecture.py``, fails if one does).
"""
