"""Train the multimodal regressor on a feature table, evaluate it against baselines, write the version folder."""

from __future__ import annotations

import logging
import platform
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp import schema
from smpp.settings import Settings
from smpp.storage import atomic_write_json, atomic_write_text
from smpp.training.baselines import BASELINE_NAMES, run_baselines
from smpp.training.card import random_encoder_warnings, render_model_card
from smpp.training.metrics import full_metrics, json_safe, regression_metrics, tier_thresholds
from smpp.training.model import (
    InputSpec,
    build_model,
    embedding_dims,
    fit_model,
    keras_module,
    load_model,
    model_inputs,
    predict_frame,
    save_model,
)
from smpp.training.plots import write_plots
from smpp.training.split import ChronoSplit, chronological_split, labelled_rows, within_window

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ["post_id", "subreddit", "created_utc", "label"]
SECRET_KEY_PATTERN = re.compile(r"secret|password|token|api_key", re.IGNORECASE)
URL_PASSWORD_PATTERN = re.compile(r"(://[^:/@]+:)[^@]+@")
REDACTED = "***redacted***"


@dataclass
class TrainReport:
    version_dir: Path
    metrics: dict
    rows: dict[str, int]
    skipped_reason: str | None


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """The resolved settings as JSON, with secrets and URL passwords replaced."""

    def scrub(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: scrub(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v, key) for v in node]
        if node is not None and SECRET_KEY_PATTERN.search(key):
            return REDACTED
        if isinstance(node, str):
            return URL_PASSWORD_PATTERN.sub(rf"\1{REDACTED}@", node)
        return node

    return scrub(settings.model_dump(mode="json"))


def _iso(seconds: Any) -> str | None:
    if seconds is None or pd.isna(seconds):
        return None
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).isoformat()


def _window(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"start": None, "end": None, "start_utc": None, "end_utc": None}
    low, high = int(frame["created_utc"].min()), int(frame["created_utc"].max())
    return {"start": _iso(low), "end": _iso(high), "start_utc": low, "end_utc": high}


def data_window(labelled: pd.DataFrame, split: ChronoSplit | None) -> dict[str, Any]:
    window = _window(labelled)
    if split is not None:
        for part in ("train", "val", "test"):
            window[part] = _window(getattr(split, part))
    return window


def _validate_columns(features: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in features]
    if missing:
        raise ValueError(f"feature frame lacks required columns {missing}")


def _environment() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version()}
    for package in ("smpp", "tensorflow-cpu", "tensorflow", "keras", "lightgbm", "scikit-learn", "pandas", "numpy"):
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            continue
    return env


def _write_common(settings: Settings, version_dir: Path, lineage: dict | None) -> None:
    version_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(version_dir / "settings.json", redacted_settings(settings))
    record = dict(lineage or {})
    record.setdefault("environment", _environment())
    atomic_write_json(version_dir / "lineage.json", json_safe(record))


def _finish(version_dir: Path, metrics: dict, history_summary: dict | None) -> dict:
    metrics = json_safe(metrics)
    atomic_write_json(version_dir / "metrics.json", metrics)
    atomic_write_text(version_dir / "model_card.md", render_model_card(metrics, history_summary))
    return metrics


def _skip_reason(n_labelled: int, split: ChronoSplit | None, settings: Settings) -> str | None:
    if n_labelled < settings.training.min_rows:
        return (
            f"too few labelled rows to train: {n_labelled} < min_rows={settings.training.min_rows} "
            "(labels mature after the label age; wait for more days or lower training.min_rows)"
        )
    if split is None:
        return "no labelled rows in the training window"
    empty = [name for name, count in split.rows.items() if count == 0]
    if empty:
        return f"chronological split left {', '.join(empty)} empty: too few distinct post times ({split.rows})"
    return None


def _latency_ms_per_post(model, test: pd.DataFrame) -> tuple[np.ndarray, float]:
    predict_frame(model, test.head(8))  # first call traces the graph; not part of the steady-state cost
    start = time.perf_counter()
    predictions = predict_frame(model, test)
    elapsed = time.perf_counter() - start
    return predictions, 1000.0 * elapsed / max(1, len(test))


def with_history(settings: Settings, features: pd.DataFrame) -> pd.DataFrame:
    """`features` with the leak-free author/subreddit history columns, computed from its own rows if absent.

    Every row (labelled or not) counts as a prior post; labels count only once matured.
    """
    from smpp.author_history import HISTORY_COLUMNS, add_history_features

    if features.empty or "author" not in features or all(c in features for c in HISTORY_COLUMNS):
        return features
    return add_history_features(features, label_age_hours=settings.label_age_hours)


def split_for_training(settings: Settings, features: pd.DataFrame) -> ChronoSplit:
    """The split train_and_evaluate uses: labelled rows, training window, chronological cuts."""
    features = with_history(settings, features)
    in_window = within_window(labelled_rows(features), settings.training.train_window_days)
    return chronological_split(in_window, settings.training.val_fraction, settings.training.test_fraction)


def test_slice(settings: Settings, features: pd.DataFrame) -> pd.DataFrame:
    """The test rows train_and_evaluate would hold out of `features` (to re-score a champion on them)."""
    return split_for_training(settings, features).test


test_slice.__test__ = False  # its name starts with "test": keep pytest from collecting it where imported


def evaluate_frame(model, features: pd.DataFrame, min_posts: int) -> dict[str, Any]:
    """Metrics of a loaded model on the labelled rows of `features`."""
    labelled = labelled_rows(features)
    predictions = predict_frame(model, labelled)
    return regression_metrics(labelled["label"].to_numpy(float), predictions, labelled["subreddit"].to_numpy(), min_posts)


