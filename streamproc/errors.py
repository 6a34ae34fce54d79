"""The errors streamproc raises, and what each means for a lead.

Hierarchy::

    StreamprocError                      root; never raised itself
    ├── ConfigError                      a setting is invalid (one line for the operator)
    ├── LeadError                        one lead failed; carries a DLQ error class
    │   ├── InvalidPayload               not a valid lead (never retriable)
    │   ├── ProviderRejected             the provider refused this lead (other 4xx)
    │   ├── NoMatch                      the provider answered and found nothing for it
    │   ├── ProviderAuthError            401/403: broken for every lead
    │   ├── ProviderError                5xx, connection error, unreadable answer
    │   ├── ProviderTimeout              the call timed out
    │   │   └── LocalStall               ... while this process could not run
    │   ├── RateLimited                  429, after in-process retries ran out
    │   ├── ProviderCreditsExhausted     402: the provider's own credits are gone
    │   ├── BreakerOpen                  the breaker refused the call
    │   ├── BudgetExhausted              the daily credit budget refused the call
    │   ├── HoldExpired                  held longer than ``hold_max_age_s``
    │   ├── BelowFloor                   its priority score is under the configured floor
    │   ├── DeferralExpired              deferred (pacing) longer than ``deferral_max_age_s``
    │   ├── UnreadableRecord             the client could not decode the input record
    │   ├── UnknownSchema                its schema id is not in the schema registry
    │   ├── UndecodablePayload           not in the wire format, or not as its schema says
    │   ├── OutputTooLarge               the output is over the topic's or producer's limit
    │   ├── OutputRefused                the broker refused the output record
    │   └── InternalError                a bug or an unexpected failure of ours
    ├── KafkaSetupError                  the broker is unreachable or refuses us
    │   ├── KafkaTokenError              no SASL/OAUTHBEARER token (OIDC or AWS refused)
    │   └── KafkaAuthorizationError      an ACL we need is missing (names it)
    ├── RegistryUnavailable              the schema registry does not answer (leads wait)
    ├── ReplayRefused                    replaying now is unsafe (breaker open, budget spent)
    ├── ReplayFenced                     another replayer of the group took over
    └── PartitionSuperseded              another owner committed a partition this lane holds

Routing reads ``exc.error_class`` and ``exc.retriable`` (class attributes, as in aiokafka's
errors), never a chain of ``isinstance``. Third-party exceptions are translated where they
enter (``raise ProviderTimeout(...) from exc``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "BelowFloor",
    "BreakerOpen",
    "BudgetExhausted",
    "ConfigError",
    "DeferralExpired",
    "ErrorClass",
    "HoldExpired",
    "InternalError",
    "InvalidPayload",
    "KafkaAuthorizationError",
    "KafkaSetupError",
    "KafkaTokenError",
    "LeadError",
    "LocalStall",
    "NoMatch",
    "OutputRefused",
    "OutputTooLarge",
    "PartitionSuperseded",
    "ProviderAuthError",
    "ProviderCreditsExhausted",
    "ProviderError",
    "ProviderRejected",
    "ProviderTimeout",
    "RateLimited",
    "RegistryUnavailable",
    "ReplayFenced",
    "ReplayRefused",
    "StreamprocError",
    "UndecodablePayload",
    "UnknownSchema",
    "UnreadableRecord",
]


class ErrorClass(StrEnum):
    """The values of the ``streamproc.error.class`` DLQ header (docs/flow.md)."""

    INVALID_PAYLOAD = "invalid_payload"
    PROVIDER_REJECTED = "provider_rejected"
    NO_MATCH = "no_match"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_TIMEOUT = "provider_timeout"
    RATE_LIMITED = "rate_limited"
    BREAKER_OPEN = "breaker_open"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BELOW_FLOOR = "below_floor"
    DEFERRAL_EXPIRED = "deferral_expired"
    UNREADABLE_RECORD = "unreadable_record"
    UNKNOWN_SCHEMA = "unknown_schema"
    UNDECODABLE_PAYLOAD = "undecodable_payload"
    OUTPUT_TOO_LARGE = "output_too_large"
    OUTPUT_REFUSED = "output_refused"
    HOLD_EXPIRED = "hold_expired"
    INTERNAL = "internal"


class StreamprocError(Exception):
    """Root of every error streamproc raises on purpose."""


class ConfigError(StreamprocError):
    """A setting is invalid; the message is one line naming it and what it accepts."""


class KafkaSetupError(StreamprocError):
    """The broker cannot be reached, refuses our credentials, or lacks a topic."""


class RegistryUnavailable(StreamprocError):
    """The schema registry did not answer (connection refused, timeout, 5xx, 429).

    Not a lead's failure, so never a DLQ record: the lead waits in a hold and asks again,
    which holds its partition until the registry is back (docs/schema-registry.md).
    """

    retriable: ClassVar[bool] = True


class KafkaTokenError(KafkaSetupError):
    """The OAUTHBEARER token could not be had: the OIDC token endpoint or AWS refused, or
    did not answer. The message names the setting to check, never the secret."""


class KafkaAuthorizationError(KafkaSetupError):
    """The broker authenticated us but an ACL is missing: the message names the operation,
    the resource and the principal (docs/security.md lists the ACLs)."""


class ReplayRefused(StreamprocError):
    """The safety check refused to start (or continue) a replay; ``--force`` overrides it."""


class ReplayFenced(StreamprocError):
    """Another replayer of the same group started and took over this one's partitions."""


