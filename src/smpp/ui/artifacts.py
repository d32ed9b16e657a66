"""Read-only views of what the pipeline wrote for a day and for each model version.

The pipeline owns the formats (smpp.tasks, smpp.training, smpp.lifecycle.registry); these readers are
defensive: a missing or unreadable file becomes a note on the page, never an exception, and
unknown fields are shown as they are, so new metrics appear without a change here.
Every file path served to a browser goes through `model_file`, which confines it to the
models folder (no `..`, no absolute names, no symlink leading out).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from smpp import storage
from smpp.lifecycle.registry import (
    CHAMPION_FILE,
    DECISION_FILE,
    METRICS_FILE,
    PRIMARY_METRIC,
    PROMOTIONS_FILE,
    VERSION_PATTERN,
    list_versions,
)
from smpp.settings import Settings
from smpp.stages import STAGE_NAMES
from smpp.training.metric_names import COMPARISON_COLUMNS, UI_METRICS, column_label, headline_missing_reason
from smpp.training.plots import PLOT_FILES
from smpp.ui.accounting import LABEL_PART_NAMES, NOT_RECORDED, Level, post_accounting, trainable_of_day
from smpp.warehouse.labels import LABEL_STATUS_MEANING

# Server-side paths mean nothing to a reader of the page.
HIDDEN_KEYS = frozenset({"partition", "version_dir", "metrics_file", "day"})
# Shown once, in the page's "no model" box, not again in the stage's table.
SHOWN_ABOVE = frozenset({"skipped_reason"})
# Files of a version folder a browser may fetch (the model weights are not among them).
SERVED_SUFFIXES = {".png": "image/png", ".json": "application/json", ".md": "text/markdown; charset=utf-8"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MODEL_CARD_FILE = "model_card.md"
LINEAGE_FILE = "lineage.json"


class ArtifactNotFound(LookupError):
    """A version or file that does not exist (or may not be served): the web layer answers 404."""


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(content, problem); a missing file is (None, None), a broken one (None, why)."""
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name} unreadable: {type(exc).__name__}: {exc}"


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars as they are, nested dicts as dotted keys, lists by their length."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in HIDDEN_KEYS | SHOWN_ABOVE and not prefix:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if value:
                flat.update(_flatten(value, f"{name}."))
            else:
                flat[name] = "–"
        elif isinstance(value, list):
            flat[f"{name} (count)"] = len(value)
        else:
            flat[name] = value
    return flat


@dataclass
class StageView:
    name: str
    values: dict[str, Any]  # flattened, for the table


@dataclass
class ModelView:
    version: str
    created: str | None
    profile: str | None
    status: str  # trained | skipped | incomplete
    skipped_reason: str | None
    rows: dict[str, Any]
    data_window: dict[str, Any]
    run_day: str | None
    comparison: dict[str, dict[str, Any]]  # column (model, baselines, champion) -> metric -> value
    headline_gap: str | None  # why the model has no within-subreddit Spearman, when it has none
    champion_note: str | None
    decision: dict[str, Any] | None
    is_champion: bool
    plots: list[str]
    model_card: str | None
    warnings: list[str]
    problems: list[str]
    # plot file -> why it is not shown (the page says so in words instead of showing an empty image)
    plot_gaps: dict[str, str] = field(default_factory=dict)


@dataclass
class RunView:
    day: date
    stages: list[StageView]
    funnel: list[tuple[str, Any]]
    drop_reasons: list[tuple[str, str, Any]]  # (stage, reason, count)
    label_coverage: list[tuple[str, Any]]
    accounting: list[Level]
    model: ModelView | None
    no_model_reason: str | None
    other_versions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def has_artifacts(self) -> bool:
        return bool(self.stages) or self.model is not None


def _stage_sort_key(name: str) -> tuple[int, str]:
    return (STAGE_NAMES.index(name), name) if name in STAGE_NAMES else (len(STAGE_NAMES), name)


def _read_stage_files(settings: Settings, day: date) -> tuple[dict[str, dict], list[str]]:
    folder = storage.run_metrics_path(settings, day, "x").parent
    stages: dict[str, dict] = {}
    problems: list[str] = []
    if not folder.is_dir():
        return stages, problems
    for path in sorted(folder.glob("*.json"), key=lambda p: _stage_sort_key(p.stem)):
        content, problem = _read_json(path)
        if problem:
            problems.append(problem)
        elif isinstance(content, dict):
            stages[path.stem] = content
    return stages, problems


