"""The web console: an overview and a DLQ browser with replay, under ``/console/``.

Served by a processor's ops server (``streamproc run``) and by ``streamproc console`` on
its own. One module per concept: ``auth`` (the operator token), ``history`` (breaker
transitions, budget burn, throughput: pure, on an injected clock), ``payload`` (the API's
JSON and the query's filters: pure), ``lag`` (the group's lag, read from Kafka), ``api``
(the routes, the page and the replay), ``command`` (``streamproc console``) and
``static/`` (the page: HTML, CSS and vanilla JS, nothing fetched from elsewhere).
What it shows and how it is secured: docs/console.md.
"""

from streamproc.console.api import Console

__all__ = ["Console"]