def evaluate_model_on(settings: Settings, version: str, features_test: pd.DataFrame) -> dict:
    """Re-score a registered version (e.g. the champion) on another version's test slice."""
    from smpp.registry import version_dir

    model = load_model(version_dir(settings, version))
    return evaluate_frame(model, features_test, settings.training.within_subreddit_min_posts)


def _champion_on_test(settings: Settings, version: str, test: pd.DataFrame) -> dict[str, Any] | None:
    from smpp.registry import champion

    current = champion(settings)
    if current is None or current == version:
        return None
    try:
        metrics = evaluate_model_on(settings, current, test)
        return {"version": current, "metrics": metrics, "error": None, "same_test_slice": True}
    except Exception as exc:  # noqa: BLE001 - an unscorable champion is reported, not fatal to training
        log.warning("champion %s could not score the test slice: %s", current, exc)
        return {"version": current, "metrics": None, "error": f"{type(exc).__name__}: {exc}", "same_test_slice": False}


def train_and_evaluate(
    settings: Settings, features: pd.DataFrame, version_dir: Path, *, lineage: dict | None = None
) -> TrainReport:
    """Chronological split, fit, baselines, metrics, plots and card into `version_dir`."""
    _validate_columns(features)
    features = with_history(settings, features)
    version_dir = Path(version_dir)
    training = settings.training
    _write_common(settings, version_dir, lineage)

    labelled = labelled_rows(features)
    in_window = within_window(labelled, training.train_window_days)
    split = split_for_training(settings, features) if len(in_window) else None
    rows = {
        "input": len(features),
        "labelled": len(labelled),
        "in_window": len(in_window),
        **(split.rows if split is not None else {"train": 0, "val": 0, "test": 0}),
    }
    all_dims = embedding_dims(in_window)
    metrics: dict[str, Any] = {
        "version": version_dir.name,
        "created_utc": datetime.now(timezone.utc).isoformat(),
        "profile": settings.model_profile,
        "rows": rows,
        "data_window": data_window(in_window, split),
        "embedding_dims": {column: all_dims.get(column) for column in schema.EMBEDDING_COLUMNS},
        "model": None,
        **{name: None for name in BASELINE_NAMES},
        "champion": None,
        "warnings": random_encoder_warnings(settings.model_profile, list(all_dims)),
        "skipped_reason": None,
    }

    reason = _skip_reason(len(in_window), split, settings)
    if reason is not None:
        log.warning("training skipped for %s: %s", version_dir.name, reason)
        metrics["skipped_reason"] = reason
        return TrainReport(version_dir, _finish(version_dir, metrics, None), rows, reason)
    assert split is not None

    tower_dims = embedding_dims(split.train)
    unused = sorted(set(all_dims) - set(tower_dims))
    if unused:
        metrics["warnings"].append(f"no train-slice vectors for {', '.join(unused)}: no tower built for them")
    spec = InputSpec.for_frame(split.train, tower_dims, level_offset=training.level_offset)
    y_train = split.train["label"].to_numpy(np.float32)
    y_val = split.val["label"].to_numpy(np.float32)
    y_test = split.test["label"].to_numpy(float)

    keras = keras_module()
    keras.utils.set_random_seed(training.seed)
    train_inputs = model_inputs(split.train, spec)
    model = build_model(train_inputs, y_train, spec)
    fit = fit_model(model, train_inputs, y_train, model_inputs(split.val, spec), y_val, training)
    save_model(model, spec, version_dir)

    saved = load_model(version_dir)  # evaluate the artefact that will be served, not the in-memory object
    predictions, latency_ms = _latency_ms_per_post(saved, split.test)
    min_posts = training.within_subreddit_min_posts
    subreddits = split.test["subreddit"].to_numpy()
    created = split.test["created_utc"].to_numpy()
    tiers = tier_thresholds(y_train)
    val_metrics = regression_metrics(
        y_val.astype(float), predict_frame(saved, split.val), split.val["subreddit"].to_numpy(), min_posts
    )
    metrics["model"] = {
        **full_metrics(y_test, predictions, subreddits, created, min_posts, tiers),
        # what model selection may look at (the test numbers above must not steer tuning)
        "validation": {k: v for k, v in val_metrics.items() if k != "per_subreddit"},
        "latency_ms_per_post": latency_ms,
        "params": int(saved.count_params()),
        "epochs_run": fit["epochs_run"],
        "best_epoch": fit["best_epoch"],
    }
    for name, baseline_predictions in run_baselines(
        split.train, split.val, split.test, training.seed, spec.tabular_columns
    ).items():
        metrics[name] = full_metrics(y_test, baseline_predictions, subreddits, created, min_posts, tiers)
    metrics["champion"] = _champion_on_test(settings, version_dir.name, split.test)
    metrics["features"] = {
        "embedding_towers": list(tower_dims),
        "tabular_columns": list(spec.tabular_columns),
        "domain": spec.use_domain,
        "subreddit_vocabulary": int(split.train["subreddit"].nunique()),
    }

    history_summary = {k: fit[k] for k in ("epochs_run", "best_epoch", "best_val_loss")}
    atomic_write_json(version_dir / "history.json", json_safe({**history_summary, "history": fit["history"]}))
    results = {"model": metrics["model"], **{name: metrics[name] for name in BASELINE_NAMES}}
    metrics["plots"] = write_plots(version_dir, y_test, predictions, fit["history"], results)
    metrics = _finish(version_dir, metrics, history_summary)
    log.info(
        "trained %s: within-subreddit Spearman %s (rows %s)",
        version_dir.name,
        metrics["model"]["spearman_within_subreddit"],
        rows,
    )
    return TrainReport(version_dir, metrics, rows, None)
