"""Clay mode: leads enriched through Clay's asynchronous webhook + callback protocol.

A lead is submitted as a row to a Clay table webhook and committed as a *pending*
submission in the state topic; Clay's callback (or the deadline) finishes it in a fenced
transaction per state partition. The life of a lead, why each step is exactly once, and
what several instances cost: docs/clay.md. Public: :class:`ClayService`.
"""

from streamproc.clay.service import ClayService

__all__ = ["ClayService"]
