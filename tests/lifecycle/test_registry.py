"""Registry gate on hand-written metrics.json files (no training: every branch of the rule, fast)."""

import json
import re
from datetime import UTC, datetime

import pytest

from smpp.lifecycle.registry import champion, decide_and_publish, list_versions, new_version_id, version_dir

BASELINES = ("baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge")


def _block(within, mae=0.5, spearman=0.8):
    return {
        "spearman_within_subreddit": within,
        "spearman": spearman,
        "mae": mae,
        "rmse": mae + 0.1,
        "r2": 0.5,
        "n": 300,
        "prediction_min": 0.5,
        "prediction_max": 6.0,
    }


# what training writes for the plausibility checks: train labels in [0, 8], a constant predictor at MAE 1.0
TRAIN_LABELS = {"n": 1200, "min": 0.0, "max": 8.0, "mean": 3.0, "median": 2.9, "std": 1.5}
CONSTANT = {"mae": 1.0, "spearman": 0.0, "spearman_within_subreddit": 0.0, "n": 300}


def _register(settings, stamp, model, baselines=(0.0, 0.05, 0.1), skipped=None, champion_block=None):
    version = new_version_id(datetime(2026, 11, 1, 0, 0, stamp, tzinfo=UTC))
    folder = version_dir(settings, version)
    folder.mkdir(parents=True)
    metrics = {
        "model": None if skipped else model,
        **{name: None if skipped else _block(value) for name, value in zip(BASELINES, baselines)},
        "rows": {"train": 1200, "val": 280, "test": 300},
        "train_labels": None if skipped else TRAIN_LABELS,
        "baseline_train_median": None if skipped else CONSTANT,
        "skipped_reason": skipped,
        "champion": champion_block,
        "created_utc": f"2026-11-01T00:00:{stamp:02d}+00:00",
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if not skipped:
        (folder / "model.keras").write_bytes(b"stand-in: the gate only checks that the file exists")
    return version


def _log(settings):
    return [json.loads(line) for line in (settings.models_dir / "promotions.jsonl").read_text().splitlines()]


def test_version_ids_sort_by_time_and_reject_paths(settings):
    early = new_version_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = new_version_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert re.fullmatch(r"20260102T030405Z-[0-9a-f]{6}", early)
    assert early < late
    assert version_dir(settings, early) == settings.models_dir / early
    with pytest.raises(ValueError):
        version_dir(settings, "../../etc")


def test_first_model_beating_baselines_is_promoted(settings):
    version = _register(settings, 1, _block(0.3))
    decision = decide_and_publish(settings, version)
    assert decision.promoted and decision.champion is None
    assert champion(settings) == version
    pointer = json.loads((settings.models_dir / "champion.json").read_text())
    assert pointer["version"] == version and pointer["previous"] is None
    assert json.loads((version_dir(settings, version) / "decision.json").read_text())["promoted"] is True
    assert _log(settings)[0]["challenger_metrics"]["spearman_within_subreddit"] == 0.3


def test_first_model_losing_to_a_baseline_is_not_promoted(settings):
    version = _register(settings, 1, _block(0.08), baselines=(0.0, 0.05, 0.1))
    decision = decide_and_publish(settings, version)
    assert not decision.promoted and "baseline_text_ridge" in decision.reason
    assert champion(settings) is None
    assert len(_log(settings)) == 1 and _log(settings)[0]["promoted"] is False


def test_skipped_version_is_never_promoted(settings):
    version = _register(settings, 1, None, skipped="too few labelled rows to train: 3 < min_rows=30")
    decision = decide_and_publish(settings, version)
    assert not decision.promoted and "too few labelled rows" in decision.reason
    assert champion(settings) is None and len(_log(settings)) == 1


def _scored(champion_version, metrics=None, error=None):
    """The block evaluate_and_publish writes: the champion scored on the challenger's test slice."""
    return {"version": champion_version, "metrics": metrics, "error": error, "same_test_slice": metrics is not None}


def test_challenger_must_beat_champion_by_the_margin(settings):
    first = _register(settings, 1, _block(0.30))
    assert decide_and_publish(settings, first).promoted
    margin = settings.training.promotion_margin
    close = _register(settings, 2, _block(0.30 + margin / 2), champion_block=_scored(first, _block(0.30)))
    decision = decide_and_publish(settings, close)
    assert not decision.promoted and "margin" in decision.reason and "re-scored" in decision.reason
    assert champion(settings) == first
    better = _register(settings, 3, _block(0.30 + 2 * margin), champion_block=_scored(first, _block(0.30)))
    decision = decide_and_publish(settings, better)
    assert decision.promoted and decision.champion == first
    assert champion(settings) == better
    assert [entry["promoted"] for entry in _log(settings)] == [True, False, True]


def test_challenger_losing_too_much_mae_is_not_promoted(settings):
    first = _register(settings, 1, _block(0.30, mae=0.50))
    decide_and_publish(settings, first)
    worse_mae = _register(
        settings,
        2,
        _block(0.50, mae=0.50 + 2 * settings.training.mae_tolerance),
        champion_block=_scored(first, _block(0.30, mae=0.50)),
    )
    decision = decide_and_publish(settings, worse_mae)
    assert not decision.promoted and "MAE" in decision.reason
    assert champion(settings) == first


def test_champion_is_compared_only_on_the_challengers_test_slice(settings):
    first = _register(settings, 1, _block(0.30))
    decide_and_publish(settings, first)
    # Its own test said 0.30; on the challenger's slice it scores 0.50, so 0.40 must lose.
    challenger = _register(settings, 2, _block(0.40), champion_block=_scored(first, _block(0.50)))
    decision = decide_and_publish(settings, challenger)
    assert not decision.promoted and "0.5000" in decision.reason
    assert decision.champion_metrics["spearman_within_subreddit"] == 0.50
    # Never scored on this slice (or scored for another champion): no comparison, so no promotion.
    unscored = _register(settings, 3, _block(0.90))
    refused = decide_and_publish(settings, unscored)
    assert not refused.promoted and "was not scored on this test slice" in refused.reason
    stale = _register(settings, 4, _block(0.90), champion_block=_scored("20200101T000000Z-abcdef", _block(0.1)))
    assert not decide_and_publish(settings, stale).promoted
    assert champion(settings) == first


def test_champion_that_cannot_be_scored_is_replaced_with_a_warning(settings):
    first = _register(settings, 1, _block(0.30))
    decide_and_publish(settings, first)
    failed = _scored(first, error="ValueError: expected 1024 text dims, got 768")
    challenger = _register(settings, 2, _block(0.40), champion_block=failed)
    decision = decide_and_publish(settings, challenger)
    assert decision.promoted and champion(settings) == challenger
    assert any("could not be scored" in warning and "1024" in warning for warning in decision.warnings)


def test_null_within_subreddit_falls_back_to_overall_spearman_only_when_allowed(settings):
    model = _block(None, spearman=0.9)
    version = _register(settings, 1, model, baselines=(None, None, None))
    refused = decide_and_publish(settings, version)
    assert not refused.promoted and "promotion_allow_overall_spearman is off" in refused.reason
    allowing = settings.model_copy(
        update={"training": settings.training.model_copy(update={"promotion_allow_overall_spearman": True})}
    )
    decision = decide_and_publish(allowing, version)
    assert decision.promoted
    assert "judged on overall spearman" in decision.reason


def test_list_versions_newest_first_with_status(settings):
    assert list_versions(settings) == []
    first = _register(settings, 1, _block(0.30))
    skipped = _register(settings, 2, None, skipped="too few labelled rows")
    decide_and_publish(settings, first)
    (settings.models_dir / new_version_id()).mkdir()  # crashed mid-training: no metrics.json
    listed = list_versions(settings)
    assert [v["status"] for v in listed] == ["incomplete", "skipped", "trained"]
    by_version = {v["version"]: v for v in listed}
    assert by_version[first]["is_champion"] and by_version[first]["promoted"] is True
    assert by_version[first]["metrics"]["spearman_within_subreddit"] == 0.30
    assert by_version[skipped]["promoted"] is None and by_version[skipped]["created"].startswith("2026-11-01")
