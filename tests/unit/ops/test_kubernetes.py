"""deploy/kubernetes/: valid against the Kubernetes and CRD schemas, and consistent.

The built-in objects are checked against the JSON schemas ``kubernetes-validate`` bundles
(strict: a field the API does not know fails), for every Kubernetes version it bundles;
the ServiceMonitor against the Prometheus Operator's CRD schema as the
``cloudcoil-models-prometheus-operator`` models carry it (types, patterns, enums), with a
round trip so a field the CRD does not know fails too. Neither needs a cluster or network.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
from kubernetes_validate.utils import all_versions  # type: ignore[import-untyped, unused-ignore]

import streamproc
from streamproc.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
KUBE = ROOT / "deploy" / "kubernetes"
#: Every Kubernetes minor version kubernetes-validate bundles schemas for (1.25 to 1.37 in
#: its 1.37 release): the manifests use nothing newer than policy/v1 and apps/v1.
VERSIONS = sorted(
    {v.rsplit(".", 1)[0] for v in all_versions()}, key=lambda v: tuple(map(int, v.split(".")))
)


def manifests() -> dict[str, dict[str, Any]]:
    """The objects in deploy/kubernetes, by kind (one of each)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in objects, f"two {doc['kind']} objects"
            objects[doc["kind"]] = doc
    return objects


def builtin() -> list[dict[str, Any]]:
    return [doc for kind, doc in manifests().items() if kind != "ServiceMonitor"]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifests()["Deployment"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    c: dict[str, Any] = only
    return c


def settings_from_configmap() -> Settings:
    data = manifests()["ConfigMap"]["data"]
    return Settings.model_validate(
        {name.removeprefix("STREAMPROC_").lower(): value for name, value in data.items()}
    )


def test_the_kustomization_lists_every_manifest() -> None:
    """kubectl apply -k applies every file here, and only those."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert set(manifests()) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_builtin_objects_match_the_kubernetes_schema(version: str) -> None:
    """ConfigMap, Deployment, Service and PodDisruptionBudget validate strictly."""
    for doc in builtin():
        assert kubernetes_validate.validate(doc, version, strict=True) == version


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    """The strict schema is not vacuous: a misspelt probe field fails."""
    doc = copy.deepcopy(manifests()["Deployment"])
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def crd_round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    """The object as the CRD's model reads it: invalid values raise, unknown fields drop."""
    dumped: dict[str, Any] = ServiceMonitor.model_validate(doc).model_dump(
        by_alias=True, exclude_unset=True, mode="json"
    )
    return dumped


def test_the_servicemonitor_matches_its_crd_schema() -> None:
    """The ServiceMonitor validates against the CRD's schema and loses no field doing so."""
    doc = manifests()["ServiceMonitor"]
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert crd_round_trip(doc) == doc


def test_the_crd_check_rejects_bad_values_and_unknown_fields() -> None:
    """A duration the CRD's pattern refuses raises; a misspelt field shows in the diff."""
    bad = copy.deepcopy(manifests()["ServiceMonitor"])
    bad["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(ValueError, match="interval"):
        crd_round_trip(bad)
    typo = copy.deepcopy(manifests()["ServiceMonitor"])
    typo["spec"]["endpoints"][0]["intervall"] = "15s"
    assert crd_round_trip(typo) != typo


def test_the_objects_refer_to_each_other() -> None:
    """Service, PDB, ServiceMonitor and the Deployment select the pods' labels, and the
    port names and numbers line up from the container to the scrape."""
    objects = manifests()
    deployment, service = objects["Deployment"], objects["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    assert objects["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (port,) = container()["ports"]
    assert port["containerPort"] == settings_from_configmap().http_port
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    (endpoint,) = objects["ServiceMonitor"]["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (service_port["name"], "/metrics")
    assert container()["envFrom"] == [
        {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}}
    ]


def test_probes_suit_a_rollout() -> None:
    """Liveness and start-up on /healthz, readiness on /readyz; an old pod stops only once
    a new one is ready, and a disruption takes one pod at a time."""
    c = container()
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}
    strategy = manifests()["Deployment"]["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert manifests()["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_the_termination_grace_outlasts_the_shutdown_grace() -> None:
    """The kubelet's SIGKILL comes at least 10 s after the lanes' grace ends, leaving time
    for the last commits, leaving the group and closing the clients."""
    grace = settings_from_configmap().shutdown_grace_s
    assert pod_spec()["terminationGracePeriodSeconds"] >= grace + 10


def test_every_setting_is_a_real_one_and_the_secret_comes_from_a_secret() -> None:
    """Each STREAMPROC_* name is a Settings field and the values validate; the API key is
    not in the ConfigMap but read from a Secret's key."""
    data = manifests()["ConfigMap"]["data"]
    fields = set(Settings.model_fields)
    for name in data:
        assert name.startswith("STREAMPROC_") and name.removeprefix("STREAMPROC_").lower() in fields
    settings_from_configmap()
    assert "STREAMPROC_PROVIDER_API_KEY" not in data
    (api_key,) = container()["env"]
    assert api_key["name"] == "STREAMPROC_PROVIDER_API_KEY"
    assert set(api_key["valueFrom"]) == {"secretKeyRef"}


def test_pods_run_as_the_images_non_root_user_with_limits() -> None:
    """The pod runs as the Dockerfile's uid, non-root, without privilege escalation or
    capabilities, on a read-only root; requests and limits are set."""
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    image_user = [line.split()[1] for line in dockerfile if line.startswith("USER ")][-1]
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert str(pod["runAsUser"]) == image_user
    security = container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_the_image_tag_is_the_release() -> None:
    """kustomization.yaml deploys the image of streamproc.__version__."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["name"] == container()["image"] == "streamproc"
    assert image["newTag"] == streamproc.__version__
