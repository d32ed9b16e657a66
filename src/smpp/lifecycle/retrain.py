"""A day's model lifecycle: train a challenger (or not, between retrains), publish it, score with the champion.

The champion's metrics on a challenger's test slice are recorded once, in the challenger's
metrics.json "champion" block: training scores the champion it is handed on its own test slice,
and publishing scores it only when the champion changed since (registry.decide reads that block
and nothing else).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import pandas as pd

from smpp import storage
from smpp.lifecycle.registry import (
    champion,
    champion_block,
    code_version,
    decide_and_publish,
    metrics_summary,
    new_version_id,
    record_champion_block,
    version_dir,
)
from smpp.settings import Settings
from smpp.training.cadence import days_until_training, is_training_day
from smpp.training.model import load_model, predict_frame
from smpp.training.train import score_model_on_test, train_from_partitions
from smpp.training.window import training_partitions, window_start_utc
from smpp.warehouse.labels import LabelQuery

log = logging.getLogger(__name__)


def between_retrains(settings: Settings, day: date) -> dict[str, Any] | None:
    """train_model's metrics on a day between retrains (retrain_every_days), None on a day that trains.

    The day follows from its date alone; a day without a champion yet trains anyway (nothing else
    could score it).
    """
    every = settings.training.retrain_every_days
    if is_training_day(day, every):
        return None
    current = champion(settings)
    if current is None:
        log.info("%s is between retrains (every %d days) but there is no champion yet: training", day, every)
        return None
    return {
        "version": None,
        "trained": False,
        "scored_by": "champion",
        "champion_version": current,
        "retrain_every_days": every,
        "next_training_day": (day + timedelta(days=days_until_training(day, every))).isoformat(),
    }


def _labels(settings: Settings, end_utc: int, paths: list) -> LabelQuery:
    # the first pass fetches them (in its child process: a million post ids never touch this one)
    return LabelQuery(end_utc, window_start_utc(settings, paths))


def train_day(settings: Settings, day: date, start_utc: int, end_utc: int) -> dict[str, Any]:
    """Train a challenger from the window's feature partitions (streamed), the champion scored on its test slice."""
    skipped = between_retrains(settings, day)
    if skipped is not None:
        return skipped
    paths = training_partitions(settings, day)
    # days ingested but not yet featurised (e.g. a backfill running days in parallel)
    featurised = set(storage.list_partition_days(settings, "features"))
    posts_days = storage.list_partition_days(settings, "posts")
    incomplete = [d.isoformat() for d in posts_days if d < day and d not in featurised]
    if incomplete:
        log.warning(
            "training without the features of earlier days %s: run backfills with --max-active-runs 1", incomplete
        )
    version = new_version_id()
    out = version_dir(settings, version)
    current = champion(settings)
    lineage = {
        "run_day": day.isoformat(),
        "interval": [start_utc, end_utc],
        "partitions_read": [str(p) for p in paths],
        "days_without_features": incomplete,
        "code_version": code_version(),
        "label_rule": f"score at first snapshot >= {settings.label_age_hours}h, matured by interval end",
    }
    report = train_from_partitions(
        settings,
        paths,
        out,
        labels=_labels(settings, end_utc, paths),
        lineage=lineage,
        champion=(current, version_dir(settings, current)) if current else None,
    )
    return {
        "version": version,
        "version_dir": str(out),
        "rows": report.rows,
        "skipped_reason": report.skipped_reason,
        "days_without_features": incomplete,
        "trained": True,
        "partitions_read": len(paths),
    }


def publish_day(settings: Settings, day: date, end_utc: int, version: str | None) -> dict[str, Any]:
    """Compare with the champion on the challenger's own test slice; promote only on a win.

    `version` None (a day between retrains): the champion is scored on the test slice a training
    this day would hold out (the window's newest days), recorded as such; nothing is promoted.
    """
    current = champion(settings)
    if version is None:
        return score_champion_on_day(settings, day, end_utc, current)
    recorded = champion_block(settings, version)
    if current and current != version and (recorded or {}).get("version") != current:
        # the champion changed since this training (or it trained without one): score it once, on the same slice
        paths = training_partitions(settings, day)
        scored, error = None, None
        try:
            if paths:
                scored = score_model_on_test(
                    settings, version_dir(settings, current), paths, _labels(settings, end_utc, paths)
                )
        except Exception as exc:  # noqa: BLE001 - an unscorable champion is recorded; the gate decides on the rest
            error = f"{type(exc).__name__}: {exc}"
            log.warning("champion %s could not score %s's test slice: %s", current, version, error)
        record_champion_block(settings, version, current, scored, error)
    decision = decide_and_publish(settings, version)
    return {
        "version": version,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "champion_before": current,
        "metrics_file": str(version_dir(settings, version) / "metrics.json"),
        "trained": True,
        "scored_by": "challenger",
    }


def score_champion_on_day(settings: Settings, day: date, end_utc: int, current: str | None) -> dict[str, Any]:
    """The champion's metrics on the day's test slice (the window's newest days), for a day that did not train."""
    metrics: dict[str, Any] = {
        "version": None,
        "trained": False,
        "scored_by": "champion",
        "champion_version": current,
        "champion_before": current,
        "promoted": False,
    }
    if current is None:
        return {**metrics, "champion_metrics": None, "reason": "no model trained this day and no champion to score it"}
    paths = training_partitions(settings, day)
    scored = None
    if paths:
        scored = score_model_on_test(settings, version_dir(settings, current), paths, _labels(settings, end_utc, paths))
    reason = (
        f"day between retrains (retrain_every_days={settings.training.retrain_every_days}): "
        f"champion {current} scored on the window's test slice"
    )
    if scored is None:
        reason += " (none: too few labelled rows for a test slice)"
    return {**metrics, "champion_metrics": metrics_summary(scored), "reason": reason}


def score_day_with(settings: Settings, version: str, day: date | str) -> dict[str, Any]:
    """Score a day's feature partition with a registered version into partitions/scores/ds=<day>/."""
    features = storage.read_partition(settings, "features", day)
    scores = pd.DataFrame(
        {
            "post_id": features["post_id"],
            "predicted_log1p_score": predict_frame(load_model(version_dir(settings, version)), features),
            "model_version": version,
        }
    )
    path = storage.write_partition(settings, "scores", day, scores)
    return {"version": version, "day": str(day), "rows": len(scores), "partition": str(path)}
