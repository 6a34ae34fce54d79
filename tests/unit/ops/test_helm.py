"""deploy/helm/streamproc: the chart renders, and what it renders is valid and consistent.

The chart is rendered by scripts/chartcheck (Go's text/template with sprig and Helm's own
functions, as Helm renders it; it also lints Chart.yaml and each document), with the default
values and with deploy/helm/streamproc/ci/full-values.yaml (KEDA, PrometheusRule,
ServiceMonitor, SASL). The objects are then checked as deploy/kubernetes's are
(tests/unit/ops/test_kubernetes.py): built-in kinds against the Kubernetes JSON schemas,
strictly, for every version bundled; the Prometheus Operator and KEDA objects against their
CRDs' schemas as the cloudcoil models carry them, with a round trip. scripts/chart-check
builds the renderer and runs this module (CI does, beside the tests); elsewhere, without
STREAMPROC_CHARTCHECK, it is skipped and says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor
from kubernetes_validate.utils import all_versions  # type: ignore[import-untyped, unused-ignore]

import streamproc
from streamproc.settings import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "streamproc"
FULL = CHART / "ci" / "full-values.yaml"
RENDERER = os.environ.get("STREAMPROC_CHARTCHECK", "")
VERSIONS = sorted(
    {v.rsplit(".", 1)[0] for v in all_versions()}, key=lambda v: tuple(map(int, v.split(".")))
)
CRDS: dict[str, Any] = {
    "ServiceMonitor": ServiceMonitor,
    "PrometheusRule": PrometheusRule,
    "ScaledObject": ScaledObject,
}

if not RENDERER:
    pytest.skip(
        "STREAMPROC_CHARTCHECK unset: scripts/chart-check builds the chart renderer and runs "
        "these tests (CI runs it)",
        allow_module_level=True,
    )


def run_renderer(chart: Path, *values: Path) -> subprocess.CompletedProcess[str]:
    args = [RENDERER]
    for path in values:
        args += ["-f", str(path)]
    return subprocess.run([*args, str(chart)], capture_output=True, text=True, check=False)


@functools.cache
def render(*values: Path) -> dict[str, dict[str, Any]]:
    """The chart's objects with those values over the defaults, by kind (one of each)."""
    done = run_renderer(CHART, *values)
    assert done.returncode == 0, done.stderr
    objects: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(done.stdout):
        assert doc["kind"] not in objects, f"two {doc['kind']} objects"
        objects[doc["kind"]] = doc
    return objects


SCENARIOS = {"defaults": (), "full": (FULL,)}


