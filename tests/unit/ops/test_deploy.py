"""deploy/: Prometheus config, alert rules and the Grafana dashboard parse and use real metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from streamproc.ops.metrics import METRIC_NAMES

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
#: A histogram is exposed as these series (the name itself is not a series).
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
_METRIC = re.compile(r"\bstreamproc_[a-z_]+")


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text())


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "streamproc.json").read_text()
    )
    return data


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml("alerts.yml")["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def known(name: str) -> bool:
    if name in METRIC_NAMES:
        return True
    return any(
        name.endswith(s) and name.removesuffix(s) in METRIC_NAMES for s in _HISTOGRAM_SUFFIXES
    )


def test_prometheus_scrapes_both_processors_and_loads_the_rules() -> None:
    """prometheus.yml scrapes processor-1 and processor-2 on 8080 and loads alerts.yml."""
    config = load_yaml("prometheus.yml")
    (job,) = config["scrape_configs"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert job["job_name"] == "streamproc"
    assert targets == ["processor-1:8080", "processor-2:8080"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_every_alert_is_complete() -> None:
    """Each rule has a name, an expression, a severity and a summary."""
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert rule["alert"].startswith("Streamproc"), rule
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize(
    ("alert", "metric"),
    [
        ("StreamprocCreditBurnRateHigh", "streamproc_credits_spent_total"),
        ("StreamprocBreakerOpen", "streamproc_breaker_state"),
        ("StreamprocDlqRateHigh", "streamproc_leads_out_total"),
        ("StreamprocConsumerLagHigh", "streamproc_consumer_lag_records"),
        ("StreamprocClayWebhookCapacityLow", "streamproc_clay_webhook_capacity_low"),
    ],
)
def test_the_required_alerts_exist(alert: str, metric: str) -> None:
    """Credit burn, breaker open, DLQ rate and lag each have an alert on the right metric."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert metric in rules[alert]["expr"]


def test_alerts_and_dashboard_use_only_exposed_metrics() -> None:
    """Every streamproc_* name in a rule or a panel is one metrics.py exposes."""
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used, "no metric referenced at all"
    assert sorted(name for name in used if not known(name)) == []


def test_dashboard_is_well_formed() -> None:
    """Unique panel ids, a grid position each inside the 24 columns, a fixed uid."""
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert board["uid"] == "streamproc"
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


@pytest.mark.parametrize(
    ("title", "metrics"),
    [
        ("Credits / s by provider", ["streamproc_waterfall_credits_total"]),
        ("Calls / s by provider", ["streamproc_waterfall_calls_total"]),
        ("Found answers / s by provider", ['outcome="found"']),
        ("Fill rate by provider (1 h)", ['outcome="found"', 'outcome=~"found|missed|failed"']),
        (
            "Credits per found answer (1 h)",
            ["streamproc_waterfall_credits_total", 'outcome="found"'],
        ),
    ],
)
def test_the_dashboard_has_a_waterfall_panel_per_metric_by_provider(
    title: str, metrics: list[str]
) -> None:
    """Credits, calls, hits, fill rate and credits per found answer each have a panel that
    splits by the provider instance."""
    panels = {p["title"]: p for p in dashboard()["panels"]}
    (target,) = panels[title]["targets"]
    assert "by (provider)" in target["expr"]
    assert target["legendFormat"] == "{{provider}}"
    for metric in metrics:
        assert metric in target["expr"]


def datasource_refs(node: Any) -> list[Any]:
    """Every value under a "datasource" key, anywhere in the dashboard."""
    if isinstance(node, dict):
        found = [node["datasource"]] if "datasource" in node else []
        return found + [ref for value in node.values() for ref in datasource_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in datasource_refs(item)]
    return []


def test_dashboard_takes_its_datasource_as_a_variable() -> None:
    """No datasource uid is pinned: a Prometheus-type variable picks it, so the dashboard
    imported into any Grafana (or provisioned by compose) finds its data."""
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    refs = datasource_refs(board["panels"]) + datasource_refs(
        [v for v in board["templating"]["list"] if v["type"] != "datasource"]
    )
    assert refs
    assert all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in refs), refs


_SELECTOR = re.compile(r"\b(streamproc_[a-z_]+)(?:\{([^}]*)\})?")


def test_every_dashboard_query_is_scoped_by_the_job_and_instance_variables() -> None:
    """Each streamproc series selector in a panel matches $job and $instance; the instance
    list is the chosen jobs'; only the job list itself spans every job."""
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["job"]["definition"] == "label_values(streamproc_info, job)"
    assert variables["instance"]["definition"] == (
        'label_values(streamproc_info{job=~"$job"}, instance)'
    )
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    selectors = [m for expr in exprs for m in _SELECTOR.finditer(expr)]
    assert selectors
    for match in selectors:
        matchers = set((match.group(2) or "").split(","))
        assert {'job=~"$job"', 'instance=~"$instance"'} <= matchers, match.group(0)


def test_alerts_name_no_job() -> None:
    """No rule matches on a job label value: imported into a Prometheus that names the job
    otherwise, the alerts still see streamproc's series."""
    for rule in alert_rules():
        assert not re.search(r"\bjob\s*(=|!=|=~|!~)\s*\"", rule["expr"]), rule["alert"]


def test_dashboard_provider_points_where_dashboards_are_mounted() -> None:
    """The dashboards provider reads the folder the compose stack mounts the JSON into."""
    (provider,) = load_yaml("grafana/provisioning/dashboards/streamproc.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (set PROMTOOL=/path/to/promtool)"
)
def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    """promtool checks alerts.yml and runs deploy/alerts_test.yml (alerts fire when they should)."""
    assert PROMTOOL is not None
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
