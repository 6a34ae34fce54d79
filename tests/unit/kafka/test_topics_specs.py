"""What `topics create` asks the broker for."""

from __future__ import annotations

from streamproc.kafka.topics import topic_specs
from streamproc.settings import Settings, start_offset_ms


def test_replication_factor_minus_one_is_sent_as_is() -> None:
    """-1 reaches the request (the broker's default.replication.factor), for every topic."""
    specs = topic_specs(Settings(topic_replication_factor=-1))
    assert [spec.replication_factor for spec in specs] == [-1] * 5
    assert [spec.replication_factor for spec in topic_specs(Settings())] == [1] * 5


def test_start_offset_forms() -> None:
    """`earliest`/`latest` are no time; a zoned ISO time is its epoch milliseconds."""
    assert start_offset_ms("earliest") is None and start_offset_ms("latest") is None
    assert start_offset_ms("2026-12-01T00:00:00Z") == 1_796_083_200_000
    assert start_offset_ms("2026-12-01T01:00:00+01:00") == 1_796_083_200_000
    assert Settings().start_offset == "latest"
