"""The evaluation metrics, in the one order the model card, the Metrics tab, the registry and the CLI use."""

from __future__ import annotations

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
# What `smpp` prints per model on one line.
CLI_METRICS: tuple[str, ...] = ("spearman", "spearman_within_subreddit", "mae", "rmse")
