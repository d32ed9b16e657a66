"""The package as pip builds it: pins equal to requirements.txt, the `smpp` script, the data files."""

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirement_sections() -> tuple[list[str], list[str]]:
    """requirements.txt split at its "# tests" comment: (runtime, test) requirement lines."""
    runtime: list[str] = []
    test: list[str] = []
    current = runtime
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() == "# tests":
            current = test
        elif line.strip() and not line.startswith("#"):
            current.append(line.split("#")[0].strip())
    return runtime, test


def _names(requirements: list[str]) -> list[str]:
    return [re.split(r"[=<>!~\[ ]", r, maxsplit=1)[0].lower() for r in requirements]


def test_pyproject_dependencies_are_the_runtime_pins_of_requirements_txt():
    runtime, test = _requirement_sections()
    assert PYPROJECT["project"]["dependencies"] == runtime
    assert PYPROJECT["project"]["optional-dependencies"]["test"] == test
    assert not set(_names(runtime)) & set(_names(test))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a copy of what the Dockerfile copies: setuptools writes build/ and *.egg-info next to the sources
    tree = tmp_path_factory.mktemp("tree")
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    # no build isolation and no deps: builds from the venv's setuptools, offline, in seconds
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = out.glob("smpp-*.whl")
    return built


def test_wheel_carries_every_module_the_script_and_the_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(REPO / "src")) for p in (REPO / "src" / "smpp").rglob("*.py")}
    assert sources <= names, sorted(sources - names)[:5]
    configs = {str(p.relative_to(REPO / "src")) for p in (REPO / "src/smpp/encoders/eva_clip_configs").glob("*.json")}
    assert configs and configs <= names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "smpp = smpp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "dags/", "benchmarks/")) for n in names)


def test_installed_wheel_runs_the_cli_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # only the installed copy on the path (not src/): what the Docker image runs
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import smpp, smpp.cli, sys; print(smpp.__file__); sys.argv=['smpp','--help']; smpp.cli.main()",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith(str(target))
    assert "predict" in done.stdout and "evaluate" in done.stdout
