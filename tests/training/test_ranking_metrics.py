"""Pairwise accuracy within subreddit and low / medium / high tiers."""

from __future__ import annotations

import numpy as np
import pytest

from smpp.training.metrics import full_metrics, pairwise_accuracy, tier_metrics, tier_thresholds


def test_pairwise_accuracy_counts_close_same_subreddit_pairs_only():
    y = np.array([1.0, 2.0, 3.0, 5.0, 4.0])
    subs = np.array(["a", "a", "a", "b", "b"])
    hours = np.array([0, 1, 100, 0, 1]) * 3600
    perfect = pairwise_accuracy(y, y, subs, hours, window_hours=24)
    assert perfect["pairs"] == 2  # (0,1) in a, (3,4) in b; (1,2) are 99 h apart
    assert perfect["pairwise_accuracy"] == 1.0
    reversed_ = pairwise_accuracy(y, -y, subs, hours, window_hours=24)
    assert reversed_["pairwise_accuracy"] == 0.0
    constant = pairwise_accuracy(y, np.zeros(5), subs, hours, window_hours=24)
    assert constant["pairwise_accuracy"] == 0.5


def test_tiers_from_training_tertiles():
    thresholds = tier_thresholds(np.arange(9, dtype=float))
    assert thresholds == pytest.approx([8 / 3, 16 / 3])
    y = np.array([0.0, 4.0, 8.0, 8.0])
    result = tier_metrics(y, np.array([0.0, 4.0, 8.0, 0.0]), thresholds)
    assert result["tier_accuracy"] == 0.75
    assert result["tier_confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert 0 < result["tier_macro_f1"] < 1


def test_full_metrics_has_every_key():
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    result = full_metrics(
        y, y + rng.normal(scale=0.5, size=200), np.array(["a", "b"] * 100), np.arange(200) * 600, 20, [-0.4, 0.4]
    )
    for key in (
        "spearman",
        "spearman_within_subreddit",
        "spearman_within_subreddit_weighted",
        "mae",
        "rmse",
        "r2",
        "pairwise_accuracy",
        "tier_accuracy",
        "tier_macro_f1",
        "tier_confusion",
    ):
        assert result[key] is not None, key
    assert result["spearman_within_subreddit"] > 0.5
