"""Evaluation plots: readable text, legends off the data, the champion compared, the train/val gap explained."""

from __future__ import annotations

import pytest

from smpp.settings import TrainingSettings
from smpp.training import plots

BASELINE = {"spearman_within_subreddit": 0.08, "spearman": 0.79, "mae": 1.1, "rmse": 1.4}
RESULTS = {
    "model": {"spearman_within_subreddit": 0.17, "spearman": 0.81, "mae": 0.91, "rmse": 1.2, "per_subreddit": {}},
    "baseline_subreddit_mean": {**BASELINE, "spearman_within_subreddit": 0.0},
    "baseline_metadata_gbm": BASELINE,
    "baseline_text_ridge": {**BASELINE, "spearman_within_subreddit": 0.11},
}
CHAMPION = {"version": "20261118T010000Z-aaaaaa", "metrics": {**BASELINE, "spearman_within_subreddit": 0.2222}}


def _texts(figure) -> list[str]:
    return [t.get_text().replace("\n", " ") for t in figure.findobj(lambda a: hasattr(a, "get_text"))]


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("champion", [CHAMPION, None])
def test_model_vs_baselines_legends_sit_outside_the_axes_and_inside_the_figure(champion):
    figure = plots.model_vs_baselines_figure(RESULTS, champion)
    renderer = figure.canvas.get_renderer()
    whole = figure.get_window_extent(renderer)
    for ax in figure.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not _overlaps(legend, ax.get_window_extent(renderer))
        assert whole.x0 <= legend.x0 and legend.x1 <= whole.x1 and legend.y1 <= whole.y1


def test_model_vs_baselines_text_is_readable_at_the_displayed_size():
    figure = plots.model_vs_baselines_figure(RESULTS, CHAMPION)
    # the UI shows plots at most 480 px wide: text smaller than ~10 px there is unreadable
    shrink = 480 / (figure.get_figwidth() * figure.dpi)
    for ax in figure.axes:
        for label in [*ax.get_yticklabels(), *ax.get_xticklabels(), ax.xaxis.label]:
            assert label.get_fontsize() * figure.dpi / 72 * shrink >= 10, label.get_text()


def test_model_vs_baselines_has_a_champion_bar_with_its_value():
    figure = plots.model_vs_baselines_figure(RESULTS, CHAMPION)
    rank_ax = figure.axes[0]
    assert [t.get_text() for t in rank_ax.get_yticklabels()][-1] == "champion"
    assert "0.222" in _texts(figure)
    assert any("20261118T010000Z-aaaaaa" in t for t in _texts(figure))


@pytest.mark.parametrize(
    "champion, says",
    [
        (None, "No champion existed"),
        (
            {"version": "20261118T010000Z-aaaaaa", "metrics": None, "error": "model.keras missing"},
            "model.keras missing",
        ),
    ],
)
def test_model_vs_baselines_without_a_scored_champion_says_so_and_draws_no_champion_bar(champion, says):
    figure = plots.model_vs_baselines_figure(RESULTS, champion)
    assert "champion" not in [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert any(says in t for t in _texts(figure))


def test_learning_curves_share_one_linear_scale_and_explain_the_gap():
    history = {"loss": [2.1, 1.4, 1.2, 1.1], "val_loss": [1.3, 1.0, 0.95, 0.97]}
    figure = plots.learning_curves_figure(history, TrainingSettings(dropout=0.35))
    (ax,) = figure.axes
    assert ax.get_yscale() == "linear"
    assert [line.get_label() for line in ax.get_lines()][:2] == ["train loss", "validation loss"]
    assert any("dropout 0.35" in t and "dropout off" in t for t in _texts(figure))
    assert any("epoch 3" in t for t in _texts(figure))  # the lowest validation loss is marked


def test_within_subreddit_plot_is_not_written_when_no_subreddit_was_scored(tmp_path):
    assert plots.plot_within_subreddit_spearman(RESULTS, tmp_path / "w.png") is None
    assert not (tmp_path / "w.png").exists()
    scored = {**RESULTS, "model": {**RESULTS["model"], "per_subreddit": {"pics": {"spearman": 0.3, "n": 40}}}}
    assert plots.plot_within_subreddit_spearman(scored, tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
