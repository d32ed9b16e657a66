"""Train the multimodal regressor on a feature table, evaluate it against baselines, write the version folder."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.features import schema
from smpp.features.author_history import HISTORY_COLUMNS, add_history_features
from smpp.settings import Settings
from smpp.storage import PART_FILE, atomic_write_json, atomic_write_text, staged_version, vectors_to_arrow
from smpp.training.baselines import fit_baselines
from smpp.training.card import random_encoder_warnings, render_model_card
from smpp.training.first_pass import LabelSource, run_first_pass
from smpp.training.metric_names import BASELINE_NAMES, CONSTANT_BASELINE
from smpp.training.metrics import (
    full_metrics,
    implausible_on_slice,
    json_safe,
    label_summary,
    regression_metrics,
    scored_or_error,
    tier_thresholds,
)
from smpp.training.model import (
    PREDICT_BATCH,
    CategoryStats,
    build_model,
    embedding_dims,
    fit_datasets,
    keras_module,
    load_model,
    model_inputs,
    predict_frame,
    save_model,
)
from smpp.training.plots import write_plots
from smpp.training.split import ChronoSplit, chronological_split, labelled_rows, within_window
from smpp.training.stream import SlicePlan, input_columns, release_freed_memory

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ["post_id", "subreddit", "created_utc", "label"]


@dataclass
class TrainReport:
    version_dir: Path
    metrics: dict
    rows: dict[str, int]
    skipped_reason: str | None


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """The resolved settings as JSON. Secrets are declared as such in Settings (SecretStr, the database
    URL's password serializer), so the dump itself shows them masked; no guessing by key names here."""
    return settings.model_dump(mode="json")


def _iso(seconds: Any) -> str | None:
    if seconds is None or pd.isna(seconds):
        return None
    return datetime.fromtimestamp(int(seconds), tz=UTC).isoformat()


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


def with_history(settings: Settings, features: pd.DataFrame) -> pd.DataFrame:
    """`features` with the leak-free author/subreddit history columns, computed from its own rows if absent.

    Every row (labelled or not) counts as a prior post; labels count only once matured.
    """

    if features.empty or "author" not in features or all(c in features for c in HISTORY_COLUMNS):
        return features
    return add_history_features(features, label_age_hours=settings.label_age_hours)


def split_for_training(settings: Settings, features: pd.DataFrame) -> ChronoSplit:
    """The split train_and_evaluate uses: labelled rows, training window, chronological cuts."""
    features = with_history(settings, features)
    in_window = within_window(
        labelled_rows(features), settings.training.train_window_days, settings.training.train_window_rows
    )
    return chronological_split(in_window, settings.training.val_fraction, settings.training.test_fraction)


def write_day_partitions(features: pd.DataFrame, root: Path) -> list[Path]:
    """`features` as one Parquet file per UTC day of created_utc (ds=YYYY-MM-DD/part-0.parquet), rows in time order.

    Embedding cells become fixed-size float lists, as in the pipeline's feature partitions.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    dims = embedding_dims(features)
    ordered = features.sort_values(["created_utc", "post_id"], kind="stable").reset_index(drop=True)
    vectors = [c for c in schema.EMBEDDING_COLUMNS if c in ordered]
    paths = []
    days = pd.to_numeric(ordered["created_utc"]).to_numpy() // 86400
    for day, part in ordered.groupby(days, sort=True):
        table = pa.Table.from_pandas(part.drop(columns=vectors), preserve_index=False)
        for column in vectors:
            if column in dims:
                cells = [None if not isinstance(c, (np.ndarray, list, tuple)) else c for c in part[column]]
                table = table.append_column(column, vectors_to_arrow(cells, dims[column]))
            else:  # no vector anywhere: an all-null column keeps the schema
                table = table.append_column(column, pa.nulls(len(part), pa.list_(pa.float32())))
        path = root / f"ds={datetime.fromtimestamp(int(day) * 86400, tz=UTC).date().isoformat()}" / PART_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        paths.append(path)
    return paths


def train_and_evaluate(
    settings: Settings,
    features: pd.DataFrame,
    version_dir: Path,
    *,
    lineage: dict | None = None,
    champion: tuple[str, Path] | None = None,
) -> TrainReport:
    """Train from an in-memory feature frame through the same streamed trainer the DAG runs.

    The frame (history columns added if absent) is written as day partitions into a temp dir and
    `train_from_partitions` reads them back: `smpp evaluate` and the tests measure the DAG's code.
    """
    import tempfile

    _validate_columns(features)
    features = with_history(settings, features)
    with tempfile.TemporaryDirectory(prefix="smpp-train-") as tmp:
        paths = write_day_partitions(features, Path(tmp))
        return train_from_partitions(settings, paths, version_dir, lineage=lineage, champion=champion)


def _champion_model(champion: tuple[str, Path] | None, version: str) -> tuple[str | None, Any]:
    """(champion version, its loaded model or the exception that stopped loading it); (None, None) if none."""
    if champion is None or champion[0] == version:
        return None, None
    try:
        return champion[0], load_model(Path(champion[1]))
    except Exception as exc:  # noqa: BLE001 - an unloadable champion is reported, not fatal to training
        return champion[0], exc


def _log_peak_rss(phase: str) -> None:
    """Resident memory now and its peak so far (Linux: ru_maxrss in KiB), to see which phase sets it."""
    import resource

    now = ""
    try:
        status = Path("/proc/self/status").read_text()
        now = f"now {int(status.split('VmRSS:')[1].split()[0]) / 1024:.0f} MB, "
    except (OSError, IndexError, ValueError):  # not Linux
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("training %s: RSS %speak RSS so far %.0f MB", phase, now, peak)


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def train_from_partitions(
    settings: Settings,
    paths: list[Path],
    version_dir: Path,
    *,
    labels: pd.DataFrame | LabelSource | None = None,
    lineage: dict | None = None,
    champion: tuple[str, Path] | None = None,
) -> TrainReport:
    """Train into `version_dir` (see _train_into), which appears only once complete.

    `champion` (version, its folder): scored on this training's test slice, into metrics.json's
    "champion" block, the one record of it the promotion gate reads.

    The folder is built under a staging name beside it and renamed into place at the end (as the
    data partitions are), so a killed training leaves no half-written version for the registry or UI;
    the next training removes such leftovers.
    """
    final = Path(version_dir)
    with staged_version(final, settings.training.staging_max_age_hours) as building:
        report = _train_into(settings, paths, building, labels=labels, lineage=lineage, champion=champion)
    return replace(report, version_dir=final)


def _train_into(
    settings: Settings,
    paths: list[Path],
    version_dir: Path,
    *,
    labels: pd.DataFrame | LabelSource | None = None,
    lineage: dict | None = None,
    champion: tuple[str, Path] | None = None,
) -> TrainReport:
    """Chronological split, fit, baselines, metrics, plots and card into `version_dir`, streaming `paths`.

    `labels` (post_id, label) are joined to the partitions' rows (a LabelSource: the warehouse's
    matured labels, fetched by the first pass); None reads each file's own `label` column. Memory:
    one record batch at a time, the tf.data shuffle buffer, a bounded adapt sample, LightGBM's
    bounded sample of narrow columns, and ~32 B a row from the first pass (run in a child process).
    """
    version_dir = Path(version_dir)
    training = settings.training
    _write_common(settings, version_dir, lineage)

    passed = run_first_pass(settings, [Path(p) for p in paths], labels)
    index, split, rows, all_dims = passed.index, passed.split, passed.rows, passed.all_dims
    if index.without_history:
        log.warning(
            "%d of %d feature partitions predate the history columns (e.g. %s): those rows train with them missing",
            len(index.without_history),
            len(index.paths),
            index.without_history[0],
        )
    metrics: dict[str, Any] = {
        "version": version_dir.name,
        "created_utc": datetime.now(UTC).isoformat(),
        "profile": settings.model_profile,
        "rows": rows,
        "data_window": data_window(passed.window_frame, split),
        "embedding_dims": {column: all_dims.get(column) for column in schema.EMBEDDING_COLUMNS},
        "model": None,
        **{name: None for name in BASELINE_NAMES},
        "champion": None,
        "warnings": random_encoder_warnings(settings.model_profile, list(all_dims)),
        "skipped_reason": None,
    }
    reason = passed.skip_reason
    if reason is not None:
        log.warning("training skipped for %s: %s", version_dir.name, reason)
        metrics["skipped_reason"] = reason
        return TrainReport(version_dir, _finish(version_dir, metrics, None), rows, reason)
    assert split is not None and passed.spec is not None and passed.plan is not None

    tower_dims, spec, plan = passed.tower_dims, passed.spec, passed.plan
    unused = sorted(set(all_dims) - set(tower_dims))
    if unused:
        metrics["warnings"].append(f"no train-slice vectors for {', '.join(unused)}: no tower built for them")
    if index.without_history:
        metrics["warnings"].append(
            f"{len(index.without_history)} partitions without history columns (treated as missing)"
        )
    y_train = split.train["label"].to_numpy(np.float32)
    _log_peak_rss("index and split")

    keras = keras_module()
    keras.utils.set_random_seed(training.seed)
    columns = input_columns(spec)
    sample = plan.sample("train", [*columns, "created_utc", "post_id"], training.adapt_sample_rows, training.seed)
    build_inputs = model_inputs(sample, spec)  # the normalisers adapt on the bounded sample
    # vocabularies and subreddit offsets come from the whole train slice's narrow (categorical) columns
    categories = CategoryStats.of(split.train["subreddit"], y_train, split.train["domain"] if spec.use_domain else None)
    model = build_model(build_inputs, y_train, spec, training, categories)
    del sample, build_inputs
    release_freed_memory()
    _log_peak_rss("adapt and build")
    weighted = passed.weighted
    fit = fit_datasets(
        model,
        plan.dataset(
            "train",
            spec,
            training.batch_size,
            weighted=weighted,
            shuffle_seed=training.seed,
            shuffle_buffer=training.shuffle_buffer_rows,
        ),
        plan.dataset("val", spec, PREDICT_BATCH, weighted=weighted),
        training,
    )
    save_model(model, spec, version_dir)
    _log_peak_rss("fit")
    saved = load_model(version_dir)  # evaluate the artefact that will be served, not the in-memory object

    # LightGBM fits in memory on a bounded sample of narrow columns; the ridge streams the whole slice
    gbm_columns = ["post_id", "created_utc", "subreddit", "domain", *spec.tabular_columns]
    cap = training.baseline_max_rows
    if len(split.train) > cap or len(split.val) > cap:
        metrics["warnings"].append(
            f"metadata LightGBM fit on a uniform sample of at most {cap} rows per slice "
            f"(train {len(split.train)}, val {len(split.val)}); scored on the whole test slice"
        )

    def ridge_blocks():
        for frame, labels, _ in plan.batches("train", ["subreddit", "title_emb"]):
            yield frame, labels

    baselines = fit_baselines(
        split.train,
        plan.sample("train", gbm_columns, cap, training.seed),
        plan.sample("val", gbm_columns, cap, training.seed),
        ridge_blocks,
        tower_dims.get("title_emb"),
        training.seed,
        spec.tabular_columns,
    )
    _log_peak_rss("baselines")
    champion_version, champion_model = _champion_model(champion, version_dir.name)
    test = _score_test_slice(plan, saved, baselines, champion_model)
    _log_peak_rss("test slice")

    min_posts = training.within_subreddit_min_posts
    tiers = tier_thresholds(y_train)
    y_val, val_predictions, val_subreddits = _predict_slice(plan, "val", saved, [*columns, "subreddit"])
    val_metrics = regression_metrics(y_val, val_predictions, val_subreddits, min_posts)
    y_test, predictions, subreddits, created = test["label"], test["model"], test["subreddit"], test["created_utc"]
    metrics["model"] = {
        **full_metrics(y_test, predictions, subreddits, created, min_posts, tiers),
        # what model selection may look at (the test numbers above must not steer tuning)
        "validation": {k: v for k, v in val_metrics.items() if k != "per_subreddit"},
        "latency_ms_per_post": test["latency_ms"],
        "params": int(saved.count_params()),
        "epochs_run": fit["epochs_run"],
        "best_epoch": fit["best_epoch"],
    }
    for name in BASELINE_NAMES:
        metrics[name] = full_metrics(y_test, test[name], subreddits, created, min_posts, tiers)
    # what plausibility is judged against (registry gate): the train labels, and a constant predictor
    metrics["train_labels"] = label_summary(y_train)
    median = metrics["train_labels"]["median"]
    metrics[CONSTANT_BASELINE] = regression_metrics(y_test, np.full(len(y_test), median, float), subreddits, min_posts)
    own_problems = _implausible(settings, metrics["model"], metrics)
    if own_problems:
        metrics["warnings"].append(f"this model's test scores are implausible: {'; '.join(own_problems)}")
    if champion_version is not None:
        error = test["champion_error"] or (_error(champion_model) if isinstance(champion_model, Exception) else None)
        if error:
            log.warning("champion %s could not score the test slice: %s", champion_version, error)
        rescored = None if error else scored_or_error(y_test, test["champion"], subreddits, min_posts)
        problems = _implausible(settings, rescored, metrics)
        if problems:
            log.warning("champion %s re-scored on this test slice looks broken: %s", champion_version, problems)
            metrics["warnings"].append(
                f"champion {champion_version} re-scored on this test slice looks broken: {'; '.join(problems)}"
            )
        metrics["champion"] = {
            "version": champion_version,
            "metrics": rescored,
            "error": error,
            "same_test_slice": error is None,
            "implausible": problems,
        }
    metrics["features"] = {
        "embedding_towers": list(tower_dims),
        "tabular_columns": list(spec.tabular_columns),
        "domain": spec.use_domain,
        "subreddit_vocabulary": int(split.train["subreddit"].nunique()),
    }

    history_summary = {k: fit[k] for k in ("epochs_run", "best_epoch", "best_val_loss")}
    atomic_write_json(version_dir / "history.json", json_safe({**history_summary, "history": fit["history"]}))
    results = {"model": metrics["model"], **{name: metrics[name] for name in BASELINE_NAMES}}
    metrics["plots"] = write_plots(
        version_dir, y_test, predictions, fit["history"], results, training, champion=metrics["champion"]
    )
    metrics = _finish(version_dir, metrics, history_summary)
    log.info(
        "trained %s: within-subreddit Spearman %s (rows %s)",
        version_dir.name,
        metrics["model"]["spearman_within_subreddit"],
        rows,
    )
    return TrainReport(version_dir, metrics, rows, None)


def _implausible(settings: Settings, scores: dict | None, metrics: dict) -> list[str]:
    """Why `scores` (on this version's test slice) cannot come from a working model; [] if none found."""
    return implausible_on_slice(settings.training, scores, metrics)


def _predict_slice(
    plan: SlicePlan, name: str, model, columns: list[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, predictions, subreddits) of one slice, predicted in PREDICT_BATCH frames as predict_frame would."""
    labels, predictions, subreddits = [np.zeros(0)], [np.zeros(0, np.float32)], [np.zeros(0, object)]
    for frame in plan.frames(name, columns, PREDICT_BATCH):
        labels.append(frame["label"].to_numpy(float))
        predictions.append(predict_frame(model, frame))
        subreddits.append(frame["subreddit"].astype(str).to_numpy(object))
    return np.concatenate(labels), np.concatenate(predictions), np.concatenate(subreddits)


def _score_test_slice(plan: SlicePlan, model, baselines: dict, champion) -> dict[str, Any]:
    """One streamed pass over the test slice: labels, subreddit, created time and every predictor's output."""
    out: dict[str, list] = {k: [] for k in ("label", "subreddit", "created_utc", "model", "champion", *baselines)}
    champion_error = None
    champion = None if isinstance(champion, Exception) else champion
    predict_s, warmed = 0.0, False
    for frame in plan.frames("test", None, PREDICT_BATCH):
        if not warmed:  # the first call traces the graph: not part of the steady-state cost
            predict_frame(model, frame.head(8))
            warmed = True
        started = time.perf_counter()
        out["model"].append(predict_frame(model, frame))
        predict_s += time.perf_counter() - started
        out["label"].append(frame["label"].to_numpy(float))
        out["subreddit"].append(frame["subreddit"].astype(str).to_numpy(object))
        out["created_utc"].append(frame["created_utc"].to_numpy(np.int64))
        for name, predictor in baselines.items():
            out[name].append(np.asarray(predictor(frame), dtype=float))
        if champion is not None:
            try:
                out["champion"].append(predict_frame(champion, frame))
            except Exception as exc:  # noqa: BLE001 - an unscorable champion is reported, not fatal to training
                champion_error, champion = _error(exc), None
    result: dict[str, Any] = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}
    result["latency_ms"] = 1000.0 * predict_s / max(1, len(result["label"]))
    result["champion_error"] = champion_error
    return result


def score_model_on_test(
    settings: Settings, model_dir: Path, paths: list[Path], labels: pd.DataFrame | LabelSource | None = None
) -> dict | None:
    """Metrics of a saved model (e.g. the champion's folder) on the test slice a training on `paths` holds out.

    The same first pass as training (in its child process), then the test rows streamed; None when
    a training on `paths` would have been skipped (no test slice to share).
    """
    passed = run_first_pass(settings, [Path(p) for p in paths], labels)
    if passed.plan is None or passed.split is None or passed.split.test.empty:
        return None
    model = load_model(Path(model_dir))
    y, predictions, subreddits = _predict_slice(passed.plan, "test", model, None)
    return scored_or_error(y, predictions, subreddits, settings.training.within_subreddit_min_posts)
