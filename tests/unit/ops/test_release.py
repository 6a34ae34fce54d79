"""What a user installs: the license, one version, an image that runs, stop grace periods."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import yaml

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
