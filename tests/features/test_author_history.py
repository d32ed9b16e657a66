"""Leak-free history features: only posts before a post's time, only labels matured by then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smpp.features.author_history import HISTORY_COLUMNS, add_history_features, history_features

HOUR = 3600
DAY = 86400


def _posts(rows):
    return pd.DataFrame(rows, columns=["post_id", "author", "subreddit", "created_utc", "label"])


def test_author_stats_use_only_matured_prior_labels():
    frame = _posts(
        [
            ("a", "alice", "pics", 0, 2.0),
            ("b", "alice", "pics", 10 * HOUR, 6.0),  # created before "c", but its label matures after "c"
            ("c", "alice", "pics", 30 * HOUR, 1.0),
            ("d", "alice", "pics", 40 * DAY, 3.0),
        ]
    )
    out = history_features(frame, label_age_hours=24).set_index(frame["post_id"])
    # first post: no history at all
    assert out.loc["a", "author_prior_posts_log"] == 0
    assert np.isnan(out.loc["a", "author_prior_mean_label"])
    assert np.isnan(out.loc["a", "author_days_since_prev_log"])
    # "c": two earlier posts exist, but only "a"'s label (matured at 24 h) is known at 30 h
    assert out.loc["c", "author_prior_posts_log"] == pytest.approx(np.log1p(2))
    assert out.loc["c", "author_prior_mean_label"] == pytest.approx(2.0)
    assert out.loc["c", "author_prior_max_label"] == pytest.approx(2.0)
    assert out.loc["c", "author_days_since_prev_log"] == pytest.approx(np.log1p(20 / 24), rel=1e-5)
    # "d": all three earlier labels matured
    assert out.loc["d", "author_prior_mean_label"] == pytest.approx(3.0)
    assert out.loc["d", "author_prior_max_label"] == pytest.approx(6.0)


def test_no_feature_changes_when_future_posts_change():
    """Leak check: rewriting every later post (labels, count) leaves earlier rows' features identical."""
    rng = np.random.default_rng(0)
    n = 400
    frame = _posts(
        [
            (f"p{i}", f"u{rng.integers(0, 30)}", f"s{rng.integers(0, 4)}", int(t), float(rng.normal(3, 1)))
            for i, t in enumerate(np.sort(rng.integers(0, 60 * DAY, n)))
        ]
    )
    cut = int(frame["created_utc"].iloc[n // 2])
    before = frame["created_utc"] < cut
    changed = frame.copy()
    changed.loc[~before, "label"] = 100.0
    extra = changed.loc[~before].copy()
    extra["post_id"] = extra["post_id"] + "x"
    changed = pd.concat([changed, extra], ignore_index=True)
    original = history_features(frame).loc[before.to_numpy()]
    rewritten = history_features(changed).iloc[: int(before.sum())]
    pd.testing.assert_frame_equal(original.reset_index(drop=True), rewritten.reset_index(drop=True))
    # and the later rows do see the history (the check above is not vacuous)
    later = history_features(frame).loc[~before.to_numpy()]
    assert later["author_prior_mean_label"].notna().mean() > 0.5


def test_same_second_posts_do_not_count_each_other():
    frame = _posts([("a", "bob", "pics", 100, 1.0), ("b", "bob", "pics", 100, 2.0)])
    out = history_features(frame)
    assert (out["author_prior_posts_log"] == 0).all()
    assert (out["subreddit_prior_posts_log"] == 0).all()


def test_missing_author_and_subreddit_level():
    frame = _posts(
        [("a", None, "pics", 0, 4.0), ("b", "carol", "pics", 2 * DAY, 2.0), ("c", None, "pics", 4 * DAY, 1.0)]
    )
    out = history_features(frame).set_index(frame["post_id"])
    assert out.loc[["a", "c"], ["author_prior_posts_log", "author_prior_mean_label"]].isna().all().all()
    # subreddit recent mean at "c": labels of "a" and "b" matured
    assert out.loc["c", "subreddit_recent_mean_label"] == pytest.approx(3.0)
    assert out.loc["c", "subreddit_prior_posts_log"] == pytest.approx(np.log1p(2))
    # "b" relative to the subreddit: 2.0 - 4.0 ("a" was the level); carol has no matured posts before "c"
    assert np.isnan(out.loc["c", "author_prior_rel_label"])


def test_relative_label_and_explicit_matured_times():
    frame = _posts(
        [("a", "x", "pics", 0, 4.0), ("b", "dave", "pics", 2 * DAY, 5.0), ("c", "dave", "pics", 5 * DAY, 0.0)]
    )
    frame["label_matured_utc"] = frame["created_utc"] + DAY
    frame.loc[1, "label_matured_utc"] = 6 * DAY  # dave's first label is late: unknown at "c"
    out = history_features(frame).set_index(frame["post_id"])
    assert np.isnan(out.loc["c", "author_prior_mean_label"])
    frame.loc[1, "label_matured_utc"] = 3 * DAY
    out = history_features(frame).set_index(frame["post_id"])
    assert out.loc["c", "author_prior_rel_label"] == pytest.approx(1.0)


def test_add_history_features_against_separate_history():
    history = _posts([("h1", "erin", "pics", 0, 3.0)])
    new = _posts([("n1", "erin", "pics", 5 * DAY, np.nan)])
    out = add_history_features(new, pd.concat([history, new], ignore_index=True))
    assert set(HISTORY_COLUMNS) <= set(out.columns)
    assert out.loc[0, "author_prior_mean_label"] == pytest.approx(3.0)
    assert len(out) == 1


def test_names_match_as_strings_whatever_the_columns_dtype():
    """Partitions and the warehouse may type names differently: an author is the same string either way."""
    history = _posts([("a", "42", "pics", 0, 1.0), ("b", "", "pics", HOUR, 2.0), ("c", None, "pics", 2 * HOUR, 3.0)])
    query = pd.DataFrame(
        {
            "author": pd.Series([42, "", None, "42"], dtype=object),
            "subreddit": ["pics"] * 4,
            "created_utc": [3 * DAY] * 4,
        }
    )
    out = history_features(query, history, label_age_hours=24)
    # 42 and "42" are one author with one earlier post; "" is an author too; None has no author features
    assert out["author_prior_posts_log"].tolist()[:2] == pytest.approx([np.log1p(1), np.log1p(1)])
    assert np.isnan(out["author_prior_posts_log"].iloc[2])
    assert out["author_prior_posts_log"].iloc[3] == pytest.approx(np.log1p(1))
    assert out["author_prior_mean_label"].tolist()[:2] == pytest.approx([1.0, 2.0])
    assert out["subreddit_prior_posts_log"].tolist() == pytest.approx([np.log1p(3)] * 4)
