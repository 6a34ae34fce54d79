"""The waterfall of providers, its pure core (docs/waterfall.md).

Several providers for one lead, tried in order until one answer passes the stop rule, at
most a ceiling of credits per lead; the order chosen per segment of leads by what each
provider's answers have shown. Nothing here does I/O or reads a clock of its own: the
pipeline (a later step) drives it, the benchmark (``python -m bench.waterfall``) measures it.

* :mod:`.config`: the ``[streamproc.waterfall]`` table, validated;
* :mod:`.routing`: which providers, and which segment, for a lead (JMESPath conditions);
* :mod:`.ledger`: each provider's hits per segment, folded from shared records;
* :mod:`.caps`: a provider's credit cap per day (its own limit or a share of the budget);
* :mod:`.order`: the adaptive order (cost over hit rate, Thompson sampling, the fill-rate
  guard);
* :mod:`.run`: one lead's waterfall as a state machine: next provider, stop rule, cost
  ceiling, merge.
"""