def container(objects: dict[str, dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    (only,) = objects[kind]["spec"]["template"]["spec"]["containers"]
    c: dict[str, Any] = only
    return c


def config(objects: dict[str, dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = objects["ConfigMap"]["data"]
    return data


def settings(objects: dict[str, dict[str, Any]]) -> Settings:
    """The processors' settings: the ConfigMap's, and a stand-in for each secret env var."""
    env = dict(config(objects))
    env.update({e["name"]: "from-the-secret" for e in container(objects)["env"]})
    return Settings.model_validate(
        {name.removeprefix("STREAMPROC_").lower(): v for name, v in env.items()}
    )


def test_the_chart_renders_each_object_when_its_values_ask() -> None:
    """Defaults: the processors, their settings, Service, PDB and the topics Job; the full
    values add the ServiceMonitor, the PrometheusRule and KEDA's ScaledObject."""
    always = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Job"}
    assert set(render()) == always
    assert set(render(FULL)) == always | set(CRDS)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_builtin_objects_match_the_kubernetes_schema(scenario: str, version: str) -> None:
    """Every built-in object of each rendering validates strictly (an unknown field fails)."""
    for kind, doc in render(*SCENARIOS[scenario]).items():
        if kind not in CRDS:
            assert kubernetes_validate.validate(doc, version, strict=True) == version


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_custom_resources_match_their_crd_schema(kind: str) -> None:
    """ServiceMonitor, PrometheusRule and ScaledObject validate against their CRD's schema
    and lose no field doing so (a field the CRD does not know would be dropped)."""
    doc = render(FULL)[kind]
    dumped = (
        CRDS[kind].model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
    )
    assert dumped == doc


def test_the_prometheus_rule_is_deploy_alerts_yml() -> None:
    """The PrometheusRule's groups are deploy/alerts.yml's, rule for rule, with the labels
    the values give for the Prometheus that selects it."""
    rule = render(FULL)["PrometheusRule"]
    alerts = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    assert rule["spec"] == {"groups": alerts["groups"]}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (CHART / "files" / "alerts.yml").resolve() == (ROOT / "deploy" / "alerts.yml")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_setting_is_real_and_every_secret_comes_from_the_secret(scenario: str) -> None:
    """Each STREAMPROC_* name in the ConfigMap is a setting and they validate together; no
    secret setting is in it; each secret env var is a secret setting read from
    existingSecret's key, and values.yaml has a key slot for every secret setting."""
    objects = render(*SCENARIOS[scenario])
    fields = set(Settings.model_fields)
    names = {n.removeprefix("STREAMPROC_").lower() for n in config(objects)}
    assert names <= fields - SECRET_FIELDS
    settings(objects)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["secretKeys"]) == SECRET_FIELDS
    for env in container(objects)["env"]:
        assert env["name"].removeprefix("STREAMPROC_").lower() in SECRET_FIELDS
        assert env["valueFrom"]["secretKeyRef"]["name"] == values["existingSecret"]
    assert container(objects)["envFrom"] == [
        {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}}
    ]


def test_the_common_values_reach_the_settings() -> None:
    """Bootstrap servers, group, provider, budget and SASL user from values, and any other
    setting through `config`, become the processors' settings."""
    s = settings(render(FULL))
    assert s.bootstrap_servers == "kafka-bootstrap.kafka.svc:9092"
    assert (s.group_id, s.provider, s.budget_daily_credits) == ("streamproc", "http", 500)
    assert (s.sasl_username, s.topic_raw, s.start_offset) == ("streamproc", "crm.leads", "earliest")
    secret_envs = {e["name"] for e in container(render(FULL))["env"]}
    assert secret_envs == {"STREAMPROC_PROVIDER_API_KEY", "STREAMPROC_SASL_PASSWORD"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_topics_job_is_a_hook_with_the_processors_settings(scenario: str) -> None:
    """The Job runs `topics create` before install and upgrade, with the same settings as
    the ConfigMap (given directly: a hook runs before the ConfigMap exists) and secrets."""
    objects = render(*SCENARIOS[scenario])
    job = objects["Job"]
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert hooks == ["pre-install", "pre-upgrade"]
    c = container(objects, "Job")
    assert c["args"] == ["topics", "create"]
    plain = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    assert plain == config(objects)
    secret = [e for e in c["env"] if "valueFrom" in e]
    assert secret == container(objects)["env"]
    assert c["image"] == container(objects)["image"]


def test_keda_scales_the_deployment_on_the_groups_lag() -> None:
    """The ScaledObject targets the Deployment with the kafka scaler on the group and input
    topic of the settings; with KEDA on, the Deployment leaves replicas to it."""
    objects = render(FULL)
    scaled = objects["ScaledObject"]["spec"]
    s = settings(objects)
    assert scaled["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert (meta["bootstrapServers"], meta["consumerGroup"], meta["topic"]) == (
        s.bootstrap_servers,
        s.group_id,
        s.topic_raw,
    )
    assert meta["offsetResetPolicy"] == s.start_offset == "earliest"
    assert "replicas" not in objects["Deployment"]["spec"]
    assert render()["Deployment"]["spec"]["replicas"] == 3


def test_the_image_is_the_release_and_runs_as_the_images_user() -> None:
    """The image tag defaults to appVersion, which is streamproc.__version__; the pods run
    as the Dockerfile's non-root uid with the manifests' probes and a grace that outlasts
    the shutdown grace."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == streamproc.__version__
    objects = render()
    assert container(objects)["image"] == f"streamproc:{streamproc.__version__}"
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    image_user = [line.split()[1] for line in dockerfile if line.startswith("USER ")][-1]
    for kind in ("Deployment", "Job"):
        pod = objects[kind]["spec"]["template"]["spec"]["securityContext"]
        assert (pod["runAsNonRoot"], str(pod["runAsUser"])) == (True, image_user)
    c = container(objects)
    probes = {p: c[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/healthz", "port": "http"},
        "livenessProbe": {"path": "/healthz", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
    }
    (port,) = c["ports"]
    assert port["containerPort"] == settings(objects).http_port
    grace = objects["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= settings(objects).shutdown_grace_s + 10


def test_the_renderer_refuses_a_broken_chart(tmp_path: Path) -> None:
    """The lint is not vacuous: a chart version that is not SemVer, or a template reading a
    value that does not exist, fails the render with the reason."""
    chart = tmp_path / "streamproc"
    shutil.copytree(CHART, chart, symlinks=False)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("version: 0.2.0", "version: latest", 1))
    done = run_renderer(chart)
    assert done.returncode == 1 and "SemVer" in done.stderr
    shutil.copy(CHART / "Chart.yaml", meta)
    service = chart / "templates" / "service.yaml"
    service.write_text(service.read_text().replace(".Values.service.port", ".Values.service.prot"))
    done = run_renderer(chart)
    assert done.returncode == 1 and "prot" in done.stderr
