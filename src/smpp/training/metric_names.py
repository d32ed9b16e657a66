"""The evaluation metrics, in the one order the model card, the Metrics tab, the registry and the CLI use."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# name -> True where higher is better (False: lower is better; None: a count, not a quality).
METRIC_DIRECTIONS: dict[str, bool | None] = {
    "spearman_within_subreddit": True,
    "spearman_within_subreddit_weighted": True,
    "spearman": True,
    "mae": False,
    "rmse": False,
    "r2": True,
    "pairwise_accuracy": True,
    "tier_accuracy": True,
    "tier_macro_f1": True,
    "latency_ms_per_post": False,
    "params": None,
    "n": None,
    "subreddits_scored": None,
}
# The model card's table: every metric but the per-run bookkeeping.
CARD_METRICS: tuple[str, ...] = tuple(m for m in METRIC_DIRECTIONS if m != "subreddits_scored")
# The Metrics tab's comparison rows and the registry's decision summary: quality plus the test size.
DECISION_METRICS: tuple[str, ...] = (
    "spearman_within_subreddit",
    "spearman_within_subreddit_weighted",
    "spearman",
    "mae",
    "rmse",
    "r2",
    "n",
)
UI_METRICS: tuple[str, ...] = (*DECISION_METRICS, "subreddits_scored")
# The train-slice median label for every post: the yardstick of the plausibility checks (not in the Spearman gate).
CONSTANT_BASELINE = "baseline_train_median"
# The baselines every trained version is scored against, on its own test slice.
BASELINE_NAMES: tuple[str, ...] = ("baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge")
# Columns of a comparison table, left to right, on the Metrics tab and in the model card (a champion column follows).
COMPARISON_COLUMNS: tuple[str, ...] = ("model", *BASELINE_NAMES, CONSTANT_BASELINE)
HEADLINE_METRIC = "spearman_within_subreddit"
# What `smpp` prints per model on one line.
CLI_METRICS: tuple[str, ...] = ("spearman", "spearman_within_subreddit", "mae", "rmse")


def column_label(key: str) -> str:
    """'baseline_text_ridge' -> 'text ridge'; the constant yardstick says that it is one."""
    if key == CONSTANT_BASELINE:
        return "train median (constant)"
    return key.removeprefix("baseline_").replace("_", " ")


def direction_text(metric: str) -> str:
    """Which way is good, in words, for a metric row."""
    direction = METRIC_DIRECTIONS.get(metric)
    if direction is None:
        return "count" if metric in METRIC_DIRECTIONS else ""
    return "higher is better" if direction else "lower is better"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def best_positions(metric: str, values: Sequence[Any]) -> set[int]:
    """Positions holding the best value of a row (ties all); none for counts or with fewer than two numbers."""
    direction = METRIC_DIRECTIONS.get(metric)
    numbers = [(i, n) for i, n in enumerate(map(_number, values)) if n is not None]
    if direction is None or len(numbers) < 2:
        return set()
    best = max(n for _, n in numbers) if direction else min(n for _, n in numbers)
    return {i for i, n in numbers if math.isclose(n, best, rel_tol=1e-12, abs_tol=1e-12)}


def headline_missing_reason(model: dict[str, Any] | None) -> str | None:
    """Why a scored model has no within-subreddit Spearman (None when it has one, or was not scored)."""
    if not isinstance(model, dict) or _number(model.get(HEADLINE_METRIC)) is not None:
        return None
    min_posts = model.get("within_subreddit_min_posts")
    if model.get("error"):
        return f"not scored: {model['error']}"
    if min_posts is None:
        return "no subreddit had enough test posts to rank within"
    return (
        f"no subreddit has {min_posts} test posts (training.within_subreddit_min_posts={min_posts}):"
        " backfill more days, or lower that setting"
    )
