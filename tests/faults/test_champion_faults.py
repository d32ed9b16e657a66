"""Issue 14 item 0: a champion trained on one day re-scored absurdly the next day, and nothing stopped it.

The UI backfill of 2013-07-24..26 showed the champion (trained on one day) re-scored on the next
day's test slice at MAE 136363 and R2 -1e10, without a warning. Cause: day of week is constant in
a one-day slice; its float32 variance (~1e-12, or 0) became the normaliser's divisor, so the next
day's value reached ~1e5 inside the network. Here: one training on a one-day frame whose day of
week and a history count are constant, re-scored on the next day; then the gate on hand-written
metrics (too little evidence, implausible predictions, MAE worse than a constant, broken champion).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from smpp.features.author_history import HISTORY_COLUMNS
from smpp.lifecycle.registry import champion, decide_and_publish, new_version_id, record_champion_block, version_dir
from smpp.settings import Settings, TrainingSettings

DAY = int(datetime(2013, 7, 24, tzinfo=UTC).timestamp())
SUBREDDITS = {"pics": 2.0, "aww": 1.0, "funny": 0.0}
DIM = 8


def _day_frame(day_start: int, n: int, seed: int, prior_posts: bool) -> pd.DataFrame:
    """Posts of one UTC day: label = 1 + subreddit effect + title signal + noise; meta columns from created time.

    `prior_posts` False: subreddit_prior_posts_log is 0 for every row (as in a first backfilled day).
    """
    rng = np.random.default_rng(seed)
    created = day_start + np.sort(rng.integers(0, 86_000, size=n))
    subreddits = rng.choice(list(SUBREDDITS), size=n)
    titles = rng.normal(size=(n, DIM)).astype(np.float32)
    weights = np.linspace(-1, 1, DIM)
    label = 1.0 + np.array([SUBREDDITS[s] for s in subreddits]) + 0.3 * titles @ weights + 0.2 * rng.normal(size=n)
    hours = (created % 86_400) / 3600.0
    dow = (created // 86_400 + 4) % 7  # 1970-01-01 was a Thursday
    frame = pd.DataFrame(
        {
            "post_id": [f"d{day_start}_{i}" for i in range(n)],
            "subreddit": subreddits,
            "author": [f"user{i % 40}" for i in range(n)],
            "created_utc": created.astype("int64"),
            "label": np.clip(label, 0, None),
            "title_chars": rng.integers(10, 120, size=n).astype(np.float32),
            "hour_sin": np.sin(2 * np.pi * hours / 24).astype(np.float32),
            "hour_cos": np.cos(2 * np.pi * hours / 24).astype(np.float32),
            "dow_sin": np.sin(2 * np.pi * dow / 7).astype(np.float32),
            "dow_cos": np.cos(2 * np.pi * dow / 7).astype(np.float32),
        }
    )
    for column in HISTORY_COLUMNS:  # present, so training does not recompute them
        frame[column] = np.nan
    frame["subreddit_prior_posts_log"] = (
        np.log1p(rng.integers(50, 400, size=n)).astype(np.float32) if prior_posts else np.float32(0.0)
    )
    frame["title_emb"] = list(titles)
    return frame


def _settings(data_dir, **training) -> Settings:
    base = {
        "epochs": 3,
        "batch_size": 32,
        "patience": 2,
        "ensemble_size": 1,
        "min_rows": 30,
        "first_pass_in_child": False,
    }
    return Settings(data_dir=data_dir, model_profile="offline", training=TrainingSettings(**{**base, **training}))


def test_champion_trained_on_one_day_scores_the_next_day_sanely(tmp_path):
    from rescoring import rescore_version
    from smpp.training import train_and_evaluate

    settings = _settings(tmp_path / "data")
    one_day = _day_frame(DAY, 300, seed=1, prior_posts=False)
    version = new_version_id()
    report = train_and_evaluate(settings, one_day, version_dir(settings, version))
    assert report.skipped_reason is None, report.skipped_reason

    next_day = _day_frame(DAY + 86_400, 200, seed=2, prior_posts=True)
    rescored = rescore_version(settings, version, next_day)
    labels = next_day["label"].to_numpy(float)
    constant_mae = float(np.mean(np.abs(labels - np.median(one_day["label"]))))
    # before the fix: MAE ~1e4..1e6 (R2 ~ -1e10), as on the UI's Metrics tab; after: the scale of the labels
    assert rescored["mae"] < 2 * constant_mae, rescored
    spread = float(one_day["label"].std())
    assert (
        one_day["label"].min() - 3 * spread
        <= rescored["prediction_min"]
        <= rescored["prediction_max"]
        <= one_day["label"].max() + 3 * spread
    ), rescored
    # and training records what the gate judges plausibility by
    metrics = json.loads((report.version_dir / "metrics.json").read_text())
    assert metrics["train_labels"]["n"] == report.rows["train"]
    assert metrics["baseline_train_median"]["mae"] > 0


# ---------------------------------------------------------------- the gate, on hand-written metrics

TRAIN_LABELS = {"n": 1500, "min": 0.0, "max": 8.0, "mean": 2.5, "median": 2.3, "std": 1.5}


def _scores(within=0.3, spearman=0.6, mae=0.8, n=400, low=0.2, high=7.0) -> dict:
    return {
        "spearman_within_subreddit": within,
        "spearman": spearman,
        "mae": mae,
        "rmse": mae + 0.2,
        "r2": 0.4,
        "n": n,
        "prediction_min": low,
        "prediction_max": high,
    }


def _register(settings, second: int, model: dict, train_rows: int = 1500, constant_mae: float = 1.2) -> str:
    version = new_version_id(datetime(2026, 11, 1, 0, 0, second, tzinfo=UTC))
    folder = version_dir(settings, version)
    folder.mkdir(parents=True)
    baseline = {"spearman_within_subreddit": 0.0, "spearman": 0.2, "mae": 1.0, "n": model["n"]}
    metrics = {
        "model": model,
        **{name: baseline for name in ("baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge")},
        "baseline_train_median": {
            "spearman_within_subreddit": 0.0,
            "spearman": 0.0,
            "mae": constant_mae,
            "n": model["n"],
        },
        "train_labels": TRAIN_LABELS,
        "rows": {"train": train_rows, "val": 300, "test": model["n"]},
        "skipped_reason": None,
        "champion": None,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "model.keras").write_bytes(b"stand-in: the gate only checks that the file exists")
    return version


@pytest.fixture
def registry(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model_profile="offline")


def test_gate_refuses_a_slice_too_small_to_be_evidence(registry):
    # the 3-day backfill's day 2: 145 train rows, 45 test rows, no subreddit with 20 test posts
    small = _register(registry, 1, _scores(within=None, spearman=0.75, n=45), train_rows=145)
    decision = decide_and_publish(registry, small)
    assert not decision.promoted and "too little evidence" in decision.reason
    assert "promotion_min_train_rows" in decision.reason and champion(registry) is None
    few_tests = _register(registry, 2, _scores(n=60))
    assert "promotion_min_test_rows" in decide_and_publish(registry, few_tests).reason
    null_within = _register(registry, 3, _scores(within=None, spearman=0.9))
    refused = decide_and_publish(registry, null_within)
    assert not refused.promoted and "spearman_within_subreddit is null" in refused.reason
    assert champion(registry) is None


def test_gate_refuses_predictions_far_outside_the_train_label_range(registry):
    wild = _register(registry, 1, _scores(high=136363.2455))
    decision = decide_and_publish(registry, wild)
    assert not decision.promoted and "outside the train label range" in decision.reason
    assert champion(registry) is None


def test_gate_refuses_an_mae_worse_than_a_constant_predictor(registry):
    worse = _register(registry, 1, _scores(mae=1.5), constant_mae=1.2)
    decision = decide_and_publish(registry, worse)
    assert not decision.promoted and "constant train-median predictor" in decision.reason
    assert champion(registry) is None


def test_broken_champion_is_flagged_and_not_a_bar_to_beat(registry):
    first = _register(registry, 1, _scores(within=0.30))
    assert decide_and_publish(registry, first).promoted
    challenger = _register(registry, 2, _scores(within=0.25))
    # the champion re-scored on the challenger's slice as in the report: its Spearman happens to be higher
    absurd = {
        "spearman_within_subreddit": 0.40,
        "spearman": 0.60,
        "mae": 136363.2455,
        "rmse": 136363.2455,
        "r2": -10_209_123_868.0,
        "n": 400,
        "prediction_min": 136360.0,
        "prediction_max": 136370.0,
    }
    record_champion_block(registry, challenger, first, absurd)
    decision = decide_and_publish(registry, challenger)
    assert decision.warnings and "looks broken" in decision.warnings[0] and "looks broken" in decision.reason
    assert decision.promoted and champion(registry) == challenger
    logged = json.loads((registry.models_dir / "promotions.jsonl").read_text().splitlines()[-1])
    assert logged["warnings"] == decision.warnings
    # a champion whose predictions are not even finite is broken too, not an exception
    third = _register(registry, 3, _scores(within=0.20))
    unscorable = {"n": 400, "error": "400 of 400 predictions are not finite", "mae": None, "spearman": None}
    record_champion_block(registry, third, challenger, unscorable)
    decision = decide_and_publish(registry, third)
    assert decision.promoted and "not finite" in decision.warnings[0]


def test_broken_champion_is_named_even_when_the_challenger_is_refused_first(registry):
    first = _register(registry, 1, _scores(within=0.30))
    assert decide_and_publish(registry, first).promoted
    weak = _register(registry, 2, _scores(within=-0.1))  # loses to the baselines (0.0)
    absurd = {**_scores(), "mae": 630608.16, "prediction_min": -630608.0, "prediction_max": -630600.0}
    record_champion_block(registry, weak, first, absurd)
    decision = decide_and_publish(registry, weak)
    assert not decision.promoted and "does not beat baseline" in decision.reason
    assert decision.warnings and "looks broken" in decision.reason and champion(registry) == first
