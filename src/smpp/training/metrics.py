"""Evaluation metrics, judged overall and within subreddits (subreddit size dominates overall ranks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from smpp.training.metric_names import CONSTANT_BASELINE


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(obj: Any) -> Any:
    """Recursively turn NaN/inf into None and numpy scalars into Python ones (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _finite_or_none(obj)
    return obj


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Rank correlation; None when undefined (fewer than 2 posts or constant truth).

    A constant prediction carries no ranking information, so it scores 0 rather than NaN:
    this is what a subreddit-mean predictor earns within a subreddit.
    """
    from scipy.stats import spearmanr

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if len(y_true) < 2 or np.ptp(y_true) == 0:
        return None
    if np.ptp(y_pred) == 0:
        return 0.0
    return _finite_or_none(spearmanr(y_true, y_pred).statistic)


def spearman_per_subreddit(
    y_true: np.ndarray, y_pred: np.ndarray, subreddits: np.ndarray, min_posts: int
) -> dict[str, dict[str, Any]]:
    """{subreddit: {"spearman", "n"}} for subreddits with at least `min_posts` test posts."""
    frame = pd.DataFrame({"y": np.asarray(y_true, float), "p": np.asarray(y_pred, float), "s": subreddits})
    result: dict[str, dict[str, Any]] = {}
    for name, group in frame.groupby("s", sort=True):
        if len(group) < min_posts:
            continue
        rho = spearman(group["y"].to_numpy(), group["p"].to_numpy())
        if rho is not None:
            result[str(name)] = {"spearman": rho, "n": int(len(group))}
    return result


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, subreddits: np.ndarray, min_posts: int
) -> dict[str, Any]:
    """spearman, spearman_within_subreddit (+ post-weighted), mae, rmse, r2, n; every value finite or None."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if not np.isfinite(y_pred).all():
        raise ValueError(f"{int((~np.isfinite(y_pred)).sum())} non-finite predictions")
    n = len(y_true)
    per_subreddit = spearman_per_subreddit(y_true, y_pred, np.asarray(subreddits), min_posts)
    rhos = np.array([v["spearman"] for v in per_subreddit.values()], dtype=float)
    weights = np.array([v["n"] for v in per_subreddit.values()], dtype=float)
    errors = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2)) if n else 0.0
    return json_safe(
        {
            "n": n,
            "spearman": spearman(y_true, y_pred),
            "spearman_within_subreddit": float(rhos.mean()) if len(rhos) else None,
            "spearman_within_subreddit_weighted": float(np.average(rhos, weights=weights)) if len(rhos) else None,
            "subreddits_scored": len(rhos),
            "within_subreddit_min_posts": min_posts,
            "mae": float(np.mean(np.abs(errors))) if n else None,
            "rmse": float(np.sqrt(np.mean(errors**2))) if n else None,
            "r2": 1.0 - float(np.sum(errors**2)) / ss_tot if ss_tot > 0 else None,
            # the promotion gate checks these against the train label range (smpp.lifecycle.registry)
            "prediction_min": float(y_pred.min()) if n else None,
            "prediction_max": float(y_pred.max()) if n else None,
            "per_subreddit": per_subreddit,
        }
    )


def scored_or_error(y_true: np.ndarray, y_pred: np.ndarray, subreddits: np.ndarray, min_posts: int) -> dict[str, Any]:
    """regression_metrics, or for non-finite predictions (a broken model) a record saying so, not an exception.

    For re-scoring another version (the champion): its breakage is evidence for the decision, and must
    not fail the challenger's training or publication.
    """
    y_pred = np.asarray(y_pred, dtype=float)
    bad = int((~np.isfinite(y_pred)).sum())
    if not bad:
        return regression_metrics(y_true, y_pred, subreddits, min_posts)
    return {
        "n": len(y_pred),
        "error": f"{bad} of {len(y_pred)} predictions are not finite",
        "non_finite_predictions": bad,
        "spearman": None,
        "spearman_within_subreddit": None,
        "mae": None,
        "rmse": None,
        "r2": None,
    }


def label_summary(labels: np.ndarray) -> dict[str, Any]:
    """n, min, max, mean, median, std of a slice's labels (what plausibility is judged against)."""
    labels = np.asarray(labels, dtype=float)
    labels = labels[np.isfinite(labels)]
    if not len(labels):
        return {"n": 0, "min": None, "max": None, "mean": None, "median": None, "std": None}
    return json_safe(
        {
            "n": len(labels),
            "min": labels.min(),
            "max": labels.max(),
            "mean": labels.mean(),
            "median": float(np.median(labels)),
            "std": labels.std(),
        }
    )


