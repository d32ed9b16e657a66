import json
import math

import numpy as np
import pytest

from smpp.training.metrics import json_safe, regression_metrics, spearman


def test_constant_predictions_rank_nothing_and_constant_truth_is_undefined():
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])) == 0.0
    assert spearman(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0])) is None
    assert spearman(np.array([1.0]), np.array([1.0])) is None
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)


def test_within_subreddit_uses_only_subreddits_over_the_threshold():
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    pred = y.copy()
    pred[50:] = -y[50:]  # the small subreddit is ranked backwards
    subs = np.array(["big"] * 50 + ["small"] * 10)
    metrics = regression_metrics(y, pred, subs, min_posts=20)
    assert metrics["spearman_within_subreddit"] == pytest.approx(1.0)
    assert metrics["subreddits_scored"] == 1
    assert set(metrics["per_subreddit"]) == {"big"}
    both = regression_metrics(y, pred, subs, min_posts=10)
    assert both["spearman_within_subreddit"] == pytest.approx(0.0)
    assert both["spearman_within_subreddit_weighted"] == pytest.approx((50 - 10) / 60)


def test_no_qualifying_subreddit_gives_null_not_nan():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    metrics = regression_metrics(y, y + 1, np.array(["a", "b", "c", "d"]), min_posts=20)
    assert metrics["spearman_within_subreddit"] is None
    assert metrics["spearman_within_subreddit_weighted"] is None
    assert metrics["mae"] == pytest.approx(1.0)
    assert metrics["rmse"] == pytest.approx(1.0)
    assert metrics["n"] == 4
    json.dumps(metrics, allow_nan=False)


def test_constant_truth_has_null_r2_and_spearman():
    metrics = regression_metrics(np.ones(30), np.linspace(0, 1, 30), np.array(["a"] * 30), min_posts=20)
    assert metrics["r2"] is None and metrics["spearman"] is None and metrics["spearman_within_subreddit"] is None


def test_bad_predictions_are_an_error():
    with pytest.raises(ValueError, match="non-finite"):
        regression_metrics(np.ones(3), np.array([1.0, np.nan, 1.0]), np.array(["a"] * 3), 1)
    with pytest.raises(ValueError, match="labels but"):
        regression_metrics(np.ones(3), np.ones(2), np.array(["a"] * 3), 1)


def test_json_safe_replaces_non_finite_values():
    cleaned = json_safe({"a": float("nan"), "b": [np.float32(1.5), math.inf], "c": np.int64(3), "d": np.bool_(True)})
    assert cleaned == {"a": None, "b": [1.5, None], "c": 3, "d": True}
    json.dumps(cleaned, allow_nan=False)
