"""The replay summary, its progress lines and the safety check."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from streamproc.records.status import BreakerStatus, BudgetStatus, CacheStatus, StateStatus
from streamproc.replay.progress import LogProgress, eta_s
from streamproc.replay.report import ReplayReport
from streamproc.replay.safety import budget_warning, refusal_reason


def _report() -> ReplayReport:
    report = ReplayReport(dry_run=True, filters="none (every record)", max_attempts=3)
    report.add("replay", "provider_error", 4)
    report.add("park", "provider_error", 1)
    report.add("park", "invalid_payload", 2)
    report.add("skip", "internal", 3)
    report.stop_reason = "end"
    return report


def test_totals_and_by_class() -> None:
    """Counts add up by outcome and by class."""
    report = _report()
    assert (report.read, report.total("replay"), report.total("park")) == (10, 4, 3)
    assert report.by_class()["provider_error"] == {"replay": 4, "park": 1, "skip": 0}
    assert report.to_json()["skipped"] == 3


def test_dry_run_text_says_nothing_was_written() -> None:
    """The dry-run summary starts with DRY RUN and uses 'would be'."""
    text = _report().render_text(raw="leads.raw", parked="leads.parked", dlq="leads.dlq")
    assert text.startswith("DRY RUN: nothing was written or committed.")
    assert "4 would be replayed to leads.raw, 3 would be parked in leads.parked" in text
    assert "invalid_payload            0       2       0" in text


def test_eta_from_average_pace() -> None:
    """Half done in 10 s leaves 10 s; nothing done or no total gives no ETA."""
    assert eta_s(50, 100, 10.0) == 10.0
    assert eta_s(0, 100, 10.0) is None
    assert eta_s(10, None, 10.0) is None


def test_log_progress_is_throttled() -> None:
    """Progress log lines come at most every interval, with counts and an ETA."""
    now = [0.0]
    progress = LogProgress(interval_s=2.0, clock=lambda: now[0])
    report = _report()
    with capture_logs() as logs:
        progress.start(20)
        now[0] = 1.0
        progress.update(report)
        now[0] = 2.5
        progress.update(report)
    lines = [e for e in logs if e["event"] == "replay.progress"]
    assert len(lines) == 1
    assert lines[0]["read"] == 10
    assert lines[0]["eta_s"] == 2.5


def _status(**over: Any) -> StateStatus:
    parts: dict[str, dict[str, Any]] = {
        "breaker": {"state": "closed", "reopens_at": None, "failures_in_window": 0},
        "budget": {
            "day": "2026-11-26",
            "timezone": "UTC",
            "limit": 600,
            "spent": 0,
            "reserved": 0,
            "remaining": 600,
            "exhausted": False,
            "resets_at": "2026-11-27T00:00:00Z",
            "kept": 0,
        },
    }
    for key, value in over.items():
        part, field = key.split("__")
        parts[part][field] = value
    return StateStatus(
        breaker=BreakerStatus(**parts["breaker"]),
        budget=BudgetStatus(**parts["budget"]),
        cache=CacheStatus(entries=0),
    )


def test_safe_when_closed_and_budget_left() -> None:
    """A closed breaker and credits left: no reason to refuse."""
    assert refusal_reason(_status(), 6) is None
    assert refusal_reason(_status(breaker__state="half_open"), 6) is None


def test_refuses_while_breaker_open() -> None:
    """An open breaker is a refusal naming when it half-opens."""
    reason = refusal_reason(
        _status(breaker__state="open", breaker__reopens_at="2026-11-26T03:15:00Z"), 6
    )
    assert reason is not None
    assert "breaker is open until 2026-11-26T03:15:00Z" in reason


def test_refuses_when_budget_spent_or_exhausted() -> None:
    """Less than one lead's estimate left, or a 402 today, is a refusal."""
    spent = refusal_reason(_status(budget__remaining=5, budget__spent=595), 6)
    assert spent is not None
    assert "budget is spent" in spent
    assert refusal_reason(_status(budget__remaining=5), 0) is None
    exhausted = refusal_reason(_status(budget__exhausted=True), 6)
    assert exhausted is not None
    assert "402" in exhausted


def test_budget_warning_when_the_budget_cannot_pay_for_the_replay() -> None:
    """8 credits left at 6 per lead pays for 1 lead: replaying 188 warns and suggests
    --limit 1; replaying 1 does not warn."""
    status = _status(budget__remaining=8)
    warning = budget_warning(status, 6, 188)
    assert warning is not None
    assert "about 1 leads at 6 credits each, for 188 leads" in warning
    assert "--limit 1" in warning
    assert budget_warning(status, 6, 1) is None
    assert budget_warning(status, 0, 188) is None


def test_dry_run_text_carries_the_budget_note() -> None:
    """A budget warning is printed as a NOTE line under the dry-run summary."""
    report = _report()
    report.budget_warning = "today's budget has 8 credits left"
    text = report.render_text(raw="r", parked="p", dlq="d")
    assert text.splitlines()[-1] == "NOTE: today's budget has 8 credits left"
