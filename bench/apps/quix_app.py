"""The Quix Streams peer: a StreamingDataFrame doing consume → call → produce.

Written the way Quix's documentation writes an app: ``app.dataframe(topic)``, one
``apply`` that calls the provider (Quix callbacks are synchronous, so a blocking
``httpx.Client``), ``to_topic`` for the result, ``processing_guarantee="exactly-once"``.
``app.run(count=BENCH_EXPECTED)`` stops once that many outputs were produced and
committed.

Quix Streams pins pydantic below what streamproc needs, so this program may run under
another interpreter (``python -m bench --peer-python``): it imports no streamproc code.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from quixstreams import Application

from bench.apps.common import AppEnv, emit, enriched_value


def main() -> None:
    env = AppEnv.from_environ()
    app = Application(
        broker_address=env.bootstrap,
        consumer_group=env.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=env.commit_interval_ms / 1000,
        auto_create_topics=False,
        use_changelog_topics=False,
        loglevel=logging.WARNING,
    )
    source = app.topic(env.topic_in, key_deserializer="bytes", value_deserializer="json")
    sink = app.topic(env.topic_out, key_serializer="bytes", value_serializer="bytes")
    http = httpx.Client(timeout=10.0)

    def enrich(lead: dict[str, Any]) -> bytes:
        response = http.post(
            env.provider_url,
            json=lead,
            headers={"Idempotency-Key": str(lead["lead_id"])},
        )
        response.raise_for_status()
        body = response.json()
        return enriched_value(lead, body["data"], int(body.get("credits", 6)), "quix")

    app.dataframe(source).apply(enrich).to_topic(sink)
    app.run(count=env.expected, timeout=env.idle_s, collect=False)
    http.close()
    emit(published=env.expected)


if __name__ == "__main__":
    main()
