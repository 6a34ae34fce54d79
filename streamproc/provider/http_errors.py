"""httpx's errors, translated where they enter: the one place a request's failure to get an
answer becomes a :class:`~streamproc.errors.ProviderError`.

Every HTTP call to a provider, to a token endpoint or to a Clay webhook is made inside
:func:`request_errors`:

* a timeout (``httpx.TimeoutException``, or the ``TimeoutError`` of an ``asyncio.timeout``
  around the call) goes through unchanged: the retry driver
  (:mod:`streamproc.provider.driver`) turns it into a ``ProviderTimeout`` (or a
  ``LocalStall``), timed on its own clock; :data:`TIMEOUTS` is what it is told to treat so;
* any other ``httpx.RequestError`` (connection refused, connection lost, a protocol or
  decoding error) becomes a retriable ``ProviderError`` naming the peer and the error's
  class, never ``str(exc)``: that may carry the URL, and a URL may carry credentials.
  Whether the failure may have been billed is the caller's to say (``charged``).

Anything else (an ``httpx.HTTPStatusError`` is never raised: no call here uses
``raise_for_status``) goes through unchanged.

The HTTP provider's call (one per lead) catches the same two in its own ``try`` instead, and
builds its error with :func:`unreachable`: a context manager costs a generator, a closure
and four calls per lead on the one-provider path (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum

import httpx

from streamproc.errors import ProviderError

__all__ = ["TIMEOUTS", "Charged", "request_errors", "unreachable"]

#: httpx's own timeouts, which the retry driver counts as timeouts (``RetryDriver.timeouts``).
TIMEOUTS: tuple[type[Exception], ...] = (httpx.TimeoutException,)


class Charged(Enum):
    """Whether a request that got no answer may have been billed."""

    #: Unless the connection was never made (``httpx.ConnectError``): once a request may have
    #: gone out, the peer may have done (and billed) the work.
    UNLESS_NOT_CONNECTED = "unless_not_connected"
    #: Never: the peer bills nothing for it (an OAuth token request).
    NEVER = "never"


@contextmanager
def request_errors(
    peer: str,
    *,
    charged: Charged = Charged.UNLESS_NOT_CONNECTED,
    on_failure: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Translate the httpx errors of the call made in the block (see the module's doc).

    ``peer`` names the other side in the message (``"provider"``, ``"clay webhook"``):
    ``"<peer> unreachable: ConnectError"``. ``on_failure`` is called once for a timeout or a
    request error, before it is raised (the caller's report of an attempt without answer).
    """
    try:
        yield
    except (httpx.TimeoutException, TimeoutError):
        if on_failure is not None:
            on_failure()
        raise
    except httpx.RequestError as exc:
        if on_failure is not None:
            on_failure()
        raise unreachable(peer, exc, charged) from exc


def unreachable(
    peer: str, exc: httpx.RequestError, charged: Charged = Charged.UNLESS_NOT_CONNECTED
) -> ProviderError:
    """The retriable error of a request that got no answer (see the module's doc)."""
    return ProviderError(
        f"{peer} unreachable: {type(exc).__name__}",
        maybe_charged=(
            charged is Charged.UNLESS_NOT_CONNECTED and not isinstance(exc, httpx.ConnectError)
        ),
    )