def _get(stages: dict[str, dict], stage: str, *keys: str) -> Any:
    node: Any = stages.get(stage)
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _funnel(stages: dict[str, dict]) -> list[tuple[str, Any]]:
    """The day's posts through the stages, from the counts each stage recorded."""
    steps = [
        ("posts ingested for the day", _get(stages, "scrape_posts", "posts_in_day")),
        ("posts after filtering", _get(stages, "filter_posts", "kept")),
        ("images fetched", _get(stages, "fetch_images", "ok")),
        ("images captioned", _get(stages, "caption_images", "captioned")),
        ("feature rows", _get(stages, "build_features", "rows")),
        ("labelled training rows (all days in window)", _get(stages, "train_model", "rows", "labelled")),
    ]
    return [(label, value) for label, value in steps if value is not None]


def _drop_reasons(stages: dict[str, dict]) -> list[tuple[str, str, Any]]:
    rows: list[tuple[str, str, Any]] = []
    for key, value in (stages.get("filter_posts") or {}).items():
        if key.startswith("dropped_"):
            rows.append(("filter_posts", key.removeprefix("dropped_"), value))
    for stage, key in (("fetch_images", "failures"), ("scrape_posts", "archive_skips")):
        reasons = _get(stages, stage, key)
        if isinstance(reasons, dict):
            rows.extend((stage, str(reason), count) for reason, count in sorted(reasons.items()))
    for stage in ("scrape_posts", "refresh_scores"):
        for key in ("malformed", "skipped_records", "newly_removed", "archive_bad_lines"):
            value = _get(stages, stage, key)
            if isinstance(value, int) and value:
                rows.append((stage, key, value))
    return rows


LATE_NOTE = LABEL_STATUS_MEANING["late"]


def _day_coverage(stages: dict[str, dict]) -> list[tuple[str, Any]]:
    """The day's feature rows with a trainable label, or in words why there is no such count."""
    what = "the day's feature rows with a trainable label (ok or archive)"
    if "build_features" not in stages:
        return [(what, "no feature rows: build_features did not run for this day")]
    counted = trainable_of_day(stages)
    if counted is None:
        return [(what, f"{NOT_RECORDED} (this run's build_features predates per-day label counts)")]
    trainable, rows = counted
    share = f" ({trainable / rows:.1%})" if rows else ""
    out: list[tuple[str, Any]] = [(what, f"{trainable} of {rows}{share}")]
    if rows and not trainable:
        labels = _get(stages, "build_features", "labels") or {}
        others = ", ".join(f"{n} {LABEL_PART_NAMES.get(status, status)}" for status, n in labels.items() if n)
        out.append(("why none", f"no feature row of this day has a trainable label yet: {others}"))
    return out


def _label_coverage(stages: dict[str, dict], model: ModelView | None) -> list[tuple[str, Any]]:
    rows = _day_coverage(stages)
    for stage in ("scrape_posts", "refresh_scores"):
        labels = _get(stages, stage, "labels")
        if isinstance(labels, dict):
            # assign_labels' counts: the posts this stage labelled in this run, whatever their day
            rows.extend((f"{stage} labelled this run (any day's posts): {key}", value) for key, value in labels.items())
            if labels.get("labelled_late"):
                rows.append((f"{stage}: labelled_late means", LATE_NOTE))
    training_rows = (model.rows if model else None) or _get(stages, "train_model", "rows") or {}
    labelled = training_rows.get("labelled") if isinstance(training_rows, dict) else None
    if isinstance(labelled, int):
        # rows.input counts only rows whose post has a trainable label, so it is no denominator
        rows.append(("training window: feature rows with a trainable label matured by the run's end", labelled))
    return rows


def version_dir(settings: Settings, version: str) -> Path:
    """The folder of a registered version; ArtifactNotFound for anything that is not one."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise ArtifactNotFound(f"not a model version id: {version!r}")
    folder = settings.models_dir / version
    if not folder.is_dir():
        raise ArtifactNotFound(f"no model version {version}")
    return folder


def model_file(settings: Settings, version: str, name: str) -> tuple[Path, str]:
    """(path, media type) of a servable file of a version, confined to the models folder."""
    folder = version_dir(settings, version)
    suffix = Path(name).suffix.lower()
    if not SAFE_NAME.match(name) or ".." in name or suffix not in SERVED_SUFFIXES:
        raise ArtifactNotFound(f"not a servable file name: {name!r}")
    try:
        path = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ArtifactNotFound(f"{version}/{name} does not exist") from exc
    root = settings.models_dir.resolve()
    # resolve() follows symlinks: a link inside the folder pointing elsewhere lands outside root
    if not path.is_relative_to(root) or path.parent != folder.resolve() or not path.is_file():
        raise ArtifactNotFound(f"{version}/{name} is not a file of this version")
    return path, SERVED_SUFFIXES[suffix]


def _comparison(metrics: dict[str, Any], decision: dict[str, Any] | None) -> tuple[dict[str, dict], str | None]:
    """Columns in the model card's order: COMPARISON_COLUMNS, baselines it does not know yet, the champion."""
    known = [key for key in COMPARISON_COLUMNS if isinstance(metrics.get(key), dict)]
    newer = sorted(k for k in metrics if k.startswith("baseline_") and k not in known and isinstance(metrics[k], dict))
    columns: dict[str, dict] = {column_label(key): metrics[key] for key in (*known, *newer)}
    note = None
    stored = metrics.get("champion")
    if isinstance(stored, dict) and isinstance(stored.get("metrics"), dict):
        columns[f"champion {stored.get('version')}"] = stored["metrics"]
        note = "champion re-scored on this version's test slice"
    elif decision and isinstance(decision.get("champion_metrics"), dict) and decision.get("champion"):
        columns[f"champion {decision['champion']}"] = decision["champion_metrics"]
        note = "champion metrics from the promotion decision"
    elif isinstance(stored, dict) and stored.get("error"):
        note = f"champion {stored.get('version')} could not be scored: {stored['error']}"
    return {name: {k: v for k, v in values.items() if k in UI_METRICS} for name, values in columns.items()}, note


