"""The whole DAG, twice plus a re-run, with `airflow dags test` against the fake Reddit API.

Day 1 (2013-07-30) is backfilled from the bundled archive sample; day 2 (2013-07-31) is
scraped live through PRAW from the fake API serving the same sample. Tiny models keep it fast.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from smpp.devtools.fake_reddit import FakeRedditServer, load_posts
from smpp.stages import POST_PARTITIONS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample_archive.ndjson.zst"
AIRFLOW = Path(sys.executable).parent / "airflow"
STAGES = list(POST_PARTITIONS)
ARCHIVE_DAY, LIVE_DAY = "2013-07-30", "2013-07-31"


def dags_test(env: dict, interval_end: str, conf: dict, log: Path) -> None:
    # `airflow dags test DAG X` runs the interval ending at X
    cmd = [str(AIRFLOW), "dags", "test", "smpp_pipeline", interval_end, "-c", json.dumps(conf)]
    with log.open("w") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=1200)
    output = log.read_text()
    assert proc.returncode == 0, output[-6000:]
    assert "failed" not in [line.split("state=")[-1].strip() for line in output.splitlines() if "state=" in line]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    posts = load_posts(SAMPLE)
    with FakeRedditServer(
        posts, client_id="e2e-id", client_secret="e2e-secret", rate_limit_per_window=1_000_000
    ) as fake:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(REPO / "src"),
            "SMPP_DATA_DIR": str(root / "data"),
            "SMPP_MODEL_PROFILE": "tiny",
            "SMPP_SUBREDDITS": json.dumps(sorted({p["subreddit"] for p in posts})),
            "SMPP_REDDIT__CLIENT_ID": "e2e-id",
            "SMPP_REDDIT__CLIENT_SECRET": "e2e-secret",
            "SMPP_REDDIT__OAUTH_URL": fake.base_url,
            "SMPP_REDDIT__REDDIT_URL": fake.base_url,
            "SMPP_REDDIT__SHORT_URL": fake.base_url,
            "SMPP_IMAGES__ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]',
            "SMPP_IMAGES__OFFLINE": "true",
            "SMPP_TRAINING__EPOCHS": "5",
            "SMPP_ENCODERS__CHUNK_SIZE": "200",  # several mapped tasks per embedding stage
            "SMPP_TASK_RETRIES": "0",  # fail fast: a retry would only hide the error for minutes
        }
        env.pop("SMPP_CONFIG", None)
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        logs = root / "logs"
        logs.mkdir()
        dags_test(env, "2013-07-31", {"source": "archive", "archive_path": str(SAMPLE)}, logs / "archive.log")
        dags_test(env, "2013-08-01", {"source": "reddit"}, logs / "live.log")
        data = root / "data"
        first = snapshot(data)
        dags_test(env, "2013-08-01", {"source": "reddit"}, logs / "live-rerun.log")
        fixed = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "dags_test_dates.py"), "smpp_pipeline"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        yield {
            "data": data,
            "first": first,
            "second": snapshot(data),
            "fake": fake,
            "logs": logs,
            "airflow_db": root / "airflow" / "airflow.db",
            "dates_fixed": fixed.stdout,
        }


def snapshot(data: Path) -> dict:
    engine = create_engine(f"sqlite:///{data / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        counts = {
            t: conn.execute(text(f"select count(*) from {t}")).scalar()
            for t in ("posts", "post_snapshots", "labels", "authors", "author_snapshots", "tombstones")
        }
    engine.dispose()
    parts = {}
    for stage in STAGES:
        for day in (ARCHIVE_DAY, LIVE_DAY):
            path = data / "partitions" / stage / f"ds={day}" / "part-0.parquet"
            parts[(stage, day)] = len(pd.read_parquet(path)) if path.exists() else None
    return {"counts": counts, "parts": parts}


def test_dags_test_runs_get_their_real_start_date(pipeline):
    """apache/airflow#66127: dags test stores start_date = logical date (a 2013 day ran "4871d");
    scripts/dags_test_dates.py, run by make demo, gives each run its first task's start."""
    from datetime import datetime

    engine = create_engine(f"sqlite:///{pipeline['airflow_db']}")
    with engine.connect() as conn:
        runs = conn.execute(
            text("select logical_date, start_date, end_date from dag_run where dag_id = 'smpp_pipeline'")
        ).all()
    engine.dispose()
    # the re-run of the live day reuses its run: two runs, both corrected
    assert len(runs) == 2 and "corrected the start date of 2" in pipeline["dates_fixed"]
    for logical, started, ended in runs:
        started, ended = datetime.fromisoformat(str(started)), datetime.fromisoformat(str(ended))
        assert started.year >= 2026 and str(logical).startswith("2013-")
        assert 0 < (ended - started).total_seconds() < 3600  # the run's real duration, not 13 years


def test_warehouse_rows(pipeline):
    counts = pipeline["first"]["counts"]
    # both days of the sample, each post once; the live API shows 2 posts of deleted accounts,
    # which are tombstoned on sight instead of stored
    assert counts["posts"] == 671 + 719 and counts["tombstones"] == 2
    assert counts["labels"] >= 671  # archive labels of day 1 (+ late labels of the live day)
    assert counts["post_snapshots"] >= 719  # live posts get a snapshot with their observation time
    assert counts["authors"] > 0 and counts["author_snapshots"] == counts["authors"]


def test_every_stage_wrote_both_days(pipeline):
    parts = pipeline["first"]["parts"]
    missing = [k for k, v in parts.items() if v is None]
    assert not missing
    assert parts[("posts", ARCHIVE_DAY)] == 671 and parts[("posts", LIVE_DAY)] == 719
    assert parts[("features", LIVE_DAY)] == parts[("filtered", LIVE_DAY)] > 0
    assert parts[("image_embeddings", LIVE_DAY)] > 50  # the fake serves real images for image posts


