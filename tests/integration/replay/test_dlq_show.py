"""`dlq show` against the broker: the replay filters, paging, one record whole, read-only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from streamproc.errors import ErrorClass
from streamproc.records.dlq import Failure, Origin, encode_dlq_headers, fit_record
from streamproc.replay.config import ReplayConfig
from streamproc.replay.filters import ReplayFilter
from streamproc.replay.replayer import Replayer, ReplayOptions, replayer_group
from streamproc.settings import Settings
from tests.integration.replay.dlq_io import NOT_RETRIABLE, Planted, cli, every_kind, lead, plant_dlq


async def _show(settings: Settings, *argv: str) -> dict[str, Any]:
    result = await cli(settings, "dlq", "show", "--json", *argv)
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = orjson.loads(result.stdout)
    return shown


async def _group_offsets(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


async def test_list_filters_as_replay_and_pages_in_order(topics: Settings) -> None:
    """The filters select what replay would (class, key, retriable, attempt, time); pages
    of --limit 5 with --skip cover every record once, in partition then offset order."""
    planted = await plant_dlq(topics, every_kind())

    first = await _show(topics, "--limit", "5")
    assert (first["matching"], len(first["records"]), first["next_skip"]) == (len(planted), 5, 5)
    seen: list[tuple[int, int]] = []
    skip: int | None = 0
    while skip is not None:
        page = await _show(topics, "--limit", "5", "--skip", str(skip))
        seen += [(r["partition"], r["offset"]) for r in page["records"]]
        skip = page["next_skip"]
    assert len(seen) == len(set(seen)) == len(planted)
    assert seen == sorted(seen)

    unknown = await _show(topics, "--retriable", "unknown")
    assert {r["key"] for r in unknown["records"]} == {"spring-1", "connect-1"}
    assert {r["source"] for r in unknown["records"]} == {"spring", "connect"}
    at_3 = sum(p.attempt == 3 for p in planted)
    assert (await _show(topics, "--attempt", "3"))["matching"] == at_3
    assert (await _show(topics, "--retriable", "false", "--attempt", "1"))["matching"] == len(
        NOT_RETRIABLE
    )
    one = await _show(topics, "--error-class", "internal", "--attempt", "1")
    assert [r["key"] for r in one["records"]] == ["internal-1"]
    assert one["records"][0]["message"] == "internal happened"
    assert one["filters"] == "error_class in {internal}, attempt = 1"
    # Our records failed an hour ago; the foreign ones carry no time but their own: now.
    assert (await _show(topics, "--since", "30m"))["matching"] == 2
    assert (await _show(topics, "--key", "rate_limited-3"))["matching"] == 1

    text = await cli(topics, "dlq", "show", "--error-class", "provider_timeout")
    print(text.stdout)
    assert text.returncode == 0, text.stderr
    assert "pending for the replayer: 2 records match (filters: error_class in" in text.stdout
    assert "provider_timeout happened" in text.stdout


async def test_one_record_whole_for_each_writer(topics: Settings) -> None:
    """--partition/--offset print a record of ours, Spring's and Connect's with decoded
    headers, origin and payload; the text form pretty-prints the JSON payload."""
    await plant_dlq(topics, every_kind())
    listed = {r["key"]: r for r in (await _show(topics, "--limit", "100"))["records"]}

    def at(key: str) -> list[str]:
        return [
            "--partition",
            str(listed[key]["partition"]),
            "--offset",
            str(listed[key]["offset"]),
        ]

    ours = await _show(topics, *at("provider_error-1"))
    assert (ours["error_class"], ours["retriable"], ours["attempt"]) == ("provider_error", True, 1)
    assert ours["origin"]["topic"] == "leads.raw"
    assert ours["replay_would"]["action"] == "replay"
    assert ours["payload"]["value"]["lead_id"] == "provider_error-1"
    assert {"name": "traceparent", "value": "00-t-01"} in ours["headers"]

    spring = await _show(topics, *at("spring-1"))
    assert spring["exception_class"] == "java.lang.IllegalStateException"
    assert spring["origin"] == {
        "topic": "orders",
        "partition": 1,
        "offset": 4242,
        "timestamp": None,
    }
    names = {h["name"]: h["value"] for h in spring["headers"]}
    assert names["kafka_dlt-original-partition"] == "1"  # 4-byte binary, decoded

    connect = await _show(topics, *at("connect-1"))
    assert connect["source"] == "connect"
    assert connect["message"] == "conversion failed"
    assert (connect["origin"]["topic"], connect["origin"]["offset"]) == ("crm.contacts", 77)

    bad = await _show(topics, *at("invalid_payload-1"))
    assert bad["payload"] == {
        "encoding": "text",
        "bytes": 9,
        "truncated": False,
        "original_bytes": None,
        "value": "{not json",
    }
    assert bad["replay_would"]["action"] == "park"

    text = await cli(topics, "dlq", "show", *at("spring-1"))
    print(text.stdout)
    assert text.returncode == 0, text.stderr
    assert "origin                orders 1:4242" in text.stdout
    assert '{\n  "lead_id": "spring-1",' in text.stdout


async def test_a_truncated_record_says_so(topics: Settings) -> None:
    """A record whose value was cut to fit the DLQ is shown as truncated, with its size."""
    value = orjson.dumps({"lead_id": "big", "notes": "x" * 20_000})
    headers = encode_dlq_headers(
        [],
        Failure(ErrorClass.OUTPUT_TOO_LARGE, "too large", False),
        Origin("leads.raw", 2, 99, 0),
        1,
        datetime.now(UTC),
    )
    _, cut, fitted = fit_record(b"big", value, headers, max_bytes=4096)
    assert cut is not None
    planted = Planted("big", "output_too_large", 1, "park", datetime.now(UTC))
    await plant_dlq(topics, [(b"big", cut, fitted, planted)])
    row = (await _show(topics))["records"][0]
    where = ["--partition", str(row["partition"]), "--offset", str(row["offset"])]
    detail = await _show(topics, *where)
    assert detail["payload"]["truncated"] is True
    assert detail["payload"]["original_bytes"] == len(value)
    text = (await cli(topics, "dlq", "show", *where)).stdout
    assert f"the whole {len(value)} bytes is at leads.raw 2:99" in text


async def test_read_only_and_pending_like_the_replayer(topics: Settings) -> None:
    """dlq show commits nothing (before and after a replay the replayer's offsets are the
    replayer's own); after a filtered replay it lists only what is still pending."""
    total = len(await plant_dlq(topics, every_kind()))
    group = replayer_group(ReplayConfig.from_settings(topics))
    await _show(topics)
    await _show(topics, "--all")
    assert await _group_offsets(topics, group) == {}

    filters = ReplayFilter(error_classes=frozenset({"internal"}))
    await Replayer(ReplayConfig.from_settings(topics), ReplayOptions(filters=filters)).run()
    committed = await _group_offsets(topics, group)
    assert committed

    pending = await _show(topics, "--limit", "100")
    assert pending["matching"] == total - 2  # the two internal ones left
    assert "internal" not in {r["error_class"] for r in pending["records"]}
    assert (await _show(topics, "--all"))["matching"] == total + total - 2
    assert await _group_offsets(topics, group) == committed


async def test_out_of_range_is_one_line(topics: Settings) -> None:
    """An offset the partition does not hold, or a partition the topic lacks, is one line."""
    await plant_dlq(
        topics,
        [(b"k", lead("k"), [], Planted("k", "unclassified", 1, "replay", datetime.now(UTC)))],
    )
    row = (await _show(topics))["records"][0]
    result = await cli(
        topics, "dlq", "show", "--partition", str(row["partition"]), "--offset", "99"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"streamproc: --offset 99: {topics.topic_dlq} partition {row['partition']} "
        "holds offsets 0 to 0"
    )
    missing = await cli(topics, "dlq", "show", "--partition", "7", "--offset", "0")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"streamproc: --partition 7: {topics.topic_dlq} has partitions 0 to 2"
    )
