"""DAG integrity: parses cleanly and cheaply, has the expected stages, wiring and policies."""

import copy
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Airflow's dag-processor puts DAGS_FOLDER on sys.path (the DAGs import smpp_dag_defaults); a bare DagBag does not
DAG_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO / "dags"), os.environ.get("PYTHONPATH")))),
}
EXPECTED_TASKS = {
    "plan_archive_files",
    "index_archive_file",
    "scrape_posts",
    "refresh_scores",
    "filter_posts",
    "fetch_images",
    "caption_images",
    "plan_embed_text",
    "plan_embed_images",
    "plan_embed_image_text",
    "embed_text",
    "embed_images",
    "embed_image_text",
    "build_features",
    "train_model",
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
        "heavy = [m for m in ('torch', 'tensorflow', 'transformers', 'timm', 'FlagEmbedding', 'praw') "
        "if m in sys.modules];"
        "print(json.dumps({'errors': list(b.import_errors), 'dags': list(b.dags), 'heavy': heavy}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=DAG_ENV)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["heavy"] == []
    assert sorted(result["dags"]) == ["smpp_pipeline", "smpp_score_champion", "smpp_scrape_frequent"]


def test_expected_tasks_and_dependencies(dag):
    assert set(dag.task_ids) == EXPECTED_TASKS
    down = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert down["plan_archive_files"] == {"index_archive_file"}
    assert down["index_archive_file"] == {"scrape_posts"}  # one mapped scan per dump file
    assert "MappedOperator" in type(dag.get_task("index_archive_file")).__name__
    assert dag.get_task("scrape_posts").trigger_rule == "none_failed"  # runs when there is nothing to scan
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


MODEL_TASKS = {"caption_images", "embed_text", "embed_images", "embed_image_text", "train_model"}


def test_model_tasks_follow_the_model_queue():
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(REPO / 'dags')!r});"
        "print(json.dumps({t.task_id: t.queue for t in b.dags['smpp_pipeline'].tasks}))"
    )
    env = {**DAG_ENV, "SMPP_MODEL_QUEUE": "gpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    queues = json.loads(out.stdout.strip().splitlines()[-1])
    assert {t for t, q in queues.items() if q == "gpu"} == MODEL_TASKS
    assert {q for t, q in queues.items() if t not in MODEL_TASKS} == {"default"}


def test_docs_on_dag_and_every_task(dag):
    assert "Backfill" in dag.doc_md and "Assets" in dag.doc_md
    for task in dag.tasks:
        assert task.doc_md and len(task.doc_md) > 40, task.task_id


def test_params_render_as_a_trigger_form(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    for name, param in dag.params.items():
        schema = param.schema
        assert schema.get("title") and param.description, name
        assert "null" in schema["type"], name  # every field may stay empty (settings apply)
        if "enum" in schema:
            assert None in schema["enum"], name  # the UI renders a nullable select only with None listed
    assert dag.params.validate() == dict.fromkeys(dag.params.keys())
    # what the api-server renders: the params survive serialization with their schema
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert restored.params.get_param("source").schema["enum"] == [None, "auto", "reddit", "archive"]


def test_empty_params_say_what_they_default_to(dag):
    """An empty field shows "null" (a select: the option "null"); its description, and a select's label
    for null, must say which setting applies and its default."""
    from airflow.serialization.serialized_objects import DagSerialization

    from smpp.settings import Settings

    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    for name, param in dag.params.items():
        if param.value is not None:
            continue
        assert "Empty: SMPP_" in param.description and "(default " in param.description, name
        if "enum" not in param.schema:
            continue
        default = Settings.model_fields[name].default
        assert f"(default {default})" in param.description, name
        # the 3.3 UI labels an option values_display["null"] (or ["None"]); the key survives serialization
        labels = restored.params.get_param(name).schema.get("values_display") or {}
        label = labels.get("null", labels.get("None"))
        assert label and f"default {default}" in label, name
    assert Settings.model_fields["source"].default == "auto"  # a backfill with conf null needs no source


def test_params_accept_backfill_conf_and_reject_nonsense(dag):
    from airflow.sdk.definitions.param import ParamsDict

    def validate(conf):
        # copies: update() sets the value on the Param objects themselves, which are the DAG's
        params = ParamsDict(copy.deepcopy(dict(dag.params.items())))
        params.update(conf)
        return params.validate()

    ok = validate(
        {
            "source": "archive",
            "archive_path": "/data/RS_2013-07.zst",
            "model_profile": "tiny",
            "subreddits": ["pics", "aww"],
            "train_window_days": 30,
        }
    )
    assert ok["source"] == "archive" and ok["subreddits"] == ["pics", "aww"]
    assert validate({"source": "auto"})["source"] == "auto"
    assert validate({})["source"] is None  # a backfill sends no conf: SMPP_SOURCE (auto) applies
    for bad in (
        {"source": "pushshift"},
        {"model_profile": "huge"},
        {"train_window_days": 0},
        {"subreddits": "pics"},
        {"label_age_hours": "a day"},
    ):
        with pytest.raises(Exception, match="Invalid input|not valid|ParamValidationError"):
            validate(bad)


def test_assets_declared_by_the_stages(dag):
    sys.path.insert(0, str(REPO / "dags"))
    from smpp_assets import CHAMPION, CHAMPION_ALIAS, FEATURES, MODEL_VERSIONS

    outlets = {t.task_id: list(t.outlets) for t in dag.tasks if t.outlets}
    assert outlets == {"build_features": [FEATURES], "evaluate_and_publish": [MODEL_VERSIONS, CHAMPION_ALIAS]}
    # the champion is never a plain outlet: that would announce every rejected model too
    assert not any(CHAMPION in t.outlets for t in dag.tasks)


def test_scoring_dag_runs_on_a_new_champion():
    from airflow.dag_processing.dagbag import DagBag

    sys.path.insert(0, str(REPO / "dags"))
    from smpp_assets import CHAMPION

    score = DagBag(dag_folder=str(REPO / "dags")).dags["smpp_score_champion"]
    assert list(score.timetable.asset_condition.objects) == [CHAMPION]
    assert [t.task_id for t in score.tasks] == ["score_with_champion"]


@pytest.mark.parametrize("promoted", [True, False])
def test_champion_asset_emitted_only_on_promotion(promoted):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    sys.path.insert(0, str(REPO / "dags"))
    from smpp_assets import CHAMPION, CHAMPION_ALIAS, MODEL_VERSIONS, emit_publish_events

    events = OutletEventAccessors()  # the accessor the task runner passes as `outlet_events`
    result = {"version": "20130726T000000-abc", "promoted": promoted, "day": "2013-07-26", "reason": "x"}
    assert emit_publish_events(events, result) is promoted
    assert events[MODEL_VERSIONS].extra == {"version": result["version"], "promoted": promoted, "day": "2013-07-26"}
    alias_events = events[CHAMPION_ALIAS].asset_alias_events
    if promoted:
        [event] = alias_events
        assert event.dest_asset_key.name == CHAMPION.name and event.extra["version"] == result["version"]
    else:
        assert alias_events == []
