"""What `topics create` asks the broker for."""

from __future__ import annotations

from streamproc.kafka.config import TopicsConfig
from streamproc.kafka.topics import topic_specs
from streamproc.settings import Settings, start_offset_ms


def test_replication_factor_minus_one_is_sent_as_is() -> None:
    """-1 reaches the request (the broker's default.replication.factor), for every topic."""
    specs = topic_specs(TopicsConfig.from_settings(Settings(topic_replication_factor=-1)))
    assert [spec.replication_factor for spec in specs] == [-1] * 5
    assert [
        spec.replication_factor for spec in topic_specs(TopicsConfig.from_settings(Settings()))
    ] == [1] * 5


def test_start_offset_forms() -> None:
    """`earliest`/`latest` are no time; a zoned ISO time is its epoch milliseconds."""
    assert start_offset_ms("earliest") is None and start_offset_ms("latest") is None
    assert start_offset_ms("2026-12-01T00:00:00Z") == 1_796_083_200_000
    assert start_offset_ms("2026-12-01T01:00:00+01:00") == 1_796_083_200_000
    assert Settings().start_offset == "latest"


def test_pacing_adds_one_deferral_topic_per_band_and_nothing_without_it() -> None:
    """With pacing_enabled, `topics create` also asks for `<topic_deferred>.b0..bN`, kept
    28 days, and `run` needs read and write on them; without it, the five topics and ACLs
    of before."""
    from streamproc.kafka.acls import processor_acls

    plain = Settings()
    paced = Settings(pacing_enabled=True, pacing_band_edges=(10.0, 30.0), topic_deferred="d")
    assert [spec.name for spec in topic_specs(TopicsConfig.from_settings(plain))] == [
        "leads.raw",
        "leads.enriched",
        "leads.dlq",
        "leads.parked",
        "streamproc.state",
    ]
    deferral = topic_specs(TopicsConfig.from_settings(paced))[5:]
    assert [spec.name for spec in deferral] == ["d.b0", "d.b1", "d.b2"]
    assert {spec.topic_configs["retention.ms"] for spec in deferral} == {str(28 * 86_400_000)}
    run_paced = processor_acls(TopicsConfig.from_settings(paced), paced.group_id)
    assert run_paced[6:] == processor_acls(TopicsConfig.from_settings(plain), plain.group_id)
    assert {(acl.name, acl.operation.name) for acl in run_paced[:6]} == {
        (name, op) for name in ("d.b0", "d.b1", "d.b2") for op in ("READ", "WRITE")
    }
