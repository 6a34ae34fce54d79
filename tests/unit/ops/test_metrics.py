"""Metrics: what each shell event does to the Prometheus exposition, read back by its parser."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamproc.errors import ErrorClass
from streamproc.ops.metrics import METRIC_NAMES, Metrics
from streamproc.processing.processor import ProcessorStats
from streamproc.records.lead import Source
from streamproc.records.outcome import OutcomeKind
from streamproc.records.status import (
    BreakerStatus,
    BudgetStatus,
    CacheStatus,
    GuardStatus,
    HealthWindowStatus,
    LaneStatus,
)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the rendered text, keyed by name and label set."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def test_two_instances_do_not_share_a_registry() -> None:
    """Each Metrics has its own registry: counting in one leaves the other at zero."""
    a, b = Metrics(), Metrics()
    a.observe_processor(ProcessorStats(consumed=3))
    assert value(a, "streamproc_leads_in_total") == 3
    assert value(b, "streamproc_leads_in_total") == 0


def test_every_declared_metric_is_exposed() -> None:
    """METRIC_NAMES (which deploy/ relies on) lists exactly the streamproc_ families rendered."""
    families = {
        f.name
        for f in text_string_to_metric_families(Metrics(process_metrics=False).render().decode())
        if f.name.startswith("streamproc_") and not f.name.endswith("_created")
    }
    # The text parser strips _total from counter family names; put it back.
    declared = {n.removesuffix("_total") for n in METRIC_NAMES}
    assert families == declared


def test_a_committed_lead_counts_by_outcome_class_and_source() -> None:
    """Each lead Clay finishes counts once under its labels and adds its credits."""
    m = Metrics()
    m.lead_committed(OutcomeKind.ENRICHED, None, Source.PROVIDER, 6)
    m.lead_committed(OutcomeKind.ENRICHED, None, Source.CACHE, 0)
    m.lead_committed(OutcomeKind.ENRICHED, None, None, 4)
    m.lead_committed(OutcomeKind.DLQ, ErrorClass.PROVIDER_TIMEOUT, None, 0)
    out = "streamproc_leads_out_total"
    assert value(m, out, outcome="enriched", error_class="none", source="provider") == 2
    assert value(m, out, outcome="enriched", error_class="none", source="cache") == 1
    assert value(m, out, outcome="dlq", error_class="provider_timeout", source="none") == 1
    assert value(m, "streamproc_credits_spent_total") == 10


def test_series_exist_at_zero_before_any_event() -> None:
    """Every DLQ class and source is exposed at 0 from the start, so rate() sees the first."""
    s = samples(Metrics())
    for error_class in ErrorClass:
        labels = {"outcome": "dlq", "error_class": error_class.value, "source": "none"}
        key = frozenset(labels.items())
        assert s[("streamproc_leads_out_total", key)] == 0
    assert s[("streamproc_replay_records_total", frozenset({("action", "parked")}))] == 0


def test_unknown_outcome_is_refused() -> None:
    """Labels stay bounded: an outcome other than enriched/dlq is a bug, not a new series."""
    with pytest.raises(ValueError, match="outcome"):
        Metrics().lead_committed("maybe", None, None, 0)  # type: ignore[arg-type]


def test_provider_attempt_feeds_histogram_and_status_counter() -> None:
    """Each attempt lands in a latency bucket; no answer (None) counts as status no_answer."""
    m = Metrics()
    m.provider_attempt(200, 0.04)
    m.provider_attempt(503, 1.5)
    m.provider_attempt(None, 30.0)
    name = "streamproc_provider_request_duration_seconds"
    assert value(m, f"{name}_bucket", le="0.05") == 1
    assert value(m, f"{name}_bucket", le="2.5") == 2
    assert value(m, f"{name}_bucket", le="30.0") == 3
    assert value(m, f"{name}_count") == 3
    assert value(m, f"{name}_sum") == pytest.approx(31.54)
    assert value(m, "streamproc_provider_responses_total", status="503") == 1
    assert value(m, "streamproc_provider_responses_total", status="no_answer") == 1


def test_breaker_transition_counts_and_sets_state() -> None:
    """A transition counts under (from, to) and moves the state gauge (2 = open)."""
    m = Metrics()
    m.breaker_transition("closed", "open")
    m.breaker_transition("open", "half-open")
    transitions = "streamproc_breaker_transitions_total"
    assert value(m, transitions, from_state="closed", to_state="open") == 1
    assert value(m, transitions, from_state="open", to_state="half_open") == 1
    assert value(m, "streamproc_breaker_state") == 1


def test_observe_status_copies_guard_status() -> None:
    """The ResilienceGuard.status() shape fills breaker, budget, health and held gauges."""
    m = Metrics()
    m.observe_status(
        GuardStatus(
            breaker=BreakerStatus(state="open", reopens_at=None, failures_in_window=5),
            budget=BudgetStatus(
                day="2026-11-26",
                timezone="UTC",
                limit=500,
                spent=120,
                reserved=18,
                remaining=362,
                exhausted=False,
                resets_at="2026-11-27T00:00:00Z",
                kept=3,
            ),
            cache=CacheStatus(entries=0),
            health=HealthWindowStatus(status="degraded", success_rate=0.9),
            holding=4,
        )
    )
    assert value(m, "streamproc_breaker_state") == 2
    assert value(m, "streamproc_budget_remaining_credits") == 362
    assert value(m, "streamproc_budget_reserved_credits") == 18
    assert value(m, "streamproc_budget_limit_credits") == 500
    assert value(m, "streamproc_health_success_ratio") == 0.9
    assert value(m, "streamproc_health_status", status="degraded") == 1
    assert value(m, "streamproc_health_status", status="healthy") == 0
    assert value(m, "streamproc_leads_held") == 4


def test_health_rate_is_nan_before_any_call() -> None:
    """No provider call yet: the success ratio is NaN (no data), not 0 (which would alert)."""
    assert math.isnan(value(Metrics(), "streamproc_health_success_ratio"))


def test_set_lags_drops_revoked_partitions() -> None:
    """After a rebalance, a partition no longer assigned has no lag series left behind."""
    m = Metrics()
    m.set_lags("leads.raw", {0: 5, 1: 7})
    m.set_lags("leads.raw", {1: 2})
    s = samples(m)
    lag = "streamproc_consumer_lag_records"
    assert s[(lag, frozenset({("topic", "leads.raw"), ("partition", "1")}))] == 2
    assert (lag, frozenset({("topic", "leads.raw"), ("partition", "0")})) not in s


def test_scrape_hooks_run_before_render_and_a_failing_one_is_skipped() -> None:
    """on_scrape hooks refresh gauges at render; one that raises does not break the scrape."""
    m = Metrics()
    in_flight = iter([3, 5])

    def broken() -> None:
        raise RuntimeError("state unavailable")

    m.on_scrape(broken)
    m.on_scrape(lambda: m.set_in_flight(next(in_flight)))
    assert value(m, "streamproc_leads_in_flight") == 3
    assert value(m, "streamproc_leads_in_flight") == 5


def test_replay_progress() -> None:
    """The replayer's actions are counted and its remaining backlog is a gauge."""
    m = Metrics()
    m.replay_record("replayed")
    m.replay_record("replayed")
    m.replay_record("parked")
    m.set_replay_remaining(40)
    assert value(m, "streamproc_replay_records_total", action="replayed") == 2
    assert value(m, "streamproc_replay_records_total", action="parked") == 1
    assert value(m, "streamproc_replay_remaining_records") == 40