class PartitionSuperseded(StreamprocError):
    """The group's committed offset of a partition moved past what this lane committed:
    another process owns it (or did); the lane's window is stale and must be dropped."""


class LeadError(StreamprocError):
    """Processing one lead failed; the lead goes to the DLQ with this class and message."""

    error_class: ClassVar[ErrorClass] = ErrorClass.INTERNAL
    retriable: ClassVar[bool] = False
    #: Whether this failure is evidence that the provider is unhealthy.
    counts_against_breaker: ClassVar[bool] = False

    def __init__(self, message: str, *, maybe_charged: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: The request may have reached the provider and been billed although no answer
        #: came back (a timeout, a connection lost after sending): the budget counts it.
        self.maybe_charged = maybe_charged
        #: Set on the copy each other lead of a batch gets of its call's failure: the call
        #: is counted once (breaker, health), by its first lead (processing/calls.py).
        self.shares_call = False
        #: What the lead was charged, when the failing call knows it exactly (a waterfall:
        #: the sum of its steps); None: the budget books the provider's price if
        #: ``maybe_charged``, else nothing.
        self.charged: int | None = None


class InvalidPayload(LeadError):
    error_class = ErrorClass.INVALID_PAYLOAD


class ProviderRejected(LeadError):
    error_class = ErrorClass.PROVIDER_REJECTED


class NoMatch(LeadError):
    """The provider answered and has nothing for this lead (a People Data Labs 404, an
    Apollo ``null``): an answer, not a failure of the provider, so never against the breaker
    and never retried (the same question gets the same miss). A waterfall asks its next
    provider; a single provider dead-letters the lead as ``no_match`` (docs/waterfall.md).

    ``credits`` is what the miss was billed (0 unless the API bills misses). The pipeline
    settles a lead error at 0, or at the estimate when ``maybe_charged``: a billed miss
    sets it, so the budget never counts fewer credits than were spent."""

    error_class = ErrorClass.NO_MATCH

    def __init__(self, message: str, *, credits: int = 0) -> None:
        super().__init__(message, maybe_charged=credits > 0)
        self.credits = credits


class ProviderAuthError(LeadError):
    """401/403: the API key is wrong for every lead, so it trips the breaker."""

    error_class = ErrorClass.PROVIDER_REJECTED
    retriable = True
    counts_against_breaker = True


class ProviderError(LeadError):
    error_class = ErrorClass.PROVIDER_ERROR
    retriable = True
    counts_against_breaker = True


class ProviderTimeout(LeadError):
    error_class = ErrorClass.PROVIDER_TIMEOUT
    retriable = True
    counts_against_breaker = True


class LocalStall(ProviderTimeout):
    """A call timed out while this process could not run (a freeze, a stalled event loop):
    not evidence against the provider, whose answer may be waiting in the socket. It does
    not count against the breaker and is retried (streamproc/provider/stall.py)."""

    counts_against_breaker = False


class RateLimited(LeadError):
    error_class = ErrorClass.RATE_LIMITED
    retriable = True

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, maybe_charged=False)
        self.retry_after_s = retry_after_s


class ProviderCreditsExhausted(LeadError):
    """402: treated as ``budget_exhausted`` for the rest of the budget day."""

    error_class = ErrorClass.BUDGET_EXHAUSTED
    retriable = True


class BreakerOpen(LeadError):
    error_class = ErrorClass.BREAKER_OPEN
    retriable = True


class BudgetExhausted(LeadError):
    error_class = ErrorClass.BUDGET_EXHAUSTED
    retriable = True


class HoldExpired(LeadError):
    """A lead waited in a hold (breaker, budget, schema registry) longer than
    ``hold_max_age_s``: dead-lettered so its partition moves on, and replayed once what it
    waited for is back. The message says what it waited for."""

    error_class = ErrorClass.HOLD_EXPIRED
    retriable = True


class BelowFloor(LeadError):
    """The lead's priority score is under the configured floor: not worth a credit today
    or any day, so not retriable (a replay would score it the same)."""

    error_class = ErrorClass.BELOW_FLOOR


class DeferralExpired(LeadError):
    """Deferred by pacing longer than ``deferral_max_age_s``; retriable: a replay on a day
    with credits to spare enriches it."""

    error_class = ErrorClass.DEFERRAL_EXPIRED
    retriable = True


class UnreadableRecord(LeadError):
    """The Kafka client could not decode the record (a header key that is not UTF-8, a
    batch that fails its CRC): its contents are not available to us, only its position."""

    error_class = ErrorClass.UNREADABLE_RECORD


class UnknownSchema(LeadError):
    """The record names a schema id the registry (which answered) does not know.

    Retriable: replayed once the schema is registered again (a registry restored from a
    backup, a record copied from another cluster's topic)."""

    error_class = ErrorClass.UNKNOWN_SCHEMA
    retriable = True


class UndecodablePayload(LeadError):
    """Not in the schema registry's wire format (magic byte 0, 4-byte schema id), or the
    payload does not decode with the schema it names, or that schema's type is not one
    streamproc reads (Avro, JSON Schema)."""

    error_class = ErrorClass.UNDECODABLE_PAYLOAD


class OutputTooLarge(LeadError):
    """The lead's output is larger than the output topic or the producer accepts."""

    error_class = ErrorClass.OUTPUT_TOO_LARGE


class OutputRefused(LeadError):
    """The broker refused the lead's output record for itself (timestamp, policy)."""

    error_class = ErrorClass.OUTPUT_REFUSED


class InternalError(LeadError):
    error_class = ErrorClass.INTERNAL
    retriable = True
