"""One archive day through the cluster path: CeleryExecutor, Redis broker, Postgres metadata DB.

api-server, scheduler, dag-processor and two Celery workers: one on the `default` queue, one
on `gpu`, with SMPP_MODEL_QUEUE=gpu so the model tasks must travel through the second queue
(nothing else listens there). Skipped with the reason when Redis or Postgres do not answer.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from smpp.stages import POST_PARTITIONS

sys.path.insert(0, str(Path(__file__).parent))
from airflow_procs import airflow_cluster, backfill, base_env, free_port, query, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample_archive.ndjson.zst"
DAY = "2013-07-30"
POSTGRES = dict(host=os.environ.get("SMPP_TEST_PG_HOST", "127.0.0.1"), port=5432, user="postgres")
REDIS = ("127.0.0.1", 6379)
MODEL_TASKS = {"caption_images", "embed_text", "embed_images", "embed_image_text", "train_model"}
STAGES = list(POST_PARTITIONS)


def _redis_ping() -> None:
    with socket.create_connection(REDIS, timeout=3) as s:
        s.sendall(b"PING\r\n")
        if not s.recv(16).startswith(b"+PONG"):
            raise ConnectionError("no PONG")


@pytest.fixture(scope="module")
def databases():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        _redis_ping()
    except OSError as exc:
        pytest.skip(f"Redis not reachable at {REDIS[0]}:{REDIS[1]}: {exc}")
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **POSTGRES)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES['host']}:{POSTGRES['port']}: {str(exc).strip()}")
    admin.autocommit = True
    name = f"smpp_celery_{uuid.uuid4().hex[:10]}"
    names = {"metadata": name, "warehouse": f"{name}_wh"}
    with admin.cursor() as cur:
        for db in names.values():
            cur.execute(f"CREATE DATABASE {db}")
    base = f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}"
    try:
        yield {k: f"{base}/{db}" for k, db in names.items()}
    finally:
        with admin.cursor() as cur:
            for db in names.values():
                cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def cluster(databases, tmp_path_factory):
    root = tmp_path_factory.mktemp("celery")
    home, data = root / "airflow", root / "data"
    env = base_env(home, data, "CeleryExecutor", databases["metadata"])
    prefix, redis_db = f"smpp-test-{uuid.uuid4().hex[:8]}:", random.randint(1, 15)
    env.update(
        {
            # a random db and key prefix: parallel runs on the same Redis never see each other's queues
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{redis_db}",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": prefix,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + databases["metadata"],
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "SMPP_DATABASE_URL": databases["warehouse"],
            "SMPP_MODEL_QUEUE": "gpu",  # what the compose file's GPU profile sets
        }
    )
    try:
        with airflow_cluster(env, root / "logs") as (components, engine):
            for queue, concurrency in (("default", "2"), ("gpu", "1")):
                worker_env = {
                    **env,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(free_port()),
                }
                components.start(
                    f"worker-{queue}",
                    "celery",
                    "worker",
                    "--queues",
                    queue,
                    "--concurrency",
                    concurrency,
                    "--celery-hostname",
                    f"{queue}-{uuid.uuid4().hex[:6]}@%h",
                    "--pid",
                    str(home / f"worker-{queue}.pid"),
                    env=worker_env,
                )
            # one day as a backfill: `airflow dags trigger -l X` on 3.3.2 infers the data interval from
            # the current time, not from X, so it cannot aim at a historical day
            backfill(env, SAMPLE, DAY, DAY)

            def finished():
                rows = query(engine, "select state from dag_run where dag_id = 'smpp_pipeline'")
                return rows and rows[0].state in ("success", "failed") and rows[0].state

            state = wait_for("the Celery run", finished, components, 1200, interval=5)
            run = query(
                engine, "select run_id, state, data_interval_start from dag_run where dag_id = 'smpp_pipeline'"
            )[0]
            tis = query(
                engine,
                "select task_id, map_index, state, queue, hostname from task_instance where dag_id = 'smpp_pipeline'",
            )
            yield {
                "state": state,
                "run": run,
                "tis": tis,
                "data": data,
                "logs": root / "logs",
                "components": components,
            }
    finally:
        _drop_redis_keys(redis_db, prefix)


def _drop_redis_keys(db: int, prefix: str) -> None:
    import redis

    client = redis.Redis(host=REDIS[0], port=REDIS[1], db=db)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_run_succeeded_through_celery(cluster):
    failed = [(t.task_id, t.map_index, t.state) for t in cluster["tis"] if t.state != "success"]
    assert cluster["state"] == "success" and not failed, failed
    start = cluster["run"].data_interval_start
    start = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
    assert start.date().isoformat() == DAY


def test_model_tasks_ran_on_the_gpu_queue(cluster):
    queues = {t.task_id: t.queue for t in cluster["tis"]}
    assert {t for t, q in queues.items() if q == "gpu"} == MODEL_TASKS
    assert {q for t, q in queues.items() if t not in MODEL_TASKS} == {"default"}
    # the only consumer of `gpu` is the second worker: it must have executed every model task
    gpu_log = (cluster["logs"] / "worker-gpu.log").read_text(errors="replace")
    default_log = (cluster["logs"] / "worker-default.log").read_text(errors="replace")
    for task_id in MODEL_TASKS:
        assert f"task_id='{task_id}'" in gpu_log or f"task_id={task_id}" in gpu_log, task_id
    assert "task_id='scrape_posts'" in default_log or "task_id=scrape_posts" in default_log


def test_day_partitions_written(cluster):
    parts = cluster["data"] / "partitions"
    sizes = {s: len(pd.read_parquet(parts / s / f"ds={DAY}" / "part-0.parquet")) for s in STAGES}
    assert sizes["posts"] == 671
    assert sizes["features"] == sizes["filtered"] > 0
    runs = cluster["data"] / "runs" / f"ds={DAY}"
    assert json.loads((runs / "evaluate_and_publish.json").read_text())["day"] == DAY
