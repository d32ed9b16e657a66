"""Evaluation plots as PNG files (matplotlib Figure objects with the Agg canvas: no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PLOT_FILES = {
    "predicted_vs_true": "plot_predicted_vs_true.png",
    "error_distribution": "plot_error_distribution.png",
    "learning_curves": "plot_learning_curves.png",
    "model_vs_baselines": "plot_model_vs_baselines.png",
    "within_subreddit_spearman": "plot_within_subreddit_spearman.png",
    "confusion_matrix": "plot_confusion_matrix.png",
}
MAX_SUBREDDITS_PLOTTED = 40


def _figure(width: float = 6.4, height: float = 4.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def plot_predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    figure = _figure()
    ax = figure.subplots()
    ax.scatter(y_true, y_pred, s=6, alpha=0.4)
    low = float(min(np.min(y_true), np.min(y_pred))) if len(y_true) else 0.0
    high = float(max(np.max(y_true), np.max(y_pred))) if len(y_true) else 1.0
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("true label (log1p score)")
    ax.set_ylabel("predicted")
    ax.set_title(f"Test slice: predicted vs true (n={len(y_true)})")
    return _save(figure, path)


def plot_error_distribution(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    figure = _figure()
    ax = figure.subplots()
    ax.hist(np.asarray(y_pred) - np.asarray(y_true), bins=40)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("prediction - truth")
    ax.set_ylabel("posts")
    ax.set_title("Test error distribution")
    return _save(figure, path)


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> Path:
    figure = _figure()
    ax = figure.subplots()
    for key in ("loss", "val_loss"):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Learning curves")
    return _save(figure, path)


def plot_model_vs_baselines(results: dict[str, dict[str, Any]], path: Path) -> Path:
    names = list(results)
    figure = _figure(9, 4.5)
    rank_ax, error_ax = figure.subplots(1, 2)
    x = np.arange(len(names))
    for offset, key in ((-0.2, "spearman"), (0.2, "spearman_within_subreddit")):
        values = [results[n].get(key) or 0.0 for n in names]
        rank_ax.bar(x + offset, values, width=0.4, label=key)
    for offset, key in ((-0.2, "mae"), (0.2, "rmse")):
        values = [results[n].get(key) or 0.0 for n in names]
        error_ax.bar(x + offset, values, width=0.4, label=key)
    labels = [n.replace("baseline_", "") for n in names]
    for ax, title in ((rank_ax, "Rank correlation (higher is better)"), (error_ax, "Error (lower is better)")):
        ax.set_xticks(x, labels, rotation=20, ha="right")
        ax.set_title(title)
        ax.legend(fontsize="small")
    return _save(figure, path)


def plot_within_subreddit_spearman(results: dict[str, dict[str, Any]], path: Path) -> Path:
    per_model = results.get("model", {}).get("per_subreddit") or {}
    chosen = sorted(per_model, key=lambda s: -per_model[s]["n"])[:MAX_SUBREDDITS_PLOTTED]
    figure = _figure(7, max(3.0, 0.3 * len(chosen) + 1.5))
    ax = figure.subplots()
    if not chosen:
        ax.text(0.5, 0.5, "no subreddit has enough test posts", ha="center", va="center")
        ax.set_axis_off()
        return _save(figure, path)
    y = np.arange(len(chosen))
    ax.barh(y, [per_model[s]["spearman"] for s in chosen], label="model", alpha=0.8)
    for marker, name in (("o", "baseline_metadata_gbm"), ("x", "baseline_text_ridge")):
        per_baseline = results.get(name, {}).get("per_subreddit") or {}
        values = [per_baseline.get(s, {}).get("spearman", np.nan) for s in chosen]
        ax.scatter(values, y, marker=marker, color="black", s=18, label=name.replace("baseline_", ""))
    ax.set_yticks(y, [f"{s} (n={per_model[s]['n']})" for s in chosen], fontsize="small")
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_xlabel("Spearman within subreddit (test slice)")
    ax.legend(fontsize="small")
    return _save(figure, path)


def plot_confusion_matrix(model_metrics: dict[str, Any], path: Path) -> Path:
    """The model's low / medium / high tier confusion matrix (rows: true tier)."""
    figure = _figure(4.8, 4.2)
    ax = figure.subplots()
    matrix = np.asarray(model_metrics.get("tier_confusion") or np.zeros((3, 3)), dtype=float)
    names = model_metrics.get("tier_names") or ["low", "medium", "high"]
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted tier")
    ax.set_ylabel("true tier")
    ax.set_title("tiers by training-slice tertiles")
    return _save(figure, path)


def write_plots(
    version_dir: Path,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    history: dict[str, list[float]],
    results: dict[str, dict[str, Any]],
) -> dict[str, str]:
    """All plots into `version_dir`; returns {plot name: file name}."""
    plot_predicted_vs_true(y_true, y_pred, version_dir / PLOT_FILES["predicted_vs_true"])
    plot_error_distribution(y_true, y_pred, version_dir / PLOT_FILES["error_distribution"])
    plot_learning_curves(history, version_dir / PLOT_FILES["learning_curves"])
    plot_model_vs_baselines(results, version_dir / PLOT_FILES["model_vs_baselines"])
    plot_within_subreddit_spearman(results, version_dir / PLOT_FILES["within_subreddit_spearman"])
    plot_confusion_matrix(results.get("model") or {}, version_dir / PLOT_FILES["confusion_matrix"])
    return dict(PLOT_FILES)
