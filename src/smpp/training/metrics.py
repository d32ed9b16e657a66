"""Evaluation metrics, judged overall and within subreddits (subreddit size dominates overall ranks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


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
            "per_subreddit": per_subreddit,
        }
    )
