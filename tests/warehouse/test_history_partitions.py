"""Feature partitions carry point-in-time history columns; train_model streams them (no whole-window read)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import and_, select

from partition_readers import read_partitions
from smpp import storage, tasks
from smpp.features.author_history import HISTORY_COLUMNS, history_features

DUMP = Path(__file__).parents[1] / "data" / "backfill_3days.ndjson.zst"
DAYS = [datetime(2013, 7, 24, tzinfo=UTC) + timedelta(days=i) for i in range(3)]
DIM = 4


def _build_day(settings, start: datetime) -> None:
    """scrape (archive) -> filter -> empty image/embedding stages -> build_features, for one day."""
    end = start + timedelta(days=1)
    # every subreddit of the dump: the history needs authors who post on several days
    params = {"source": "archive", "archive_path": str(DUMP), "subreddits": ["*"]}
    tasks.scrape_posts(start, end, params)
    tasks.filter_posts(start, end, params)
    day = start.date()
    empty = pd.DataFrame(
        {
            "post_id": pd.Series(dtype=str),
            "status": pd.Series(dtype=str),
            "image_index": pd.Series(dtype="int64"),
            "path": pd.Series(dtype=str),
        }
    )
    storage.write_partition(settings, "images", day, empty)
    for stage, columns in {
        "text_embeddings": ["title_emb", "caption_emb"],
        "image_embeddings": ["image_emb"],
        "joint_embeddings": ["joint_emb"],
    }.items():
        storage.write_partition(
            settings,
            stage,
            day,
            pd.DataFrame({"post_id": pd.Series(dtype=str), **{c: pd.Series(dtype=object) for c in columns}}),
        )
    tasks.build_features(start, end, params)


@pytest.fixture
def built(settings, monkeypatch):
    monkeypatch.setattr("smpp.encoders.model_info", lambda _settings, role: {"dim": DIM})
    for start in DAYS:
        _build_day(settings, start)
    return settings


def _warehouse_frame(settings) -> pd.DataFrame:
    """Every stored post of the dump (all three days) with its trainable label: the 'full frame'."""
    from smpp.warehouse import Label, Post, session_for
    from smpp.warehouse.labels import TRAINABLE_STATUSES

    with session_for(settings.database_url) as session:
        rows = session.execute(
            select(Post.id, Post.author, Post.subreddit, Post.created_utc, Label.score, Label.matured_utc)
            .outerjoin(Label, and_(Label.post_id == Post.id, Label.status.in_(TRAINABLE_STATUSES)))
            .where(Post.removed.is_(False))
        ).all()
    frame = pd.DataFrame(rows, columns=["post_id", "author", "subreddit", "created_utc", "score", "label_matured_utc"])
    frame["label"] = np.log1p(pd.to_numeric(frame["score"]).clip(lower=0))
    return frame


def test_partition_history_equals_history_over_the_full_frame(built):
    settings = built
    features = read_partitions(settings, "features", [d.date() for d in DAYS])
    assert set(HISTORY_COLUMNS) <= set(features.columns)
    full = _warehouse_frame(settings)
    # the full frame holds later days too: the leak rules alone must keep them out of earlier rows
    expected = history_features(features[["author", "subreddit", "created_utc"]], full, label_age_hours=24)
    for column in HISTORY_COLUMNS:
        np.testing.assert_allclose(
            features[column].to_numpy(float),
            expected[column].to_numpy(float),
            rtol=1e-5,
            atol=1e-6,
            equal_nan=True,
            err_msg=column,
        )
    # non-trivial: later days see earlier days' posts and matured labels; the first day sees no labels
    day = features["ds"]
    assert features.loc[day == "2013-07-24", "author_prior_mean_label"].isna().all()
    assert features.loc[day == "2013-07-26", "author_prior_mean_label"].notna().any()
    assert (features.loc[day == "2013-07-26", "subreddit_prior_posts_log"] > 0).mean() > 0.5
    # a post counts for later posts of the same day (it is in the warehouse when the day is built)
    first_day = features[day == "2013-07-24"]
    assert (first_day["subreddit_prior_posts_log"] > 0).any()


def test_train_model_streams_partitions_without_the_whole_window_read(built, monkeypatch):
    settings = built
    monkeypatch.setenv("SMPP_TRAINING__EPOCHS", "2")
    monkeypatch.setenv("SMPP_TRAINING__MIN_ROWS", "10")
    from smpp.settings import get_settings

    get_settings.cache_clear()

    def whole_window_read(*args, **kwargs):
        raise AssertionError("train_model read the whole window into one frame")

    monkeypatch.setattr(
        storage, "read_partitions", whole_window_read, raising=False
    )  # the product has no whole-window reader
    start, end = DAYS[-1], DAYS[-1] + timedelta(days=1)
    report = tasks.train_model(start, end, {"source": "archive"})
    assert report["skipped_reason"] is None, report
    folder = Path(report["version_dir"])
    assert (folder / "model.keras").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["rows"]["train"] > 0 and metrics["rows"]["test"] > 0
    # the stored history columns are model inputs (those with any value in the train slice)
    assert {"author_prior_posts_log", "subreddit_prior_posts_log"} <= set(metrics["features"]["tabular_columns"])
    lineage = json.loads((folder / "lineage.json").read_text())
    assert len(lineage["partitions_read"]) == 3

    # make it the champion, then a challenger re-scores it on its own (streamed) test slice
    from smpp.lifecycle.registry import CHAMPION_FILE
    from smpp.training.train import score_model_on_test
    from smpp.training.window import training_partitions
    from smpp.warehouse.labels import LabelQuery

    (settings.models_dir / CHAMPION_FILE).write_text(json.dumps({"version": report["version"]}))
    second = tasks.train_model(start, end, {"source": "archive"})
    rescored = json.loads((Path(second["version_dir"]) / "metrics.json").read_text())["champion"]
    assert rescored["version"] == report["version"] and rescored["same_test_slice"] is True, rescored
    published = tasks.evaluate_and_publish(start, end, second["version"], {"source": "archive"})
    assert published["champion_before"] == report["version"]
    # evaluate_and_publish's streamed re-scoring sees the same test slice as the challenger's training
    paths = training_partitions(get_settings(), start.date())
    again = score_model_on_test(get_settings(), folder, paths, LabelQuery(int(end.timestamp())))
    assert again["n"] == rescored["metrics"]["n"] == metrics["rows"]["test"]
    assert again["mae"] == pytest.approx(rescored["metrics"]["mae"], abs=1e-6)


def test_stage_metrics_account_for_every_post_of_the_day(built):
    from smpp.ui.accounting import post_accounting

    folder = storage.run_metrics_path(built, DAYS[1].date(), "x").parent
    stages = {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}
    filtered, images, labels = post_accounting(stages)
    assert filtered.parent == stages["scrape_posts"]["posts_in_day"] > 0 and filtered.unaccounted == 0
    assert images.unaccounted is None and images.note == "fetch_images did not run"  # the test skips the stage
    day_labels = stages["build_features"]["labels"]
    assert sum(day_labels.values()) == stages["build_features"]["rows"] == labels.parent
    assert day_labels["archive"] > 0 and labels.unaccounted == 0  # the dump's posts carry archive labels