def implausibility(
    scores: dict[str, Any] | None,
    train_labels: dict[str, Any] | None,
    constant_mae: float | None,
    max_std_outside: float,
    max_mae_vs_constant: float,
) -> list[str]:
    """Why test `scores` (regression_metrics) cannot come from a working model; [] when none is found.

    Predictions more than `max_std_outside` train-label stds outside the train label range, an MAE
    above `max_mae_vs_constant` times a constant predictor's on the same test slice, or a recorded
    scoring error. Checks whose inputs are missing (older metrics files) are skipped, not failed.
    """
    if not scores:
        return []
    problems: list[str] = []
    if scores.get("error"):
        problems.append(f"scoring failed: {scores['error']}")
    low, high, std = (train_labels or {}).get("min"), (train_labels or {}).get("max"), (train_labels or {}).get("std")
    p_min, p_max = scores.get("prediction_min"), scores.get("prediction_max")
    if None not in (low, high, std, p_min, p_max):
        spread = max(float(std), 1e-6)
        outside = max(float(low) - float(p_min), float(p_max) - float(high), 0.0) / spread
        if outside > max_std_outside:
            problems.append(
                f"test predictions [{p_min:.4g}, {p_max:.4g}] lie {outside:.3g} label std outside the train label "
                f"range [{low:.4g}, {high:.4g}] (limit {max_std_outside:g})"
            )
    mae = scores.get("mae")
    if mae is not None and constant_mae is not None and mae > max_mae_vs_constant * constant_mae:
        problems.append(
            f"MAE {mae:.6g} worse than {max_mae_vs_constant:g} x "
            f"the constant train-median predictor's {constant_mae:.4f}"
        )
    return problems


PAIR_WINDOW_HOURS = 24.0
TIER_NAMES = ["low", "medium", "high"]


def pairwise_accuracy(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    subreddits: np.ndarray,
    created_utc: np.ndarray,
    window_hours: float = PAIR_WINDOW_HOURS,
) -> dict[str, Any]:
    """Share of same-subreddit pairs posted close in time whose order the predictions get right.

    Pairs are each post with the next post of its subreddit (by created time) when the two are at
    most `window_hours` apart and their labels differ; prediction ties count half.
    """
    frame = pd.DataFrame(
        {
            "y": np.asarray(y_true, float),
            "p": np.asarray(y_pred, float),
            "s": np.asarray(subreddits),
            "t": np.asarray(created_utc, float),
        }
    ).sort_values(["s", "t"], kind="stable")
    same = frame["s"].to_numpy()[1:] == frame["s"].to_numpy()[:-1]
    close = np.diff(frame["t"].to_numpy()) <= window_hours * 3600
    dy = np.diff(frame["y"].to_numpy())
    dp = np.diff(frame["p"].to_numpy())
    use = same & close & (dy != 0)
    pairs = int(use.sum())
    if not pairs:
        return {"pairwise_accuracy": None, "pairs": 0, "pair_window_hours": window_hours}
    right = (np.sign(dy[use]) == np.sign(dp[use])).sum() + 0.5 * (dp[use] == 0).sum()
    return {"pairwise_accuracy": float(right / pairs), "pairs": pairs, "pair_window_hours": window_hours}


def tier_thresholds(train_labels: np.ndarray) -> list[float]:
    """Training-slice tertiles: low < t1 <= medium < t2 <= high."""
    return [float(v) for v in np.quantile(np.asarray(train_labels, float), [1 / 3, 2 / 3])]


def tier_metrics(y_true: np.ndarray, y_pred: np.ndarray, thresholds: list[float]) -> dict[str, Any]:
    """Accuracy, macro F1 and confusion matrix (rows = true tier) of low / medium / high tiers."""
    from sklearn.metrics import confusion_matrix, f1_score

    true_tier = np.digitize(np.asarray(y_true, float), thresholds)
    pred_tier = np.digitize(np.asarray(y_pred, float), thresholds)
    labels = list(range(len(TIER_NAMES)))
    if not len(true_tier):
        return {"tier_accuracy": None, "tier_macro_f1": None, "tier_confusion": None, "tier_thresholds": thresholds}
    return {
        "tier_accuracy": float(np.mean(true_tier == pred_tier)),
        "tier_macro_f1": float(f1_score(true_tier, pred_tier, labels=labels, average="macro", zero_division=0)),
        "tier_confusion": confusion_matrix(true_tier, pred_tier, labels=labels).tolist(),
        "tier_names": TIER_NAMES,
        "tier_thresholds": thresholds,
    }


def full_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    subreddits: np.ndarray,
    created_utc: np.ndarray,
    min_posts: int,
    thresholds: list[float],
) -> dict[str, Any]:
    """regression_metrics + within-subreddit pairwise accuracy + tiers."""
    return json_safe(
        {
            **regression_metrics(y_true, y_pred, subreddits, min_posts),
            **pairwise_accuracy(y_true, y_pred, subreddits, created_utc),
            **tier_metrics(y_true, y_pred, thresholds),
        }
    )


def implausible_on_slice(training: Any, scores: dict[str, Any] | None, metrics: dict[str, Any]) -> list[str]:
    """implausibility() of `scores` on the test slice a version's metrics.json describes, with the settings' limits.

    training: settings.training (promotion_max_label_std_outside, promotion_max_mae_vs_constant).
    """
    return implausibility(
        scores,
        metrics.get("train_labels"),
        (metrics.get(CONSTANT_BASELINE) or {}).get("mae"),
        training.promotion_max_label_std_outside,
        training.promotion_max_mae_vs_constant,
    )
