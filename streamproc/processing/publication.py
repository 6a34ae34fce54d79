"""What a lead may publish, and how it leaves when its output cannot be published.

Every input record leaves its place exactly once: its enriched record, or a DLQ record.
An output the topic or the producer cannot take (too large, refused by the broker) must
not stall the partition nor be dropped while the offset commits, so the lead is
dead-lettered instead (``output_too_large``, ``output_refused``) with its original
coordinates and as much of the original as fits; the whole original is still in the
input topic at those coordinates. See docs/guarantees.md.

Pure: limits in, outcomes out. The lane applies :meth:`Publication.fit` before it sends
and :meth:`Publication.refused` when the broker refused a record anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from streamproc.errors import LeadError, OutputRefused, OutputTooLarge
from streamproc.records.dlq import fit_record, record_size
from streamproc.records.outcome import Outcome, OutcomeKind, OutRecord

__all__ = ["DeadLetter", "Publication", "Unpublishable", "record_bytes"]

#: Builds the DLQ outcome of a lead from its input record, the error and the outcome it
#: had (whose credits and source are kept: the provider was paid all the same).
DeadLetter = Callable[[object, LeadError, Outcome | None], Outcome]


class Unpublishable(Exception):
    """Not even the lead's DLQ record can be published (the DLQ topic refuses it).

    Nothing else can be done for that lead without an operator: the lane does not commit
    past it, and the failure is raised so that it is logged and retried.
    """


def record_bytes(out: OutRecord) -> int:
    return record_size(out.key, out.value, out.headers)


class Publication:
    """The byte limits of the output topics, and the rules that keep outputs within them.

    ``limits`` maps a topic to the largest record it accepts (the smaller of the topic's
    ``max.message.bytes`` and the producer's ``max_request_size``); other topics get
    ``default_limit``. A limit learnt from a refusal only ever shrinks.
    """

    def __init__(
        self,
        dlq_topic: str,
        dead_letter: DeadLetter,
        limits: Mapping[str, int],
        default_limit: int,
    ) -> None:
        self._dlq_topic = dlq_topic
        self._dead_letter = dead_letter
        self._limits = dict(limits)
        self._default_limit = default_limit

    def limit(self, topic: str) -> int:
        return self._limits.get(topic, self._default_limit)

    def fit(self, record: object, outcome: Outcome) -> Outcome:
        """``outcome`` if each of its records fits its topic; else the lead's DLQ outcome."""
        for out in outcome.records:
            size = record_bytes(out)
            if size <= self.limit(out.topic):
                continue
            if outcome.kind is OutcomeKind.DLQ:
                return self._fit_dead_letter(outcome)
            error = OutputTooLarge(
                f"output for {out.topic} is {size} bytes, over its {self.limit(out.topic)}-byte"
                " limit (the topic's max.message.bytes or the producer's max_request_size)"
            )
            return self._fit_dead_letter(self._dead_letter(record, error, outcome))
        return outcome

    def refused(
        self,
        record: object,
        outcome: Outcome,
        out: OutRecord,
        reason: str,
        *,
        too_large: bool,
        alone: bool,
    ) -> Outcome:
        """The outcome to publish instead of ``outcome``, one of whose records ``out`` the
        producer or the broker refused (``reason``; ``too_large`` when for its size).

        ``alone``: the record was the only one in its batch, so a size refusal says that
        the record itself is over the topic's limit (the limit is learnt from it).
        Raises :class:`Unpublishable` when it was the DLQ record that was refused for
        anything but its size.
        """
        if too_large and alone:
            # A DLQ record refused for its size is cut again to the limit learnt here: half
            # its size, so that a real limit far below the one we read is found in a few
            # rounds rather than a byte at a time.
            size = record_bytes(out)
            learnt = size // 2 if out.topic == self._dlq_topic else size - 1
            self._limits[out.topic] = min(self.limit(out.topic), learnt)
        if outcome.kind is OutcomeKind.DLQ:
            if not too_large:
                raise Unpublishable(f"the DLQ topic {out.topic} refused a record: {reason}")
            return self._fit_dead_letter(outcome)
        lead_error: LeadError
        if too_large:
            lead_error = OutputTooLarge(f"{out.topic} refused the output as too large ({reason})")
        else:
            lead_error = OutputRefused(f"{out.topic} refused the output: {reason}")
        return self._fit_dead_letter(self._dead_letter(record, lead_error, outcome))

    def _fit_dead_letter(self, outcome: Outcome) -> Outcome:
        records = []
        for out in outcome.records:
            if out.topic != self._dlq_topic:
                records.append(out)
                continue
            key, value, headers = fit_record(out.key, out.value, out.headers, self.limit(out.topic))
            records.append(replace(out, key=key, value=value, headers=headers))
        return replace(outcome, records=records)
