"""The Dockerfile, parsed with Docker's own parser (the `dockerfile` package wraps BuildKit's):
official Airflow 3.3.2 base, the pinned requirements, the project code, and no credentials."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import dockerfile
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALLOWED_SOURCES = {
    "requirements.txt",
    "requirements.lock",
    "pyproject.toml",
    "README.md",
    "scripts/install_visualized_bge.py",
    "src/",
    "dags/",
    "plugins/",
}


@pytest.fixture(scope="module")
def commands():
    return dockerfile.parse_file(str(REPO / "Dockerfile"))


def _pin(name: str) -> str:
    [line] = [ln for ln in (REPO / "requirements.txt").read_text().splitlines() if ln.startswith(f"{name}==")]
    return line.split("==")[1].strip()


def test_base_is_the_official_airflow_image(commands):
    froms = [c for c in commands if c.cmd == "FROM"]
    assert len(froms) == 1
    image = froms[0].value[0]
    airflow, python = _pin("apache-airflow"), f"{sys.version_info.major}.{sys.version_info.minor}"
    assert image == f"apache/airflow:{airflow}-python{python}"  # same Airflow and Python as the venv
    assert airflow == "3.3.2"


def test_copies_only_project_code_never_credentials(commands):
    copies = [c for c in commands if c.cmd in ("COPY", "ADD")]
    assert copies and all(c.cmd == "COPY" for c in copies)  # ADD can fetch URLs and unpack archives
    sources = {src for c in copies for src in c.value[:-1]}
    assert sources <= ALLOWED_SOURCES, sources - ALLOWED_SOURCES
    assert {"src/", "dags/", "plugins/", "requirements.txt"} <= sources
    assert not any("praw" in src or src in (".", "./") for src in sources)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"praw.ini", "**/praw.ini", ".env", ".venv", "data"} <= set(ignored)


def test_installs_requirements_with_the_lock_as_constraints(commands):
    runs = " ".join(" ".join(c.value) for c in commands if c.cmd == "RUN")
    assert re.search(r"pip install .*-r \S*requirements\.txt -c \S*requirements\.lock", runs)
    assert "install_visualized_bge.py" in runs
    # the project installs as a package (console script, package data), its deps already pinned above
    assert re.search(r"pip install .*--no-deps /opt/airflow/smpp\b", runs)


def test_torch_variant_build_arg_matches_compose(commands):
    args = {c.value[0].split("=")[0]: c.value[0].partition("=")[2] for c in commands if c.cmd == "ARG"}
    assert args["TORCH_VARIANT"] == "cpu"
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    for name, service in compose["services"].items():
        for arg, value in (service.get("build") or {}).get("args", {}).items():
            assert arg in args, (name, arg)
            assert value in ("cpu", "cuda"), (name, value)


def test_runs_as_airflow_user_with_the_data_dir(commands):
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users and users[-1] == "airflow"  # the official image's user, never root at run time
    values = [v for c in commands if c.cmd == "ENV" for v in c.value]  # parsed as key, value, key, value...
    env = dict(zip(values[::2], values[1::2]))
    assert env["SMPP_DATA_DIR"] == "/opt/airflow/smpp-data" and "PYTHONPATH" not in env
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    assert compose["x-airflow-env"]["SMPP_DATA_DIR"] == env["SMPP_DATA_DIR"]


def test_installs_the_dump_reading_clis_as_root_then_runs_as_airflow(commands):
    """zstd and grep: the fast archive scan (sources.archive_select) runs them as child processes."""
    runs = [" ".join(c.value) for c in commands if c.cmd == "RUN"]
    assert any(re.search(r"apt-get install .*\bzstd\b.*\bgrep\b", r) for r in runs)
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users[-1] == "airflow"  # the image's tasks never run as root
