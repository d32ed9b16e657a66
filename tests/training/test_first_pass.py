"""The trainer's first pass (labels, index, split, plan) gives the same result in its child process as here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smpp.training.first_pass import first_pass, run_first_pass
from smpp.training.train import write_day_partitions
from smpp.warehouse.labels import LabelQuery


def test_child_process_first_pass_equals_the_in_process_one(tmp_path, make_features, make_settings):
    frame = make_features(n_rows=300, seed=5)
    paths = write_day_partitions(frame.drop(columns=["label"]), tmp_path / "features")
    labels = frame[["post_id", "label"]].iloc[::2]  # half the posts have a matured label
    settings = make_settings(tmp_path / "data", balance_subreddits=True)
    here = first_pass(settings, paths, labels)
    child = run_first_pass(settings, paths, labels)
    assert child.rows == here.rows and child.rows["labelled"] == 150
    assert child.spec == here.spec and child.tower_dims == here.tower_dims and child.all_dims == here.all_dims
    assert child.weighted and child.skip_reason is None
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(child.split, name), getattr(here.split, name))
    for mine, theirs in (
        (child.plan.code, here.plan.code),
        (child.plan.label, here.plan.label),
        (child.plan.weight, here.plan.weight),
    ):
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(child.window_frame, here.window_frame)
    assert child.window_frame["created_utc"].tolist() == [
        int(frame["created_utc"].iloc[::2].min()),
        int(frame["created_utc"].iloc[::2].max()),
    ]


def test_an_error_in_the_child_is_raised_here_with_its_type(tmp_path, make_features, make_settings):
    frame = make_features(n_rows=60, seed=1)
    first = write_day_partitions(frame.iloc[:30], tmp_path / "a")
    other = frame.iloc[30:].copy()
    other["title_emb"] = [np.zeros(8, np.float32)] * len(other)  # another dimension than the first files'
    second = write_day_partitions(other, tmp_path / "b")
    settings = make_settings(tmp_path / "data")
    with pytest.raises(ValueError, match="mixes dimensions"):
        run_first_pass(settings, [*first, *second], None)


def test_label_query_is_answered_from_the_warehouse_in_the_child(settings, tmp_path, make_features):
    from sqlalchemy import insert

    from smpp.warehouse import Label, Post, session_for

    frame = make_features(n_rows=120, seed=2)
    paths = write_day_partitions(frame.drop(columns=["label"]), tmp_path / "features")
    end = int(frame["created_utc"].max()) + 10 * 86_400
    with session_for(settings.database_url) as session:
        session.execute(
            insert(Post),
            [
                {
                    "id": pid,
                    "subreddit": sub,
                    "author": "a",
                    "created_utc": int(created),
                    "source": "archive",
                    "first_seen_at": int(created),
                    "title": "t",
                    "selftext_len": 0,
                    "removed": i % 4 == 0,
                }
                for i, (pid, sub, created) in enumerate(zip(frame["post_id"], frame["subreddit"], frame["created_utc"]))
            ],
        )
        session.execute(
            insert(Label),
            [
                {
                    "post_id": pid,
                    "score": 10,
                    "age_hours": None,
                    "label_age_hours": 24.0,
                    "observed_at": None,
                    # every third label matures after the run's end: not knowable yet
                    "matured_utc": end + 1 if i % 3 == 0 else int(created) + 3600,
                    "status": "archive",
                }
                for i, (pid, created) in enumerate(zip(frame["post_id"], frame["created_utc"]))
            ],
        )
        session.commit()
    result = run_first_pass(settings, paths, LabelQuery(end))
    expected = sum(1 for i in range(120) if i % 4 != 0 and i % 3 != 0)  # not removed, matured by the end
    assert result.rows["labelled"] == expected
    labels = np.concatenate([result.split.train["label"], result.split.val["label"], result.split.test["label"]])
    assert np.allclose(labels, np.log1p(10))
