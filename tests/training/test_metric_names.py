"""Which way each metric is good, the best value of a row, and why the headline metric is missing."""

from __future__ import annotations

import math

import pytest

from smpp.training.metric_names import (
    BASELINE_NAMES,
    CARD_METRICS,
    COMPARISON_COLUMNS,
    CONSTANT_BASELINE,
    METRIC_DIRECTIONS,
    UI_METRICS,
    best_positions,
    column_label,
    direction_text,
    headline_missing_reason,
)


def test_every_shown_metric_has_a_direction_and_both_tables_keep_one_order():
    order = list(METRIC_DIRECTIONS)
    for shown in (CARD_METRICS, UI_METRICS):
        assert all(m in METRIC_DIRECTIONS for m in shown)
        assert [order.index(m) for m in shown] == sorted(order.index(m) for m in shown)
    assert COMPARISON_COLUMNS == ("model", *BASELINE_NAMES, CONSTANT_BASELINE)
    assert [column_label(c) for c in COMPARISON_COLUMNS] == [
        "model",
        "subreddit mean",
        "metadata gbm",
        "text ridge",
        "train median (constant)",
    ]


@pytest.mark.parametrize(
    "metric, text",
    [("spearman_within_subreddit", "higher is better"), ("mae", "lower is better"), ("n", "count"), ("odd", "")],
)
def test_direction_text(metric, text):
    assert direction_text(metric) == text


@pytest.mark.parametrize(
    "metric, values, best",
    [
        ("spearman", [0.2, 0.5, None, 0.1], {1}),
        ("mae", [0.9, 1.1, 0.88], {2}),
        ("rmse", [1.0, 1.0, 2.0], {0, 1}),  # ties are all best
        ("r2", [-0.3, float("nan"), True, -0.1], {3}),  # NaN and booleans are no scores
        ("n", [144, 200], set()),  # a count is not better when larger
        ("spearman", [0.2, None, None], set()),  # nothing to compare with
        ("unknown_metric", [1.0, 2.0], set()),
    ],
)
def test_best_positions(metric, values, best):
    assert best_positions(metric, values) == best


def test_headline_missing_reason_names_the_setting_only_when_the_value_is_missing():
    missing = {"spearman_within_subreddit": None, "within_subreddit_min_posts": 20, "subreddits_scored": 0}
    reason = headline_missing_reason(missing)
    assert reason.startswith("no subreddit has 20 test posts (training.within_subreddit_min_posts=20)")
    assert "backfill more days" in reason
    assert headline_missing_reason({**missing, "spearman_within_subreddit": 0.12}) is None
    assert headline_missing_reason({**missing, "spearman_within_subreddit": math.nan}) is not None
    assert headline_missing_reason(None) is None  # not scored at all: the skip reason says why
    assert "not scored: 3 of 9 predictions" in headline_missing_reason(
        {"spearman_within_subreddit": None, "error": "3 of 9 predictions are not finite"}
    )
