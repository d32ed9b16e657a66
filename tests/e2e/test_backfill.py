"""Backfill three historical days from a dump, running the stages in the DAG's own order.

In-process (no scheduler), tiny models: checks partitions, rows, labels, and that each day
trains on exactly the labels that had matured by the end of its interval.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from smpp import storage, tasks
from smpp.settings import get_settings
from smpp.stages import POST_PARTITIONS
from smpp.warehouse import Label, Post, session_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DUMP = REPO / "tests" / "data" / "backfill_3days.ndjson.zst"
DAYS = [datetime(2013, 7, 24, tzinfo=UTC) + timedelta(days=i) for i in range(3)]
POSTS_PER_DAY = {"2013-07-24": 236, "2013-07-25": 247, "2013-07-26": 215}


def dag_task_order() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["smpp_pipeline"]
    upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    order: list[str] = []
    while upstream:
        ready = sorted(t for t, ups in upstream.items() if ups <= set(order))
        order += ready
        for t in ready:
            del upstream[t]
    return order


def run_day(order: list[str], start: datetime, params: dict | None) -> dict:
    end = start + timedelta(days=1)
    results: dict = {}
    for task_id in order:
        if task_id == "plan_archive_files":
            results[task_id] = tasks.plan_archive_files(start, end, params)
        elif task_id == "index_archive_file":  # mapped: one call per planned file
            results[task_id] = [
                tasks.index_archive_file(path, start, end, params) for path in results["plan_archive_files"]
            ]
        elif task_id == "evaluate_and_publish":
            results[task_id] = tasks.evaluate_and_publish(start, end, results["train_model"]["version"], params)
        elif task_id.startswith("plan_"):
            results[task_id] = tasks.plan_embedding_chunks(start, end, task_id.removeprefix("plan_"), params)
        elif task_id in tasks.EMBEDDING_STAGES:  # mapped: one call per planned chunk
            results[task_id] = [
                getattr(tasks, task_id)(start, end, params, chunk=i) for i in results[f"plan_{task_id}"]
            ]
        else:
            results[task_id] = getattr(tasks, task_id)(start, end, params)
    return results


@pytest.fixture(scope="module")
def backfill(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("backfill")
    mp.setenv("SMPP_DATA_DIR", str(root / "data"))
    mp.setenv("SMPP_MODEL_PROFILE", "tiny")
    mp.setenv("SMPP_IMAGES__OFFLINE", "true")
    mp.setenv("SMPP_TRAINING__EPOCHS", "3")
    mp.setenv("SMPP_ENCODERS__CHUNK_SIZE", "100")  # several mapped chunks per day
    # what a UI backfill sends is no conf at all: source auto (the default) finds the 2013 days too
    # old for the live API and reads the configured archive
    mp.delenv("SMPP_SOURCE", raising=False)
    mp.setenv("SMPP_ARCHIVE_PATH", str(DUMP))
    # every subreddit of the sample dump (its 40 subreddits hold only 12 posts of the default three)
    mp.setenv("SMPP_SUBREDDITS", '["*"]')
    get_settings.cache_clear()
    order = dag_task_order()
    runs = {day.date().isoformat(): run_day(order, day, None) for day in DAYS}
    yield get_settings(), runs
    mp.undo()
    get_settings.cache_clear()


def test_three_day_partitions_and_rows(backfill):
    settings, runs = backfill
    for stage in POST_PARTITIONS:
        assert [d.isoformat() for d in storage.list_partition_days(settings, stage)] == list(POSTS_PER_DAY), stage
    for day, expected in POSTS_PER_DAY.items():
        assert len(storage.read_partition(settings, "posts", day)) == expected
        scraped = runs[day]["scrape_posts"]
        assert (scraped["source"], scraped["source_requested"]) == ("archive", "auto"), day
        assert runs[day]["refresh_scores"]["skipped"].startswith("archive source"), day
        assert len(storage.read_partition(settings, "features", day)) == runs[day]["filter_posts"]["kept"]
    with session_for(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Post)) == sum(POSTS_PER_DAY.values())
        statuses = Counter(s.scalars(select(Label.status)))
        wrong = s.scalar(
            select(func.count())
            .select_from(Label)
            .join(Post, Post.id == Label.post_id)
            .where(Label.matured_utc != Post.created_utc + 24 * 3600)
        )
    assert statuses == {"archive": sum(POSTS_PER_DAY.values())} and wrong == 0


def test_each_day_trains_on_what_was_knowable(backfill):
    settings, runs = backfill
    first, second, third = (runs[d]["train_model"] for d in POSTS_PER_DAY)
    assert first["skipped_reason"] and "too few labelled rows" in first["skipped_reason"]
    kept = [runs[d]["filter_posts"]["kept"] for d in POSTS_PER_DAY]
    # day N trains on days < N: a label matures 24h after posting, the interval ends at midnight
    assert second["rows"]["labelled"] == kept[0]
    assert third["rows"]["labelled"] == kept[0] + kept[1]
    metrics = json.loads((Path(third["version_dir"]) / "metrics.json").read_text())
    assert metrics["rows"]["train"] > 0 and metrics["model"]["n"] == metrics["rows"]["test"]
    lineage = json.loads((Path(third["version_dir"]) / "lineage.json").read_text())
    assert len(lineage["partitions_read"]) == 3


def test_rerunning_a_backfilled_day_changes_nothing(backfill):
    settings, runs = backfill
    day = DAYS[1]
    before = {s: storage.read_partition(settings, s, day) for s in ("posts", "filtered", "features")}
    run_day(dag_task_order(), day, {"source": "archive", "archive_path": str(DUMP), "subreddits": ["*"]})
    for stage, frame in before.items():
        pd.testing.assert_frame_equal(storage.read_partition(settings, stage, day), frame)
