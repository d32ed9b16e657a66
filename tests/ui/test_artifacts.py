"""The Airflow-free readers behind the plugin pages."""

from __future__ import annotations

import re
from datetime import date

import pytest
from smpp_ui_testdata import CHALLENGER, CHAMPION, FULL_DAY, INGEST_DAY, SKIPPED

from smpp.storage import write_run_metrics
from smpp.ui import artifacts as ui
from smpp.ui import render


def test_run_view_of_a_full_day(settings, artifacts):
    view = ui.run_view(settings, date.fromisoformat(FULL_DAY))
    assert [s.name for s in view.stages] == [
        "scrape_posts",
        "filter_posts",
        "fetch_images",
        "build_features",
        "train_model",
        "evaluate_and_publish",
    ]
    assert dict(view.funnel)["posts after filtering"] == 987
    assert ("filter_posts", "nsfw", 200) in view.drop_reasons and ("fetch_images", "http_404", 387) in view.drop_reasons
    assert ("scrape_posts", "bad_created_utc", 2) in view.drop_reasons
    assert view.model is not None and view.model.version == CHALLENGER and view.no_model_reason is None
    assert view.model.comparison["model"]["spearman_within_subreddit"] == 0.1734
    assert view.model.comparison[f"champion {CHAMPION}"]["spearman_within_subreddit"] == 0.2222
    assert "per_subreddit" not in view.model.comparison["model"]
    assert view.model.plots == ["plot_predicted_vs_true.png", "plot_learning_curves.png"]  # not the escaping symlink


def test_ingest_only_day_and_empty_day(settings, artifacts):
    ingest = ui.run_view(settings, date.fromisoformat(INGEST_DAY))
    assert ingest.model is None and "No model was trained" in ingest.no_model_reason
    empty = ui.run_view(settings, date(2020, 1, 1))
    assert not empty.has_artifacts and empty.model is None


def test_a_skipped_training_is_explained(settings, artifacts):
    write_run_metrics(settings, "2026-11-17", "train_model", {"version": SKIPPED, "rows": {"input": 3, "labelled": 3}})
    view = ui.run_view(settings, date(2026, 11, 17))
    assert view.model.status == "skipped" and view.no_model_reason.startswith(
        "No model was trained for this day: too few"
    )


def test_unreadable_files_become_notes_not_errors(settings, artifacts):
    (settings.runs_dir / f"ds={FULL_DAY}" / "broken.json").write_text("{not json")
    (settings.models_dir / CHALLENGER / "decision.json").write_text("[truncated")
    view = ui.run_view(settings, date.fromisoformat(FULL_DAY))
    assert any("broken.json unreadable" in p for p in view.problems)
    assert any("decision.json unreadable" in p for p in view.model.problems)
    assert view.model.decision["reason"] == "below champion"  # fell back to the promotions log


@pytest.mark.parametrize(
    "version, name",
    [
        (CHALLENGER, "../../secret.png"),
        (CHALLENGER, "/etc/passwd"),
        (CHALLENGER, "plot_escape.png"),
        (CHALLENGER, "model.keras"),
        (CHALLENGER, ".hidden.png"),
        (CHALLENGER, "a/b.png"),
        ("..", "secret.png"),
        ("../models", "plot_loose.png"),
        (CHALLENGER, "missing.png"),
    ],
)
def test_model_file_is_confined(settings, artifacts, version, name):
    with pytest.raises(ui.ArtifactNotFound):
        ui.model_file(settings, version, name)


def test_model_file_serves_a_plot(settings, artifacts):
    path, media_type = ui.model_file(settings, CHALLENGER, "plot_learning_curves.png")
    assert path.read_bytes().startswith(b"\x89PNG") and media_type == "image/png"


def test_markdown_card_escapes_raw_html():
    html = render.markdown_to_html("# T\n\n<img src=x onerror=alert(1)>\n\n**bold**")
    assert "<img" not in html and "&lt;img" in html and "<strong>bold</strong>" in html


def test_chart_without_trained_versions(settings):
    assert "No trained version" in render.metric_chart_svg([])


def test_chart_falls_back_to_overall_spearman_like_the_gate():
    def row(version: str, metrics: dict, champion: bool = False) -> ui.VersionRow:
        return ui.VersionRow(version, None, None, {}, "trained", None, metrics, {}, champion, None, champion)

    rows = [
        row("20261102T000000Z-bbbbbb", {"spearman": 0.61}),
        row("20261101T000000Z-aaaaaa", {"spearman": 0.55}, True),
    ]
    assert render.chart_metric(rows) == "spearman"
    html = render.models_page(rows, {"version": "20261101T000000Z-aaaaaa"}, lambda v: v)
    assert "<h2>spearman by run day</h2>" in html and "the promotion gate then judges on" in html
    assert "20261102T000000Z-bbbbbb: 0.6100" in html and "20261101T000000Z-aaaaaa: 0.5500 (champion)" in html
    rows.append(row("20261103T000000Z-cccccc", {"spearman": 0.7, "spearman_within_subreddit": 0.12}))
    assert render.chart_metric(rows) == "spearman_within_subreddit"