def _servable(settings: Settings, version: str, name: str) -> bool:
    try:
        model_file(settings, version, name)
    except ArtifactNotFound:
        return False
    return True


def _plots(settings: Settings, version: str, metrics: dict[str, Any]) -> list[str]:
    """Plots named in metrics.json first, then any other PNG of the folder; only servable ones."""
    named = metrics.get("plots")
    names = [n for n in named.values() if isinstance(n, str)] if isinstance(named, dict) else []
    names += sorted(p.name for p in (settings.models_dir / version).glob("*.png") if p.name not in names)
    return [n for n in names if n.lower().endswith(".png") and _servable(settings, version, n)]


def _promotion_log(settings: Settings) -> dict[str, dict]:
    """Last logged decision per challenger (covers versions whose decision.json is missing)."""
    path = settings.models_dir / PROMOTIONS_FILE
    decisions: dict[str, dict] = {}
    if not path.is_file():
        return decisions
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("challenger"), str):
            decisions[record["challenger"]] = record
    return decisions


def plot_gaps(metrics: dict[str, Any]) -> dict[str, str]:
    """Plots that cannot show anything for this version, with the reason (older versions wrote them empty)."""
    reason = headline_missing_reason(metrics.get("model"))
    return {PLOT_FILES["within_subreddit_spearman"]: reason} if reason else {}


def champion_pointer(settings: Settings) -> dict[str, Any] | None:
    content, _ = _read_json(settings.models_dir / CHAMPION_FILE)
    return content if isinstance(content, dict) else None


def model_view(settings: Settings, version: str) -> ModelView:
    folder = version_dir(settings, version)
    problems: list[str] = []
    metrics, problem = _read_json(folder / METRICS_FILE)
    problems += [problem] if problem else []
    metrics = metrics if isinstance(metrics, dict) else {}
    decision, problem = _read_json(folder / DECISION_FILE)
    problems += [problem] if problem else []
    if decision is None:
        decision = _promotion_log(settings).get(version)
    lineage, problem = _read_json(folder / LINEAGE_FILE)
    problems += [problem] if problem else []
    card_path = folder / MODEL_CARD_FILE
    card = card_path.read_text(encoding="utf-8", errors="replace") if card_path.is_file() else None
    comparison, champion_note = _comparison(metrics, decision)
    status = "incomplete" if not metrics else ("skipped" if metrics.get("skipped_reason") else "trained")
    pointer = champion_pointer(settings) or {}
    gaps = plot_gaps(metrics) if status == "trained" else {}
    return ModelView(
        version=version,
        created=metrics.get("created_utc"),
        profile=metrics.get("profile"),
        status=status,
        skipped_reason=metrics.get("skipped_reason"),
        rows=metrics.get("rows") if isinstance(metrics.get("rows"), dict) else {},
        data_window=metrics.get("data_window") if isinstance(metrics.get("data_window"), dict) else {},
        run_day=run_day_of(lineage),
        comparison=comparison,
        headline_gap=headline_missing_reason(metrics.get("model")),
        champion_note=champion_note,
        decision=decision if isinstance(decision, dict) else None,
        is_champion=pointer.get("version") == version,
        plots=[name for name in _plots(settings, version, metrics) if name not in gaps],
        model_card=card,
        warnings=[str(w) for w in metrics.get("warnings") or []],
        problems=problems,
        plot_gaps=gaps,
    )


