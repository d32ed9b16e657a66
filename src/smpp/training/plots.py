"""Evaluation plots as PNG files (matplotlib Figure objects with the Agg canvas: no pyplot state)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from smpp.settings import TrainingSettings
from smpp.training.metric_names import BASELINE_NAMES, column_label

PLOT_FILES = {
    "predicted_vs_true": "plot_predicted_vs_true.png",
    "error_distribution": "plot_error_distribution.png",
    "learning_curves": "plot_learning_curves.png",
    "model_vs_baselines": "plot_model_vs_baselines.png",
    "within_subreddit_spearman": "plot_within_subreddit_spearman.png",
    "confusion_matrix": "plot_confusion_matrix.png",
}
MAX_SUBREDDITS_PLOTTED = 40
# The UI shows plots at most 480 px wide: 13 pt on a 6.4 in figure at 100 dpi reads as ~13 px there.
FONT_SIZE = 13
# The bar pair per predictor of each model-vs-baselines panel: metric -> its legend label.
RANK_METRICS = {"spearman_within_subreddit": "within subreddit", "spearman": "overall"}
ERROR_METRICS = {"mae": "MAE", "rmse": "RMSE"}

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def _readable_text():
    import matplotlib

    with matplotlib.rc_context({"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE, "legend.fontsize": FONT_SIZE - 1}):
        yield


def readable(plot: Callable[P, R]) -> Callable[P, R]:
    """Draws `plot` with FONT_SIZE text (rcParams are read when each artist is made, so the whole call)."""

    @wraps(plot)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> R:
        with _readable_text():
            return plot(*args, **kwargs)

    return drawn


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


@readable
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


@readable
def plot_error_distribution(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    figure = _figure()
    ax = figure.subplots()
    ax.hist(np.asarray(y_pred) - np.asarray(y_true), bins=40)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("prediction - truth")
    ax.set_ylabel("posts")
    ax.set_title("Test error distribution")
    return _save(figure, path)


def train_val_gap_note(training: TrainingSettings) -> str:
    """Why the train curve may sit above the validation curve, from how this model trained."""
    note = (
        "Train loss is the mean over each epoch's batches, with dropout "
        f"{training.dropout:g} on (half of it on the input vectors) and weights still changing; "
        "validation loss is measured after the epoch with dropout off. "
    )
    if training.dropout > 0:
        return note + "So train loss above validation loss is expected, not a sign of a bug."
    return note + "With dropout 0 the gap is only the within-epoch averaging."


def loss_label(training: TrainingSettings) -> str:
    if training.rank_loss_weight > 0:
        return f"loss (squared error + {training.rank_loss_weight:g} x ranking term)"
    return "loss (mean squared error)"


@readable
def learning_curves_figure(history: dict[str, list[float]], training: TrainingSettings):
    """Both curves on one linear scale, the best epoch marked, and a note saying why train and val differ."""
    figure = _figure(6.4, 5.6)
    ax = figure.subplots()
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", markersize=4, label=label)
    val = history.get("val_loss") or []
    if val:
        best = int(np.nanargmin(val)) + 1
        ax.axvline(best, color="grey", linestyle=":", linewidth=1.5, label=f"lowest validation loss (epoch {best})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label(training))
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend_above(ax, ncols=2)
    figure.text(0.01, 0.01, textwrap.fill(train_val_gap_note(training), 75), fontsize=FONT_SIZE - 2, va="bottom")
    figure.tight_layout(rect=(0, 0.17, 1, 1))  # the bottom sixth holds the note
    return figure


def plot_learning_curves(history: dict[str, list[float]], path: Path, training: TrainingSettings) -> Path:
    learning_curves_figure(history, training).savefig(path, format="png")
    return path


def _legend_above(ax, ncols: int):
    """A legend just above the axes: outside the data area, so it never covers a bar or a line."""
    return ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=ncols, frameon=False, borderaxespad=0.0)


def champion_note(champion: dict[str, Any] | None) -> str:
    """What the plot says about the champion: re-scored here, not scorable, or none existed."""
    if not champion or not champion.get("version"):
        return "No champion existed when this version was trained: no champion bar."
    if isinstance(champion.get("metrics"), dict) and not champion["metrics"].get("error"):
        return f"champion = {champion['version']}, re-scored on this version's test slice."
    reason = champion.get("error") or (champion.get("metrics") or {}).get("error") or "no metrics recorded"
    return f"Champion {champion['version']} could not be re-scored ({reason}): no champion bar."


def comparison_rows(
    results: dict[str, dict[str, Any]], champion: dict[str, Any] | None
) -> list[tuple[str, dict[str, Any]]]:
    """(label, metrics) top to bottom: the model, each baseline scored, then the champion when it was re-scored."""
    rows = [("model", results.get("model") or {})]
    rows += [(column_label(name), results[name]) for name in BASELINE_NAMES if isinstance(results.get(name), dict)]
    scored = (champion or {}).get("metrics")
    if isinstance(scored, dict) and not scored.get("error"):
        rows.append(("champion", scored))
    return rows


def _bar_value(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None


def _paired_bars(ax, rows: list[tuple[str, dict[str, Any]]], keys: dict[str, str], xlabel: str) -> None:
    """Two horizontal bars per predictor, each labelled with its value ('n/a' where there is none)."""
    y = np.arange(len(rows))
    values_seen: list[float] = [0.0]
    for offset, (key, label) in zip((-0.2, 0.2), keys.items(), strict=True):
        values = [_bar_value(metrics, key) for _, metrics in rows]
        bars = ax.barh(y + offset, [v or 0.0 for v in values], height=0.4, label=label)
        ax.bar_label(bars, [f"{v:.3f}" if v is not None else "n/a" for v in values], padding=3)
        values_seen += [v for v in values if v is not None]
    low, high = min(values_seen), max(values_seen)
    room = 0.3 * (high - low or 1.0)  # space for the value labels beside the bars
    ax.set_xlim(low - room if low < 0 else 0.0, high + room)
    ax.set_yticks(y, [label for label, _ in rows])
    ax.invert_yaxis()  # the model on top
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_xlabel(xlabel)


@readable
def model_vs_baselines_figure(results: dict[str, dict[str, Any]], champion: dict[str, Any] | None):
    """Rank correlation and error of the model, the baselines and the champion on one test slice."""
    rows = comparison_rows(results, champion)
    figure = _figure(6.4, 3.4 + 0.9 * len(rows))
    rank_ax, error_ax = figure.subplots(2, 1)
    _paired_bars(rank_ax, rows, RANK_METRICS, "Spearman (higher is better)")
    _paired_bars(error_ax, rows, ERROR_METRICS, "error in log1p score (lower is better)")
    for ax in (rank_ax, error_ax):
        _legend_above(ax, ncols=2)
    figure.suptitle("Test slice: model vs baselines and champion", fontsize=FONT_SIZE + 1)
    figure.text(0.01, 0.01, textwrap.fill(champion_note(champion), 75), fontsize=FONT_SIZE - 2, va="bottom")
    figure.tight_layout(rect=(0, 0.06, 1, 1))  # the bottom strip holds the champion note
    return figure


def plot_model_vs_baselines(
    results: dict[str, dict[str, Any]], path: Path, champion: dict[str, Any] | None = None
) -> Path:
    model_vs_baselines_figure(results, champion).savefig(path, format="png")
    return path


def within_subreddit_plottable(results: dict[str, dict[str, Any]]) -> bool:
    """Whether any subreddit had enough test posts to be ranked within (else the UI shows the reason in words)."""
    return bool((results.get("model") or {}).get("per_subreddit"))


@readable
def plot_within_subreddit_spearman(results: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Per-subreddit Spearman of the model and two baselines; None (no file) when no subreddit was scored."""
    if not within_subreddit_plottable(results):
        return None
    per_model = results["model"]["per_subreddit"]
    chosen = sorted(per_model, key=lambda s: -per_model[s]["n"])[:MAX_SUBREDDITS_PLOTTED]
    figure = _figure(7, max(3.0, 0.3 * len(chosen) + 1.5))
    ax = figure.subplots()
    y = np.arange(len(chosen))
    ax.barh(y, [per_model[s]["spearman"] for s in chosen], label="model", alpha=0.8)
    for marker, name in (("o", "baseline_metadata_gbm"), ("x", "baseline_text_ridge")):
        per_baseline = results.get(name, {}).get("per_subreddit") or {}
        values = [per_baseline.get(s, {}).get("spearman", np.nan) for s in chosen]
        ax.scatter(values, y, marker=marker, color="black", s=18, label=column_label(name))
    ax.set_yticks(y, [f"{s} (n={per_model[s]['n']})" for s in chosen], fontsize="small")
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_xlabel("Spearman within subreddit (test slice)")
    _legend_above(ax, ncols=3)
    return _save(figure, path)


@readable
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
    training: TrainingSettings,
    champion: dict[str, Any] | None = None,
) -> dict[str, str]:
    """All plots into `version_dir`; returns {plot name: file name} of those written.

    `champion`: metrics.json's "champion" block. The within-subreddit plot is left out when no
    subreddit had enough test posts: the page says why in words instead of showing an empty image.
    """
    written = {
        "predicted_vs_true": plot_predicted_vs_true(y_true, y_pred, version_dir / PLOT_FILES["predicted_vs_true"]),
        "error_distribution": plot_error_distribution(y_true, y_pred, version_dir / PLOT_FILES["error_distribution"]),
        "learning_curves": plot_learning_curves(history, version_dir / PLOT_FILES["learning_curves"], training),
        "model_vs_baselines": plot_model_vs_baselines(
            results, version_dir / PLOT_FILES["model_vs_baselines"], champion
        ),
        "within_subreddit_spearman": plot_within_subreddit_spearman(
            results, version_dir / PLOT_FILES["within_subreddit_spearman"]
        ),
        "confusion_matrix": plot_confusion_matrix(
            results.get("model") or {}, version_dir / PLOT_FILES["confusion_matrix"]
        ),
    }
    return {name: path.name for name, path in written.items() if path is not None}
