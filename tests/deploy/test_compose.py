"""docker-compose.yaml without a Docker engine: the Compose Specification schema, then the
properties the deployment relies on (one environment, one data path, secrets, GPU routing,
startup order).

The schema is the Compose Specification's JSON schema as vendored by check-jsonschema
(`check_jsonschema/builtin_schemas/vendor/compose-spec.json`, Apache-2.0, licence file beside
it in that package): a maintained copy instead of one frozen in this repo.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DATA_DIR = "/opt/airflow/smpp-data"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}
LONG_RUNNING = AIRFLOW_SERVICES - {"airflow-init"}
WORKERS = {"airflow-worker", "airflow-worker-gpu"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a literal $
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str]):
    """What `docker compose config` does to the values before it validates them."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op and op.endswith("-"):
            return interpolate(arg, env) if unset else current
        if op and op.endswith("?"):
            if unset:
                raise KeyError(f"required variable {name} is not set: {arg}")
            return current
        return current or ""

    return _VAR.sub(sub, value)


def load_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, load_env_file(ENV_EXAMPLE))


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_schema_is_the_compose_specification(validator):
    assert validator.schema["title"] == "Compose Specification"
    bad = {"services": {"x": {"image": "a", "depends_on": {"y": {"condition": "sometimes"}}, "bogus_key": 1}}}
    assert len(list(validator.iter_errors(bad))) >= 1  # the schema really rejects things


def test_compose_file_is_valid(validator, raw, compose):
    for name, doc in (("raw", raw), ("interpolated with .env.example", compose)):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{name}: " + "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_required_variables_come_from_env_example(raw):
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", COMPOSE.read_text()))
    assert required and required <= set(load_env_file(ENV_EXAMPLE))
    with pytest.raises(KeyError, match="AIRFLOW_JWT_SECRET"):
        interpolate(raw, {})  # forgetting .env fails loudly, like `docker compose config`


def test_all_services_present(compose):
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis"}


def test_one_environment_for_every_airflow_service(raw, compose):
    shared = compose["x-airflow-env"]
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert shared["SMPP_DATA_DIR"] == DATA_DIR
    assert shared["SMPP_MODEL_QUEUE"] == "default"  # from .env.example; gpu with the gpu profile
    # source auto reads old days from the workers' archive mount: a UI backfill needs no params
    assert shared["SMPP_ARCHIVE_PATH"] == raw["x-archives-volume"]["target"]
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        assert {k: env.get(k) for k in shared} == shared, name
        extra = set(env) - set(shared)
        assert extra <= {"_AIRFLOW_WWW_USER_PASSWORD"}, (name, extra)
        assert service["image"].startswith("smpp-airflow"), name
        assert "build" in service, name
    # the raw file: every airflow service gets it through the anchor, not a copy that can drift
    assert all(
        raw["services"][n]["environment"] is raw["x-airflow-env"]
        or raw["services"][n]["environment"].items() >= raw["x-airflow-env"].items()
        for n in AIRFLOW_SERVICES
    )


def _mounts(service: dict) -> list[dict]:
    return [
        m if isinstance(m, dict) else {"source": m.split(":")[0], "target": m.split(":")[1]}
        for m in service.get("volumes", [])
    ]


def test_data_volume_same_path_on_api_server_and_workers(compose):
    users = {name: [m for m in _mounts(s) if m["source"] == "smpp-data"] for name, s in compose["services"].items()}
    for name in {"airflow-apiserver", "airflow-init", *WORKERS}:
        [mount] = users[name]
        assert mount["target"] == DATA_DIR and mount["type"] == "volume" and not mount.get("read_only"), name
    assert all(m["target"] == DATA_DIR for ms in users.values() for m in ms)
    assert "smpp-data" in compose["volumes"]


def test_praw_ini_is_a_read_only_secret(compose):
    assert compose["secrets"]["praw_ini"]["file"].endswith(("praw.ini", "praw.ini.example"))
    for name, service in compose["services"].items():
        assert not any("praw" in str(m) for m in service.get("volumes", [])), name  # no writable bind
        for secret in service.get("secrets", []):
            assert secret["source"] == "praw_ini" and secret["target"] == "/home/airflow/.config/praw.ini"
            assert secret["mode"] & 0o222 == 0, name  # nobody may write it
    assert {n for n, s in compose["services"].items() if s.get("secrets")} == WORKERS


def test_gpu_worker_takes_the_model_queue(compose):
    gpu, cpu = compose["services"]["airflow-worker-gpu"], compose["services"]["airflow-worker"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu
    assert re.search(r"--queues gpu(\s|$)", gpu["command"]) and re.search(r"--queues default(\s|$)", cpu["command"])
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["TORCH_VARIANT"] == "cuda" and cpu["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert gpu["image"] != cpu["image"]
    # routing is the DAG's: model tasks read SMPP_MODEL_QUEUE, which .env.example documents as gpu
    assert "gpu" in ENV_EXAMPLE.read_text().split("SMPP_MODEL_QUEUE=")[0].splitlines()[-1]


def test_healthchecks_and_startup_order(compose):
    services = compose["services"]
    for name in LONG_RUNNING | {"postgres", "redis"}:
        assert services[name]["healthcheck"]["test"], name
    for name in LONG_RUNNING:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy", name
    for name in WORKERS:  # tasks talk to the execution API on the api-server
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    init = services["airflow-init"]
    assert set(init["depends_on"]) == {"postgres", "redis"} and init["restart"] == "no"
    script = init["command"][-1]
    for step in (
        "airflow db migrate",
        "airflow pools set",
        "get_settings().reddit_pool)')\" 1",
        "passwords.json",
        "smpp prepare-models",
    ):
        assert step in script, step
    # no cycles: a topological order exists
    order, pending = [], {n: set(s.get("depends_on", {})) for n, s in services.items()}
    while pending:
        ready = [n for n, deps in pending.items() if deps <= set(order)]
        assert ready, f"depends_on cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]


def test_scheduler_health_endpoint_is_enabled(compose):
    assert compose["x-airflow-env"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "8974/health" in " ".join(compose["services"]["airflow-scheduler"]["healthcheck"]["test"])
