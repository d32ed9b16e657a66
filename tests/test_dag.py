"""DAG integrity: parses cleanly and cheaply, has the expected stages, wiring and policies."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_TASKS = {
    "scrape_posts", "refresh_scores", "filter_posts", "fetch_images", "caption_images",
    "plan_embed_text", "plan_embed_images", "plan_embed_image_text", "embed_text", "embed_images", "embed_image_text", "build_features", "train_model",
    "evaluate_and_publish",
}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["smpp_pipeline"]


def test_parse_imports_no_heavy_libraries():
    code = (
        "import sys, json; from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(REPO / 'dags')!r});"
        "heavy = [m for m in ('torch', 'tensorflow', 'transformers', 'timm', 'FlagEmbedding', 'praw') if m in sys.modules];"
        "print(json.dumps({'errors': list(b.import_errors), 'dags': list(b.dags), 'heavy': heavy}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=os.environ.copy())
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["heavy"] == []
    assert sorted(result["dags"]) == ["smpp_pipeline", "smpp_scrape_frequent"]


def test_expected_tasks_and_dependencies(dag):
    assert set(dag.task_ids) == EXPECTED_TASKS
    down = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert down["scrape_posts"] == {"refresh_scores"}
    assert down["refresh_scores"] == {"filter_posts"}
    assert down["filter_posts"] == {"fetch_images"}
    assert down["fetch_images"] == {"caption_images"}
    assert down["caption_images"] == {"plan_embed_text", "plan_embed_images", "plan_embed_image_text"}
    for name in ("embed_text", "embed_images", "embed_image_text"):
        assert down[f"plan_{name}"] == {name}
        assert down[name] == {"build_features"}  # the three embeddings run in parallel
        assert "MappedOperator" in type(dag.get_task(name)).__name__  # fanned out over chunks
    assert down["build_features"] == {"train_model"}
    assert down["train_model"] == {"evaluate_and_publish"}


def test_frequent_scrape_dag_policies():
    from airflow.dag_processing.dagbag import DagBag

    frequent = DagBag(dag_folder=str(REPO / "dags")).dags["smpp_scrape_frequent"]
    [task] = frequent.tasks
    assert task.pool == "reddit_api" and task.retries >= 1 and task.execution_timeout is not None
    assert frequent.max_active_runs == 1


def test_policies(dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.max_active_runs == 1 and not dag.catchup
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None and task.execution_timeout <= timedelta(hours=3), task.task_id
    assert {t.task_id for t in dag.tasks if t.pool == "reddit_api"} == {"scrape_posts", "refresh_scores"}
    assert set(dag.params.keys()) >= {"source", "archive_path", "subreddits", "model_profile", "label_age_hours"}