def run_day_of(lineage: Any) -> str | None:
    """The data day a version's run processed: lineage's run_day, else the day its data interval starts."""
    if not isinstance(lineage, dict):
        return None
    if isinstance(lineage.get("run_day"), str):
        return lineage["run_day"]
    interval = lineage.get("interval")
    if isinstance(interval, list) and interval and isinstance(interval[0], (int, float)):
        return datetime.fromtimestamp(interval[0], UTC).date().isoformat()
    return None


def _versions_of_day(settings: Settings, day: date) -> list[str]:
    """Versions whose lineage names this run day, newest first (re-runs train new versions)."""
    root = settings.models_dir
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir(), reverse=True):
        if folder.is_dir() and VERSION_PATTERN.match(folder.name):
            lineage, _ = _read_json(folder / LINEAGE_FILE)
            if isinstance(lineage, dict) and lineage.get("run_day") == day.isoformat():
                found.append(folder.name)
    return found


def _champion_scored_reason(stages: dict[str, Any]) -> str:
    """A day between retrains (training.retrain_every_days): who scored it, and how well."""
    champion = _get(stages, "train_model", "champion_version")
    every = _get(stages, "train_model", "retrain_every_days")
    text = f"No model was trained: not a training day (retrain every {every} days); scored by the champion {champion}"
    within = _get(stages, "evaluate_and_publish", "champion_metrics", "spearman_within_subreddit")
    if isinstance(within, (int, float)):
        text += f", within-subreddit Spearman {within:.3f} on the window's test slice"
    nxt = _get(stages, "train_model", "next_training_day")
    text += f"; next training day {nxt}" if nxt else ""
    return text + " — nothing to do (training.retrain_every_days=1 would train every day)"


def run_view(settings: Settings, day: date) -> RunView:
    stages, problems = _read_stage_files(settings, day)
    trained = _get(stages, "train_model", "version")
    of_day = _versions_of_day(settings, day)
    version = (
        trained if isinstance(trained, str) and VERSION_PATTERN.match(trained) else (of_day[0] if of_day else None)
    )
    model: ModelView | None = None
    no_model_reason: str | None = None
    if version is not None:
        try:
            model = model_view(settings, version)
        except ArtifactNotFound:
            no_model_reason = f"train_model recorded version {version}, but its folder is gone"
    elif _get(stages, "train_model", "trained") is False:
        no_model_reason = _champion_scored_reason(stages)
    elif "train_model" in stages:
        no_model_reason = "train_model ran but recorded no model version"
    elif stages:
        no_model_reason = (
            "No model was trained in this run: it has no train_model stage output (e.g. a day that only ingested)."
        )
    if model is not None and model.status == "skipped":
        no_model_reason = f"No model was trained for this day: {model.skipped_reason}"
    return RunView(
        day=day,
        stages=[StageView(name, _flatten(values)) for name, values in stages.items()],
        funnel=_funnel(stages),
        drop_reasons=_drop_reasons(stages),
        label_coverage=_label_coverage(stages, model),
        accounting=post_accounting(stages),
        model=model,
        no_model_reason=no_model_reason,
        other_versions=[v for v in of_day if v != version],
        problems=problems,
    )


@dataclass
class VersionRow:
    version: str
    created: str | None
    run_day: str | None
    data_window: dict[str, Any]
    status: str
    skipped_reason: str | None
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    promoted: bool | None
    reason: str | None
    is_champion: bool

    def value(self, metric: str) -> float | None:
        value = self.metrics.get(metric)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def primary(self) -> float | None:
        return self.value(PRIMARY_METRIC)


def model_rows(settings: Settings) -> list[VersionRow]:
    """Every version, newest first, with when/what it trained on and the promotion decision."""
    log = _promotion_log(settings)
    rows = []
    for entry in list_versions(settings):
        version = entry["version"]
        folder = settings.models_dir / version
        metrics, _ = _read_json(folder / METRICS_FILE)
        lineage, _ = _read_json(folder / LINEAGE_FILE)
        promoted, reason = entry.get("promoted"), entry.get("decision_reason")
        if promoted is None and version in log:
            promoted, reason = bool(log[version].get("promoted")), log[version].get("reason")
        window = (metrics or {}).get("data_window") if isinstance(metrics, dict) else None
        rows.append(
            VersionRow(
                version=version,
                created=entry.get("created"),
                run_day=run_day_of(lineage),
                data_window=window if isinstance(window, dict) else {},
                status=entry.get("status", "incomplete"),
                skipped_reason=entry.get("skipped_reason"),
                metrics={k: v for k, v in (entry.get("metrics") or {}).items() if v is not None},
                baselines=entry.get("baselines") or {},
                promoted=promoted,
                reason=reason,
                is_champion=bool(entry.get("is_champion")),
            )
        )
    return rows