def test_model_trained_loads_and_predicts(pipeline):
    from smpp.training import load_model, predict_frame

    runs = pipeline["data"] / "runs" / f"ds={LIVE_DAY}"
    train = json.loads((runs / "train_model.json").read_text())
    assert train["skipped_reason"] is None and train["rows"]["train"] > 100
    version_dir = Path(train["version_dir"])
    metrics = json.loads((version_dir / "metrics.json").read_text())
    for name in ("model", "baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge"):
        for key in ("spearman", "mae", "rmse"):
            assert math.isfinite(metrics[name][key]), (name, key)
    features = pd.read_parquet(pipeline["data"] / "partitions" / "features" / f"ds={LIVE_DAY}" / "part-0.parquet")
    predictions = predict_frame(load_model(version_dir), features)
    assert len(predictions) == len(features) and pd.Series(predictions).notna().all()
    publish = json.loads((runs / "evaluate_and_publish.json").read_text())
    assert publish["version"] == train["version"] and isinstance(publish["promoted"], bool)


def test_rerun_changes_nothing(pipeline):
    assert pipeline["second"] == pipeline["first"]


def test_rerun_runs_no_forward_pass(pipeline):
    runs = pipeline["data"] / "runs" / f"ds={LIVE_DAY}"
    for stage in ("caption_images", "embed_text", "embed_images", "embed_image_text"):
        assert json.loads((runs / f"{stage}.json").read_text())["cache_misses"] == 0, stage


def test_embeddings_ran_as_mapped_chunks(pipeline):
    runs = pipeline["data"] / "runs" / f"ds={LIVE_DAY}"
    assert json.loads((runs / "embed_text.json").read_text())["chunks"] == 4  # 648 titles / 200
    assert json.loads((runs / "embed_images.json").read_text())["chunks"] == 2  # 275 images / 200
    assert not (pipeline["data"] / "partitions" / "_chunks" / "text_embeddings" / f"ds={LIVE_DAY}").exists()


def test_dag_and_smpp_predict_build_identical_rows_and_predictions(pipeline, monkeypatch):
    """Train/serve skew: the DAG's feature rows (build_features) against `smpp predict` on the same posts."""
    from smpp import settings as settings_module
    from smpp.features.schema import EMBEDDING_COLUMNS
    from smpp.images.gallery import primary_images
    from smpp.lifecycle.predict import feature_frame, history_frame, predict_lines, read_lines, resolve_authors
    from smpp.training import load_model, predict_frame

    data = pipeline["data"]
    part = data / "partitions"
    dag_rows = pd.read_parquet(part / "features" / f"ds={LIVE_DAY}" / "part-0.parquet")
    kept = pd.read_parquet(part / "filtered" / f"ds={LIVE_DAY}" / "part-0.parquet")
    images = primary_images(pd.read_parquet(part / "images" / f"ds={LIVE_DAY}" / "part-0.parquet"))
    image_url = dict(zip(images.loc[images["status"] == "ok", "post_id"], images.loc[images["status"] == "ok", "url"]))
    lines = [
        json.dumps(
            {
                "id": p.id,
                "subreddit": p.subreddit,
                "author": p.author,
                "created_utc": int(p.created_utc),
                "title": p.title,
                "is_self": bool(p.is_self),
                "over_18": bool(p.over_18),
                "domain": p.domain,
                "selftext_len": int(p.selftext_len or 0),
                **({"image_url": image_url[p.id]} if p.id in image_url else {}),
            }
        )
        for p in kept.itertuples()
    ]
    assert len(lines) == len(dag_rows) > 100 and sum("image_url" in line for line in lines) > 50

    for key, value in {
        "SMPP_DATA_DIR": str(data),
        "SMPP_MODEL_PROFILE": "tiny",
        "SMPP_IMAGES__ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]',
        "SMPP_IMAGES__OFFLINE": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMPP_CONFIG", raising=False)
    settings_module.get_settings.cache_clear()
    try:
        settings = settings_module.get_settings()
        train = json.loads((data / "runs" / f"ds={LIVE_DAY}" / "train_model.json").read_text())
        posts, errors = read_lines(lines)
        assert not errors
        dims = {column: len(next(v for v in dag_rows[column] if v is not None)) for column in EMBEDDING_COLUMNS}
        served, _notes = feature_frame(
            settings, posts, dims, history_frame(settings, posts), resolve_authors(settings, posts)
        )
        served_predictions = [r["predicted_label"] for r in predict_lines(settings, lines, version=train["version"])]
    finally:
        settings_module.get_settings.cache_clear()

    dag = dag_rows.set_index("post_id").loc[served["post_id"]].reset_index()
    for column in dag.columns:
        if column in ("ds",) or column.endswith("_sparse"):
            continue
        assert column in served, f"smpp predict does not build {column}"
        if column in EMBEDDING_COLUMNS:
            for pid, a, b in zip(dag["post_id"], dag[column], served[column]):
                assert (a is None) == (b is None), (column, pid)
                if a is not None:
                    np.testing.assert_allclose(
                        np.asarray(a, np.float32), b, rtol=0, atol=1e-6, err_msg=f"{column} {pid}"
                    )
        else:
            pd.testing.assert_series_equal(
                dag[column], served[column], check_names=False, check_dtype=False, obj=column
            )
    dag_predictions = predict_frame(
        load_model(Path(train["version_dir"])), dag_rows.set_index("post_id").loc[served["post_id"]].reset_index()
    )
    np.testing.assert_allclose(np.asarray(dag_predictions, float), served_predictions, rtol=0, atol=1e-5)
