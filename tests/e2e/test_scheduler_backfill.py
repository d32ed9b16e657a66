"""`airflow backfill create` through a real scheduler and dag-processor (LocalExecutor, SQLite).

The documented path, as a user runs it: unpause, backfill three archive days with
`--max-active-runs 1`, then re-run one of them with `--reprocess-behavior completed`.
Checks the runs never overlap (task instance start/end times), every day has its
partitions, the assets got their events, and the re-run changed no data.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from smpp.stages import POST_PARTITIONS

sys.path.insert(0, str(Path(__file__).parent))
from airflow_procs import airflow_cluster, backfill, base_env, query, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DUMP = REPO / "tests" / "data" / "backfill_3days.ndjson.zst"
DAYS = ["2013-07-24", "2013-07-25", "2013-07-26"]
POSTS_PER_DAY = {"2013-07-24": 236, "2013-07-25": 247, "2013-07-26": 215}
DATA_STAGES = list(POST_PARTITIONS)


def backfill_done(engine: sa.Engine, count: int) -> bool:
    rows = query(engine, "select completed_at from backfill where dag_id = 'smpp_pipeline'")
    return len(rows) == count and all(r.completed_at is not None for r in rows)


def data_snapshot(data: Path) -> dict:
    frames = {
        (stage, day): pd.read_parquet(data / "partitions" / stage / f"ds={day}" / "part-0.parquet")
        for stage in DATA_STAGES
        for day in DAYS
    }
    engine = sa.create_engine(f"sqlite:///{data / 'warehouse.sqlite'}", poolclass=sa.pool.NullPool)
    counts = {
        t: query(engine, f"select count(*) as n from {t}")[0].n
        for t in ("posts", "post_snapshots", "labels", "authors", "author_snapshots", "tombstones")
    }
    return {"frames": frames, "counts": counts}


def _ts(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("scheduler_backfill")
    home, data = root / "airflow", root / "data"
    env = base_env(home, data, "LocalExecutor", f"sqlite:///{home / 'airflow.db'}")
    with airflow_cluster(env, root / "logs") as (components, engine):
        backfill(env, DUMP, DAYS[0], DAYS[-1])
        wait_for("the 3-day backfill", lambda: backfill_done(engine, 1), components, 1500, interval=5)
        first = data_snapshot(data)
        runs_first = query(
            engine, "select run_id, logical_date, state from dag_run where run_type = 'backfill' order by logical_date"
        )
        tis = query(
            engine,
            "select dr.logical_date, ti.task_id, ti.state, ti.start_date, ti.end_date, ti.try_number "
            "from task_instance ti join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id "
            "where dr.run_type = 'backfill'",
        )
        backfill(env, DUMP, DAYS[1], DAYS[1], "--reprocess-behavior", "completed")
        wait_for("the re-run of 2013-07-25", lambda: backfill_done(engine, 2), components, 900, interval=5)
        yield {
            "env": env,
            "engine": engine,
            "data": data,
            "first": first,
            "runs": runs_first,
            "tis": tis,
            "second": data_snapshot(data),
            "logs": root / "logs",
        }


def test_backfill_created_one_successful_run_per_day(cluster):
    runs = cluster["runs"]
    assert [_ts(r.logical_date).date().isoformat() for r in runs] == DAYS
    assert [r.state for r in runs] == ["success"] * 3, [tuple(r) for r in runs]
    states = {(r.task_id, r.state) for r in cluster["tis"]}
    # the dump is scanned once, by the first day: later days map index_archive_file over no file
    scans = {s for t, s in states if t == "index_archive_file"}
    assert "success" in scans and scans <= {"success", "skipped"}, sorted(states)
    assert {s for t, s in states if t != "index_archive_file"} == {"success"}, sorted(states)


def test_runs_never_overlap(cluster):
    spans: dict[str, list[datetime]] = {}
    for ti in cluster["tis"]:
        if ti.start_date is None or ti.end_date is None:  # a skipped index_archive_file (nothing to scan) never started
            continue
        day = _ts(ti.logical_date).date().isoformat()
        lo, hi = spans.setdefault(day, [_ts(ti.start_date), _ts(ti.end_date)])
        spans[day] = [min(lo, _ts(ti.start_date)), max(hi, _ts(ti.end_date))]
    ordered = [spans[d] for d in DAYS]
    for (_, end_prev), (start_next, _) in zip(ordered, ordered[1:]):
        assert start_next >= end_prev, ordered  # max_active_runs=1 held: a day starts after the last ended


def test_three_day_partitions(cluster):
    frames = cluster["first"]["frames"]
    for day, posts in POSTS_PER_DAY.items():
        assert len(frames[("posts", day)]) == posts
        assert len(frames[("features", day)]) == len(frames[("filtered", day)]) > 0
    # each day trained on the days before it: the third day saw two days of labels
    third = json.loads((cluster["data"] / "runs" / f"ds={DAYS[2]}" / "train_model.json").read_text())
    assert third["rows"]["labelled"] == len(frames[("filtered", DAYS[0])]) + len(frames[("filtered", DAYS[1])])


def test_assets_got_events(cluster):
    engine = cluster["engine"]
    events = query(engine, "select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id")
    by_asset: dict[str, list[dict]] = {}
    for e in events:
        extra = e.extra if isinstance(e.extra, dict) else json.loads(e.extra or "{}")
        by_asset.setdefault(e.name, []).append(extra)
    # 3 days + the re-run day
    assert sorted(x["day"] for x in by_asset["smpp_features"]) == sorted([*DAYS, DAYS[1]])
    assert len(by_asset["smpp_model_versions"]) == 4
    promoted = [x["version"] for x in by_asset["smpp_model_versions"] if x["promoted"]]
    assert sorted(x["version"] for x in by_asset.get("smpp_champion", [])) == sorted(promoted)


def test_reprocess_completed_changes_nothing(cluster):
    rerun = [
        t
        for t in query(
            cluster["engine"],
            "select ti.task_id, ti.try_number from task_instance ti "
            "join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id "
            "where dr.run_type = 'backfill' and ti.task_id = 'scrape_posts'",
        )
    ]
    assert sorted(t.try_number for t in rerun) == [1, 1, 2]  # the day really ran again
    first, second = cluster["first"], cluster["second"]
    assert second["counts"] == first["counts"]
    for key, frame in first["frames"].items():
        pd.testing.assert_frame_equal(second["frames"][key], frame, obj=str(key))


def test_scoring_dag_scores_with_a_trained_version(cluster, monkeypatch):
    """The consumer DAG's task, fed the event a promotion would emit, on a model this backfill trained."""
    from types import SimpleNamespace

    from airflow.dag_processing.dagbag import DagBag

    from smpp.settings import get_settings

    sys.path.insert(0, str(REPO / "dags"))
    from smpp_assets import CHAMPION

    train = json.loads((cluster["data"] / "runs" / f"ds={DAYS[2]}" / "train_model.json").read_text())
    assert train["skipped_reason"] is None
    monkeypatch.setenv("SMPP_DATA_DIR", str(cluster["data"]))
    monkeypatch.setenv("SMPP_MODEL_PROFILE", "tiny")
    monkeypatch.setenv("SMPP_IMAGES__OFFLINE", "true")
    monkeypatch.delenv("SMPP_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        task = DagBag(dag_folder=str(REPO / "dags")).dags["smpp_score_champion"].get_task("score_with_champion")
        event = SimpleNamespace(extra={"version": train["version"], "promoted": True, "day": DAYS[2]})
        result = task.python_callable(triggering_asset_events={CHAMPION: [event]})
    finally:
        get_settings.cache_clear()
    scores = pd.read_parquet(result["partition"])
    assert len(scores) == len(cluster["first"]["frames"][("features", DAYS[2])]) == result["rows"] > 0
    assert scores["predicted_log1p_score"].notna().all() and set(scores["model_version"]) == {train["version"]}