def test_info_carries_the_version() -> None:
    """streamproc_info names the running version, for dashboards and rollouts."""
    assert value(Metrics(version="9.9.9"), "streamproc_info", version="9.9.9") == 1


def test_observe_processor_turns_running_totals_into_counters() -> None:
    """Pull mode: repeated observations add only what grew, never count a lead twice."""
    m = Metrics()
    stats = ProcessorStats(consumed=5, by_source={"provider": 3}, credits=18, transactions=1)
    m.observe_processor(stats)
    m.observe_processor(stats)
    stats.consumed, stats.by_source["cache"] = 9, 2
    stats.by_error_class["invalid_payload"] = 1
    stats.aborted_transactions, stats.in_flight = 1, 4
    m.observe_processor(stats)
    out = "streamproc_leads_out_total"
    assert value(m, "streamproc_leads_in_total") == 9
    assert value(m, out, outcome="enriched", error_class="none", source="provider") == 3
    assert value(m, out, outcome="enriched", error_class="none", source="cache") == 2
    assert value(m, out, outcome="dlq", error_class="invalid_payload", source="none") == 1
    assert value(m, "streamproc_credits_spent_total") == 18
    assert value(m, "streamproc_transactions_total", result="aborted") == 1
    assert value(m, "streamproc_leads_in_flight") == 4


def test_observe_processor_survives_a_new_processor() -> None:
    """Totals that drop (a new Processor object) count from zero again, never backwards."""
    m = Metrics()
    m.observe_processor(ProcessorStats(consumed=10))
    m.observe_processor(ProcessorStats(consumed=3))
    assert value(m, "streamproc_leads_in_total") == 13


def test_lanes_show_failures_backoff_and_stalls_per_partition() -> None:
    """A failing partition shows its failures in a row and its wait; a stalled one shows 1;
    a partition no longer assigned leaves the exposition."""
    m = Metrics(process_metrics=False)

    def lane(partition: int, failures: int, retry: float, stalled: float | None) -> LaneStatus:
        return LaneStatus(partition, True, 10, 0, failures > 0, failures, retry, stalled)

    m.observe_lanes([lane(0, 3, 4.0, None), lane(1, 0, 0.0, 42.0)])
    assert value(m, "streamproc_lane_failures", partition="0") == 3
    assert value(m, "streamproc_lane_retry_seconds", partition="0") == 4.0
    assert value(m, "streamproc_partition_stalled", partition="1") == 1
    assert value(m, "streamproc_partition_stalled", partition="0") == 0
    m.observe_lanes([lane(1, 0, 0.0, None)])
    assert ("streamproc_lane_failures", frozenset({("partition", "0")})) not in samples(m)
    assert value(m, "streamproc_partition_stalled", partition="1") == 0


def test_pacing_counts_deferrals_by_band_and_shows_waiting_threshold_and_freeze() -> None:
    """Deferrals by band advance as the committed count grows (a restart's smaller count
    starts anew); waiting leads, the threshold and the freeze are copied in as they are."""
    m = Metrics(process_metrics=False)
    m.observe_pacing({0: 3, 1: 1}, [2, 0], 1.5, False)
    m.observe_pacing({0: 5, 1: 1}, [1, 4], 2.25, True)
    assert value(m, "streamproc_pacing_deferred_total", band="b0") == 5
    assert value(m, "streamproc_pacing_deferred_total", band="b1") == 1
    assert value(m, "streamproc_pacing_waiting_leads", band="b0") == 1
    assert value(m, "streamproc_pacing_waiting_leads", band="b1") == 4
    assert value(m, "streamproc_pacing_threshold") == 2.25
    assert value(m, "streamproc_pacing_frozen") == 1
