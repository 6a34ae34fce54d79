"""Sample leads for the demo and the benchmarks (``streamproc produce-sample``).

The ``demo`` mix uses the mock provider's scenario domains (``*.reject.test`` and so on,
see ``streamproc.simulators.provider``) so that every path shows up: enriched, retried, rejected,
failed, and malformed input.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer

from streamproc.kafka.client import connection_kwargs, start_client
from streamproc.kafka.config import KafkaConnection

__all__ = ["SampleSummary", "produce_sample", "sample_records"]

_COMPANIES = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "vandelay",
    "aperture",
    "oscorp",
    "gringotts",
]
_FIRST = ["ada", "grace", "alan", "edsger", "barbara", "donald", "ken", "margaret", "linus"]


@dataclass(frozen=True)
class SampleSummary:
    total: int
    by_kind: dict[str, int]


def sample_records(
    count: int, *, mix: str = "demo", seed: int = 7, prefix: str = "lead"
) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) triples; deterministic for a seed."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(count):
        lead_id = f"{prefix}-{i:06d}"
        company = rng.choice(_COMPANIES)
        first = rng.choice(_FIRST)
        kind, domain = "good", f"{company}{rng.randint(1, 60)}.example"
        roll = rng.random() if mix == "demo" else 1.0
        if roll < 0.04:
            kind = "malformed"
        elif roll < 0.08:
            kind, domain = "reject", f"{company}.reject.test"
        elif roll < 0.11:
            kind, domain = "fail", f"{company}.fail.test"
        elif roll < 0.16:
            kind, domain = "ratelimit", f"{company}{i}.ratelimit.test"
        if kind == "malformed":
            bad = [
                b"{not json",
                b"[1,2,3]",
                orjson.dumps({"email": "no-id@x.example"}),
                orjson.dumps({"lead_id": lead_id}),
            ]
            out.append((kind, lead_id.encode(), bad[i % len(bad)]))
            continue
        lead = {
            "lead_id": lead_id,
            "email": f"{first}.{i}@{domain}",
            "domain": domain,
            "first_name": first.title(),
            "company": company.title(),
            "source": "sample",
        }
        out.append((kind, lead_id.encode(), orjson.dumps(lead)))
    return out


async def produce_sample(
    kafka: KafkaConnection, topic: str, count: int, *, mix: str = "demo", seed: int = 7
) -> SampleSummary:
    """Produce ``count`` sample leads of the ``mix`` to ``topic`` (the input topic)."""
    producer = AIOKafkaProducer(
        **connection_kwargs(kafka), acks="all", linger_ms=10, enable_idempotence=True
    )
    await start_client(kafka, producer)
    kinds: Counter[str] = Counter()
    try:
        futures = []
        for kind, key, value in sample_records(count, mix=mix, seed=seed):
            futures.append(await producer.send(topic, value=value, key=key))
            kinds[kind] += 1
        for fut in futures:
            await fut
    finally:
        await producer.stop()
    return SampleSummary(count, dict(kinds))
