"""`streamproc dlq show` flags: the replay filters, paging, one record; checked before Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamproc.cli import _build_parser, main
from streamproc.errors import ConfigError
from streamproc.replay.show import DEFAULT_LIMIT, DlqPage, ShowOptions, show_options_from_args

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def _options(*argv: str) -> ShowOptions:
    return show_options_from_args(_build_parser().parse_args(["dlq", "show", *argv]), now=NOW)


def test_defaults_list_the_first_page_of_pending_records() -> None:
    """No flags: every pending record, the first page."""
    options = _options()
    assert not options.filters.active
    assert (options.skip, options.limit, options.include_all, options.at) == (
        0,
        DEFAULT_LIMIT,
        False,
        None,
    )


def test_the_replay_filters_parse_the_same_way() -> None:
    """Every replay filter is accepted and lands in the same ReplayFilter."""
    options = _options(
        "--error-class", "rate-limited", "--since", "2h", "--key", "L1",
        "--retriable", "unknown", "--attempt", "2+", "--skip", "40", "--limit", "20", "--all",
    )  # fmt: skip
    assert options.filters.error_classes == {"rate_limited"}
    assert options.filters.since == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert options.filters.retriable == {None}
    assert options.filters.min_attempt == 2
    assert (options.skip, options.limit, options.include_all) == (40, 20, True)


def test_one_record_by_partition_and_offset() -> None:
    """--partition P --offset O name one record."""
    assert _options("--partition", "2", "--offset", "17").at == (2, 17)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--partition", "1"], "--partition and --offset go together"),
        (["--offset", "5"], "--partition and --offset go together"),
        (["--partition", "1", "--offset", "5", "--key", "k"], "the filters are for the list"),
        (["--partition", "1", "--offset", "5", "--skip", "2"], "--skip are for the list"),
        (["--partition", "-1", "--offset", "5"], "--partition '-1'"),
        (["--limit", "0"], "--limit '0': expected a whole number >= 1"),
        (["--skip", "-3"], "--skip '-3'"),
        (["--attempt", "0"], "--attempt '0'"),
        (["--error-class", "timeout"], "--error-class 'timeout' is not an error class"),
    ],
)
def test_bad_flags_are_one_line(argv: list[str], message: str) -> None:
    """Each bad combination or value is a one-line ConfigError naming the flag."""
    with pytest.raises(ConfigError) as info:
        _options(*argv)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_refuses_bad_flags_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad flag is exit 2 and one line, even with an unreachable broker."""
    code = main(["dlq", "show", "--retriable", "maybe", "--bootstrap-servers", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "streamproc: --retriable 'maybe': expected true, false, unknown\n"


def test_page_footer_and_next_skip() -> None:
    """A page says which records it shows and the --skip of the next page; the last none."""
    page = DlqPage("leads.dlq", "pending", "none (every record)", skip=0, limit=2, matching=3)
    page.rows = [
        {"partition": 0, "offset": n, "failed_at": None, "error_class": "internal",
         "attempt": 1, "retriable": True, "key": f"k{n}", "message": "m",
         "exception_class": None}
        for n in (0, 1)
    ]  # fmt: skip
    assert page.next_skip == 2
    text = page.render_text()
    assert text.startswith("leads.dlq, pending for the replayer: 3 records match (no filters)")
    assert "showing 1 to 2" in text
    assert "next page: the same flags with --skip 2" in text
    past = DlqPage("leads.dlq", "all", "key = 'k'", skip=5, limit=2, matching=1)
    assert past.render_text() == (
        "leads.dlq, retained: 1 record matches (filters: key = 'k'); none after --skip 5"
    )
    last = DlqPage("leads.dlq", "all", "x", skip=2, limit=2, matching=3)
    assert last.next_skip is None
    assert last.to_json()["next_skip"] is None
