"""The replay filters: parsing the flags and matching DLQ records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamproc.errors import ConfigError
from streamproc.replay.filters import ReplayFilter, parse_error_classes, parse_moment
from streamproc.replay.interop import UNCLASSIFIED, DlqSource, DlqView

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def _view(error_class: str = "provider_error", failed_at: datetime | None = NOW) -> DlqView:
    return DlqView(
        source=DlqSource.STREAMPROC,
        error_class=error_class,
        message="m",
        retriable=True,
        attempt=1,
        origin=None,
        failed_at=failed_at,
        first_failed_at=failed_at,
    )


def test_no_filter_matches_everything() -> None:
    """An empty filter is inactive and matches any record, even one without a time."""
    f = ReplayFilter()
    assert not f.active
    assert f.matches(_view(failed_at=None), None)


def test_error_class_filter() -> None:
    """Only records of the listed classes match."""
    f = ReplayFilter.parse(error_classes=["rate_limited", "provider_error"], now=NOW)
    assert f.active
    assert f.matches(_view("provider_error"), b"k")
    assert not f.matches(_view("invalid_payload"), b"k")


def test_time_window_is_half_open() -> None:
    """since <= failed_at < until: the since bound matches, the until bound does not."""
    f = ReplayFilter.parse(since="2026-11-26T02:00:00Z", until="2026-11-26T03:00:00Z", now=NOW)
    assert f.matches(_view(failed_at=NOW - timedelta(hours=1)), None)
    assert not f.matches(_view(failed_at=NOW), None)
    assert not f.matches(_view(failed_at=NOW - timedelta(hours=1, seconds=1)), None)


def test_unknown_failure_time_never_matches_a_time_filter() -> None:
    """A record without any failure time is not replayed by a --since run."""
    f = ReplayFilter.parse(since="1h", now=NOW)
    assert not f.matches(_view(failed_at=None), None)


def test_key_filter_compares_bytes_exactly() -> None:
    """--key matches the record key exactly, and a keyless record never."""
    f = ReplayFilter.parse(key="lead-7", now=NOW)
    assert f.matches(_view(), b"lead-7")
    assert not f.matches(_view(), b"lead-70")
    assert not f.matches(_view(), None)


def test_moments_iso_date_naive_and_durations() -> None:
    """ISO-8601 with Z, a bare date (midnight UTC), naive (UTC) and '90m' ago all parse."""
    assert parse_moment("2026-11-26T01:30:00Z", "--since", NOW) == datetime(
        2026, 11, 26, 1, 30, tzinfo=UTC
    )
    assert parse_moment("2026-11-25", "--since", NOW) == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_moment("2026-11-26T01:30", "--since", NOW).tzinfo is UTC
    assert parse_moment("90m", "--since", NOW) == NOW - timedelta(minutes=90)
    assert parse_moment("1.5d", "--since", NOW) == NOW - timedelta(hours=36)


def test_bad_since_is_one_line_naming_the_flag() -> None:
    """A date that does not parse is a ConfigError naming --since and the accepted forms."""
    with pytest.raises(ConfigError, match=r"--since 'yesterday': expected an ISO-8601"):
        ReplayFilter.parse(since="yesterday", now=NOW)


def test_empty_window_is_refused() -> None:
    """--since after --until is refused instead of silently matching nothing."""
    with pytest.raises(ConfigError, match="window is empty"):
        ReplayFilter.parse(since="1h", until="2h", now=NOW)


def test_unknown_error_class_suggests_the_closest() -> None:
    """A typo in --error-class is refused with a suggestion and the known classes."""
    with pytest.raises(ConfigError, match=r"did you mean provider_error\?"):
        parse_error_classes(["provider_eror"])


def test_error_classes_accept_commas_dashes_and_unclassified() -> None:
    """'rate-limited,internal' and 'unclassified' are accepted and normalised."""
    assert parse_error_classes(["rate-limited,internal", "UNCLASSIFIED"]) == {
        "rate_limited",
        "internal",
        UNCLASSIFIED,
    }


def test_describe_names_every_filter() -> None:
    """The summary line lists the classes, the window and the key."""
    f = ReplayFilter.parse(error_classes=["internal"], since="2026-11-26", key="k", now=NOW)
    text = f.describe()
    assert "error_class in {internal}" in text
    assert "failed_at >= 2026-11-26T00:00:00Z" in text
    assert "key = 'k'" in text


def _tried(attempt: int, retriable: bool | None = True) -> DlqView:
    return DlqView(
        source=DlqSource.STREAMPROC,
        error_class="provider_error",
        message="m",
        retriable=retriable,
        attempt=attempt,
        origin=None,
        failed_at=NOW,
        first_failed_at=NOW,
    )


def test_retriable_filter_knows_unknown() -> None:
    """--retriable false,unknown matches non-retriable and foreign records, not retriable ones."""
    f = ReplayFilter.parse(retriable=["false,unknown"], now=NOW)
    assert f.active
    assert f.matches(_tried(1, retriable=False), None)
    assert f.matches(_tried(1, retriable=None), None)
    assert not f.matches(_tried(1, retriable=True), None)


@pytest.mark.parametrize(
    ("text", "matching", "not_matching"),
    [("2", [2], [1, 3]), ("3+", [3, 9], [2]), ("2-3", [2, 3], [1, 4])],
)
def test_attempt_filter_forms(text: str, matching: list[int], not_matching: list[int]) -> None:
    """--attempt N is exact, N+ is a lower bound, N-M an inclusive range."""
    f = ReplayFilter.parse(attempt=text, now=NOW)
    assert f.active
    assert all(f.matches(_tried(n), None) for n in matching)
    assert not any(f.matches(_tried(n), None) for n in not_matching)


@pytest.mark.parametrize(
    ("retriable", "attempt", "message"),
    [
        (["maybe"], None, "--retriable 'maybe': expected true, false, unknown"),
        ([], "0", "--attempt '0': expected N"),
        ([], "3-2", "--attempt '3-2'"),
        ([], "many", "--attempt 'many'"),
    ],
)
def test_bad_retriable_or_attempt_is_one_line(
    retriable: list[str], attempt: str | None, message: str
) -> None:
    """A bad --retriable or --attempt is a ConfigError naming the flag and the forms."""
    with pytest.raises(ConfigError) as info:
        ReplayFilter.parse(retriable=retriable, attempt=attempt, now=NOW)
    assert message in str(info.value)


def test_describe_names_retriable_and_attempt() -> None:
    """The summary line shows the retriable set and the attempt bounds."""
    exact = ReplayFilter.parse(retriable=["unknown", "true"], attempt="2", now=NOW).describe()
    assert "retriable in {true, unknown}" in exact
    assert "attempt = 2" in exact
    assert "attempt >= 3" in ReplayFilter.parse(attempt="3+", now=NOW).describe()
