"""The model card: a skipped training says why once; the metrics table says which way is good."""

from __future__ import annotations

import re

from smpp.training.card import render_model_card

SKIP = "too few labelled rows: 3 < min_rows=30 — backfill more days, or lower training.min_rows"


def _scores(within, mae, n=144, **extra):
    return {"spearman_within_subreddit": within, "spearman": 0.5, "mae": mae, "n": n, **extra}


def _trained(model_within=0.17, **model_extra):
    return {
        "version": "20261119T010000Z-bbbbbb",
        "created_utc": "2026-11-19T01:00:00+00:00",
        "profile": "tiny",
        "rows": {"input": 800, "labelled": 720, "train": 460, "val": 116, "test": 144},
        "data_window": {"start": "2026-10-01", "end": "2026-11-18"},
        "model": _scores(
            model_within, 0.91, **{"within_subreddit_min_posts": 20, "subreddits_scored": 4, **model_extra}
        ),
        "baseline_text_ridge": _scores(0.11, 1.1),
        "baseline_subreddit_mean": _scores(0.0, 1.2),
        "baseline_metadata_gbm": _scores(0.08, 0.87),
        "baseline_train_median": _scores(None, 1.3),
        "champion": {"version": "20261118T010000Z-aaaaaa", "metrics": _scores(0.2, 0.95)},
        "warnings": [],
    }


def _table(card: str) -> list[list[str]]:
    lines = [line for line in card.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_a_skipped_training_card_says_why_once_without_empty_sections():
    metrics = {
        "version": "20261117T010000Z-cccccc",
        "created_utc": "2026-11-17T01:00:00+00:00",
        "profile": "tiny",
        "rows": {"input": 3, "labelled": 3, "in_window": 3, "train": 0, "val": 0, "test": 0},
        "data_window": {"start": None, "end": None},
        "model": None,
        "baseline_subreddit_mean": None,
        "champion": None,
        "warnings": ["RANDOM ENCODER WEIGHTS: title_emb"],
        "skipped_reason": SKIP,
    }
    card = render_model_card(metrics, None)
    assert card.count("too few labelled rows") == 1 and f"**Skipped:** {SKIP}" in card
    assert "- Rows: input 3, labelled 3, in_window 3" in card and "RANDOM ENCODER WEIGHTS: title_emb" in card
    for empty in ("None", "n/a", "0 posts", "## Test metrics", "## Features", "|"):
        assert empty not in card, empty


def test_metrics_table_columns_directions_and_best_values():
    rows = _table(render_model_card(_trained(), None))
    assert rows[0] == [
        "metric",
        "better",
        "model",
        "subreddit mean",
        "metadata gbm",
        "text ridge",
        "train median (constant)",
        "champion 20261118T010000Z-aaaaaa",
    ]
    by_metric = {row[0]: row[1:] for row in rows[1:]}
    assert by_metric["spearman_within_subreddit"] == [
        "higher is better",
        "0.1700",
        "0.0000",
        "0.0800",
        "0.1100",
        "n/a",
        "**0.2000**",
    ]
    assert by_metric["mae"][0] == "lower is better" and by_metric["mae"].index("**0.8700**") == 3
    assert by_metric["n"][0] == "count" and not any("**" in cell for cell in by_metric["n"])
    assert "latency_ms_per_post" not in by_metric  # reported by no column: no row of n/a


def test_a_missing_headline_metric_says_why_next_to_it():
    card = render_model_card(_trained(model_within=None, subreddits_scored=0), None)
    row = next(r for r in _table(card) if r[0] == "spearman_within_subreddit")
    assert re.fullmatch(r"n/a \(no subreddit has 20 test posts \(training\.within_subreddit_min_posts=20\).*\)", row[2])
    assert render_model_card(_trained(), None).count("no subreddit has") == 0
