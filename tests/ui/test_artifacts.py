"""The Airflow-free readers behind the plugin pages."""

from __future__ import annotations

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
    assert "<h2>spearman over versions</h2>" in html and "the promotion gate then judges on" in html
    assert "20261102T000000Z-bbbbbb: 0.6100" in html and "20261101T000000Z-aaaaaa: 0.5500 (champion)" in html
    rows.append(row("20261103T000000Z-cccccc", {"spearman": 0.7, "spearman_within_subreddit": 0.12}))
    assert render.chart_metric(rows) == "spearman_within_subreddit"
