"""What a user installs: the license, one version, an image that runs, stop grace periods."""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import streamproc
from streamproc.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_the_license_is_the_one_pyproject_names() -> None:
    """pyproject says Apache-2.0 and LICENSE is its text."""
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    assert "Apache License" in (ROOT / "LICENSE").read_text().splitlines()[1]


def test_the_version_has_one_source() -> None:
    """The installed distribution's version is streamproc.__version__, written once."""
    assert importlib.metadata.version("streamproc") == streamproc.__version__
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()


def test_the_image_runs_the_processor_as_a_non_root_user() -> None:
    """The Dockerfile's default command is `streamproc run`, and its user is not root."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["streamproc"]' in lines and 'CMD ["run"]' in lines


def test_compose_lets_a_processor_finish_its_shutdown_grace() -> None:
    """Each processor's stop_grace_period is longer than the default shutdown grace, so
    Docker does not kill it while it commits its last leads."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    processors = [s for name, s in services.items() if name.startswith("processor")]
    assert processors
    for service in processors:
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > Settings().shutdown_grace_s


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, args = line.strip().partition(" ")
            out.append((keyword.upper(), " ".join(args.split())))
    return out


def test_the_image_is_built_in_two_stages_from_a_pinned_base() -> None:
    """A builder stage makes the wheel and a runtime stage installs it; both start from the
    one base image, pinned to a Python 3.11 patch release (never a floating tag)."""
    instructions = dockerfile_instructions()
    (arg,) = [a for k, a in instructions if k == "ARG" and a.startswith("PYTHON_IMAGE=")]
    base = arg.removeprefix("PYTHON_IMAGE=")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    stages = [a for k, a in instructions if k == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    builder = instructions[: [a for _, a in instructions].index("${PYTHON_IMAGE} AS runtime")]
    assert any(k == "RUN" and "pip wheel" in a and "--no-deps" in a for k, a in builder)


def test_the_runtime_installs_the_wheel_with_every_extra_at_the_constrained_versions() -> None:
    """The runtime stage installs the builder's wheel with the `all` extra and
    constraints.txt, which the build context carries."""
    (install,) = [a for k, a in dockerfile_instructions() if k == "RUN" and "pip install" in a]
    assert "from=builder" in install and "[all]" in install
    assert "source=constraints.txt,target=/tmp/constraints.txt" in install
    assert "--constraint /tmp/constraints.txt" in install
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "!constraints.txt" in ignore and "!streamproc/" in ignore


def test_the_image_checks_its_health_on_the_ops_servers_healthz() -> None:
    """HEALTHCHECK runs python (slim images have no curl) against /healthz on the
    default ops port, a route the ops server serves; its code compiles."""
    (check,) = [a for k, a in dockerfile_instructions() if k == "HEALTHCHECK"]
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    compile(code, "<healthcheck>", "exec")
    assert "/healthz" in code and "STREAMPROC_HTTP_PORT" in code
    assert f"'{Settings().http_port}'" in code
    ops = (ROOT / "streamproc" / "ops" / "http.py").read_text()
    assert 'add_get("/healthz"' in ops


def pyproject() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


def runtime_requirements() -> list[Requirement]:
    """The runtime dependencies and those of every runtime extra (`all`)."""
    project = pyproject()
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("speed", "tracing", "msk"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and canonicalize_name(name) == name, line
            assert name not in pins, f"{name} pinned twice"
            pins[name] = version
    return pins


def test_the_all_extra_is_every_runtime_extra() -> None:
    """`streamproc[all]` (what the image installs) is every extra but bench and dev."""
    extras = pyproject()["optional-dependencies"]
    (all_of,) = [Requirement(r) for r in extras["all"]]
    assert all_of.name == "streamproc"
    assert all_of.extras == set(extras) - {"all", "bench", "dev"}


def test_constraints_pin_every_runtime_requirement_within_its_range() -> None:
    """constraints.txt pins each runtime and extra requirement of pyproject.toml to a
    version its specifier allows, so `pip install -c constraints.txt` can resolve."""
    pins = constraints()
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt lacks {name}"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])


def test_zero_major_dependencies_on_the_hot_path_are_capped() -> None:
    """Each 0.x runtime dependency has an upper bound, so a breaking 0.x minor release is
    not picked up by a fresh install; httpx-aiohttp is among them."""
    uncapped = [
        str(req)
        for req in runtime_requirements()
        if any(s.operator == ">=" and s.version.startswith("0.") for s in req.specifier)
        and not any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier)
    ]
    assert uncapped == []
    (transport,) = [r for r in runtime_requirements() if r.name == "httpx-aiohttp"]
    assert transport.specifier.contains(constraints()["httpx-aiohttp"])
    assert not transport.specifier.contains("0.3.0")


def test_the_package_metadata_says_where_it_lives_and_what_it_runs_on() -> None:
    """pyproject carries the URLs, the license file, classifiers naming each Python the
    CI runs (3.11) and typed; the changelog's top section is this version, dated."""
    project = pyproject()
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(
        project["urls"]
    )
    assert project["license-files"] == ["LICENSE"]
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert "Typing :: Typed" in project["classifiers"]
    assert project["requires-python"] == ">=3.11"
    headings = [
        line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")
    ]
    assert re.fullmatch(
        rf"## {re.escape(streamproc.__version__)} — \d{{4}}-\d{{2}}-\d{{2}}", headings[0]
    ), headings[0]


def test_compose_checks_the_simulators_health_on_its_own_port() -> None:
    """The mock provider serves no ops port, so compose overrides the image's HEALTHCHECK
    with one on the simulator's own port (else it would show unhealthy)."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["mock-provider"]
    port = service["command"][service["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