def _chart_row(version: str, run_day: str, model: float, baselines: dict[str, float]) -> ui.VersionRow:
    scored = {name: {"spearman_within_subreddit": value} for name, value in baselines.items()}
    return ui.VersionRow(
        version, None, run_day, {}, "trained", None, {"spearman_within_subreddit": model}, scored, None, None, False
    )


# trained out of run-day order (a backfill after the scheduled runs): version ids all read 20261201
CHART_ROWS = [
    _chart_row("20261201T030000Z-cccccc", "2026-11-10", 0.15, {"baseline_text_ridge": 0.11}),
    _chart_row("20261201T020000Z-bbbbbb", "2026-11-19", 0.22, {"baseline_subreddit_mean": 0.0}),
    _chart_row(
        "20261201T010000Z-aaaaaa", "2026-11-14", 0.18, {"baseline_metadata_gbm": 0.09, "baseline_text_ridge": 0.12}
    ),
]


def _chart(rows: list[ui.VersionRow]) -> str:
    return re.search(r"<svg id='metric-chart'.*?</svg>", render.metric_chart_svg(rows), re.S).group(0)


def test_models_chart_x_axis_is_the_run_day_in_order():
    chart = _chart(CHART_ROWS)
    assert re.findall(r"<text class='x-label'[^>]*>([^<]+)</text>", chart) == ["2026-11-10", "2026-11-14", "2026-11-19"]
    models = re.findall(r"<(?:circle|polygon)[^>]*><title>(\d{8}T\d{6}Z-\w+): ", chart)
    assert models == ["20261201T030000Z-cccccc", "20261201T010000Z-aaaaaa", "20261201T020000Z-bbbbbb"]
    assert "run day" in chart and "20261201</text>" not in chart


def test_models_chart_draws_the_best_baseline_it_names_with_a_point_per_version():
    chart = _chart(CHART_ROWS)
    line = re.search(r"<polyline class='baseline-line' points='([^']+)'", chart).group(1)
    assert len(line.split()) == 3
    titles = re.findall(r"<rect class='baseline-point'[^>]*><title>([^<]+)</title>", chart)
    assert titles == [
        "20261201T030000Z-cccccc: best baseline text ridge 0.1100 (model +0.0400)",
        "20261201T010000Z-aaaaaa: best baseline text ridge 0.1200 (model +0.0600)",
        "20261201T020000Z-bbbbbb: best baseline subreddit mean 0.0000 (model +0.2200)",
    ]
    # the one-version chart still draws the baseline's point
    assert _chart(CHART_ROWS[:1]).count("class='baseline-point'") == 1


def test_models_chart_y_axis_is_fitted_to_the_data_with_tick_labels():
    rows = [r for r in CHART_ROWS if r.version != "20261201T020000Z-bbbbbb"]  # values 0.11 .. 0.18
    chart = _chart(rows)
    ticks = [float(t) for t in re.findall(r"<text class='y-tick'[^>]*>([^<]+)</text>", chart)]
    assert len(ticks) >= 3 and ticks == sorted(ticks)
    assert 0.0 < ticks[0] <= 0.11 and 0.18 <= ticks[-1] < 0.3  # not pinned at 0: the gap fills the chart
    assert "y axis fitted to the data" in chart


def test_models_table_shows_the_best_baseline_the_chart_draws():
    html = render.models_page(CHART_ROWS, None, lambda v: v)
    table = re.search(r"<table id='versions'>.*?</table>", html, re.S).group(0)
    assert "<th>best baseline (spearman_within_subreddit)</th>" in table and "subreddit-mean" not in table
    assert "<td>0.1200 (text ridge)</td>" in table and "<td>0.0000 (subreddit mean)</td>" in table


def test_run_day_comes_from_lineage_or_its_data_interval():
    assert ui.run_day_of({"run_day": "2026-11-19", "interval": [0, 1]}) == "2026-11-19"
    assert ui.run_day_of({"interval": [1_795_392_000, 1_795_478_400]}) == "2026-11-23"
    assert ui.run_day_of({}) is None and ui.run_day_of(None) is None
