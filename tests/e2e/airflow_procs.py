"""Start real Airflow components (api-server, scheduler, dag-processor, workers) for a test.

Every component runs in its own process group so the whole tree (LocalExecutor workers,
Celery forks, gunicorn/uvicorn children) can be killed at the end. Ports are free ones,
AIRFLOW_HOME is the test's own: other people run Airflow on this machine at the same time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home: Path, data: Path, executor: str, sql_conn: str) -> dict[str, str]:
    api_port = free_port()
    plugins = home / "plugins"  # empty: these tests are about scheduling, not the UI plugin
    plugins.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "3",  # 2 shared cores: more workers only queue on the CPU
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_conn,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # no "latest interval" run on unpause: only the runs the test creates
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SMPP_DATA_DIR": str(data),
        "SMPP_MODEL_PROFILE": "tiny",
        "SMPP_IMAGES__OFFLINE": "true",
        "SMPP_TRAINING__EPOCHS": "3",
        "SMPP_TASK_RETRIES": "0",  # fail fast: a retry would only hide the error for minutes
    }
    env.pop("SMPP_CONFIG", None)
    env.pop("SMPP_DATABASE_URL", None)
    return env


def airflow_cli(env: dict, *args: str, timeout: int = 300) -> str:
    """Run an airflow CLI command; SQLite answers 'database is locked' while the scheduler writes."""
    for attempt in range(6):
        proc = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0:
            return proc.stdout
        if "database is locked" not in proc.stdout + proc.stderr or attempt == 5:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
        time.sleep(2 + attempt)
    raise AssertionError("unreachable")


class Components:
    """Long-running Airflow processes, each in its own process group, logs under `logs`."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, env: dict | None = None) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            [AIRFLOW, *args], env=env or self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop(self) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # also reaps children that outlived their parent
            proc.wait(timeout=10)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_for(what: str, predicate: Callable[[], object], components: Components, timeout: float, interval: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        components.check_alive()
        try:
            value = predicate()
        except sa.exc.OperationalError:  # SQLite busy while the scheduler writes: ask again
            value = None
        if value:
            return value
        time.sleep(interval)
    tails = "\n".join(f"--- {n}\n{components.tail(n, 1500)}" for n in components.procs)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def metadata_engine(env: dict) -> sa.Engine:
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    return sa.create_engine(url, poolclass=sa.pool.NullPool, **kwargs)


def query(engine: sa.Engine, sql: str, **params) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def dag_serialized(engine: sa.Engine, dag_id: str) -> bool:
    return bool(query(engine, "select 1 from serialized_dag where dag_id = :d", d=dag_id))


def prepare_models(env: dict) -> None:
    # built once up front: otherwise the first mapped tasks of a day race to build them
    subprocess.run(
        [sys.executable, "-m", "smpp", "prepare-models"], env=env, check=True, capture_output=True, timeout=600
    )


@contextmanager
def airflow_cluster(env: dict, logs: Path) -> Iterator[tuple[Components, sa.Engine]]:
    """A migrated metadata DB with the Reddit pool and the models, and api-server, dag-processor and
    scheduler running; yields once smpp_pipeline is serialized and unpaused (backfills wait otherwise)."""
    airflow_cli(env, "db", "migrate")
    pool = subprocess.run(
        [sys.executable, "-c", "from smpp.settings import get_settings; print(get_settings().reddit_pool)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    airflow_cli(env, "pools", "set", pool, "1", "one slot per Reddit OAuth client")
    prepare_models(env)
    components = Components(env, logs)
    engine = metadata_engine(env)
    try:
        for name in ("api-server", "dag-processor", "scheduler"):
            components.start(name, name)
        wait_for("smpp_pipeline serialized", lambda: dag_serialized(engine, "smpp_pipeline"), components, 240)
        airflow_cli(env, "dags", "unpause", "smpp_pipeline")
        yield components, engine
    finally:
        components.stop()
        engine.dispose()


def backfill(env: dict, archive: Path, start: str, end: str, *extra: str) -> None:
    """The README's backfill command: archive source, one run at a time."""
    airflow_cli(
        env,
        "backfill",
        "create",
        "--dag-id",
        "smpp_pipeline",
        "--from-date",
        start,
        "--to-date",
        end,
        "--max-active-runs",
        "1",
        "--dag-run-conf",
        json.dumps({"source": "archive", "archive_path": str(archive), "subreddits": ["*"]}),
        *extra,
    )
