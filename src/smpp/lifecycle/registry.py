"""Model registry: versions under models_dir, a champion pointer, and a gated, logged promotion.

Layout: models/<version>/ (model.keras, metrics.json, decision.json, ...), models/champion.json,
models/promotions.jsonl (one line per decision, promoted or not).
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smpp import __version__
from smpp.settings import PROJECT_ROOT, Settings
from smpp.storage import atomic_write_json
from smpp.training.metric_names import BASELINE_NAMES, CONSTANT_BASELINE, DECISION_METRICS
from smpp.training.metrics import implausible_on_slice, json_safe

log = logging.getLogger(__name__)

CHAMPION_FILE = "champion.json"
PROMOTIONS_FILE = "promotions.jsonl"
DECISION_FILE = "decision.json"
METRICS_FILE = "metrics.json"
LOCK_FILE = ".registry.lock"
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
# a version being built: .tmp-<version>@<host>@<pid>/<version>/ beside the finished ones (never listed)
VERSION_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
PRIMARY_METRIC = "spearman_within_subreddit"
FALLBACK_METRIC = "spearman"


def new_version_id(now: datetime | None = None) -> str:
    """Sortable UTC timestamp plus a random suffix, e.g. 20261121T201500Z-ab12cd."""
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return f"{now.strftime(VERSION_TIME_FORMAT)}-{secrets.token_hex(3)}"


def version_dir(settings: Settings, version: str) -> Path:
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"not a model version id: {version!r} (expected e.g. 20261121T201500Z-ab12cd)")
    return settings.models_dir / version


def champion(settings: Settings) -> str | None:
    path = settings.models_dir / CHAMPION_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("version")


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    challenger: str
    champion: str | None
    challenger_metrics: dict
    champion_metrics: dict | None
    # e.g. "champion re-scored absurdly on this test slice": shown with the decision, also in `reason`
    warnings: list[str] = field(default_factory=list)


@contextmanager
def _registry_lock(settings: Settings) -> Iterator[None]:
    """Serialise decisions so two publishers cannot both read the old champion and both win."""
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.models_dir / LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_metrics(settings: Settings, version: str) -> dict | None:
    path = version_dir(settings, version) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _summary(metrics: dict | None) -> dict:
    """The numbers a decision is made on (not the per-subreddit detail)."""
    if not metrics:
        return {}
    keep = (*DECISION_METRICS, "prediction_min", "prediction_max", "error")
    return {k: metrics.get(k) for k in keep}


def metrics_summary(metrics: dict | None) -> dict | None:
    """The decision numbers of a metrics dict as JSON-safe values (None stays None)."""
    return None if metrics is None else json_safe(_summary(metrics))


def champion_block(settings: Settings, version: str) -> dict | None:
    """The challenger's record of the champion scored on its test slice (metrics.json "champion"), if any."""
    return (_read_metrics(settings, version) or {}).get("champion")


def record_champion_block(
    settings: Settings, version: str, champion_version: str, scored: dict | None, error: str | None = None
) -> dict:
    """Write the champion's scores on `version`'s test slice into `version`'s metrics.json (the one record)."""
    metrics = _read_metrics(settings, version) or {}
    if scored is None and error is None:
        error = "no test slice to score it on (too few labelled rows)"
    problems = [] if scored is None else _implausible(settings, scored, metrics)
    block = {
        "version": champion_version,
        "metrics": scored,
        "error": error,
        "same_test_slice": scored is not None,
        "implausible": problems,
    }
    metrics["champion"] = block
    atomic_write_json(version_dir(settings, version) / METRICS_FILE, json_safe(metrics))
    return block


def _block_for(challenger: dict, current: str) -> dict | None:
    """The challenger's record of `current` scored on its test slice; None when it holds none for `current`."""
    block = challenger.get("champion") or {}
    return block if block.get("version") == current else None


def _implausible(settings: Settings, scores: dict | None, metrics: dict) -> list[str]:
    """Why `scores` (on this version's test slice) cannot come from a working model; [] if none found."""
    return implausible_on_slice(settings.training, scores, metrics)


def _too_little_evidence(settings: Settings, metrics: dict, model: dict) -> str | None:
    """Why the challenger's slices are too small to promote on (README: promotion evidence); None if enough."""
    training = settings.training
    train_rows = int((metrics.get("rows") or {}).get("train") or 0)
    test_rows = int(model.get("n") or 0)
    if train_rows < training.promotion_min_train_rows:
        minimum = training.promotion_min_train_rows
        return f"too little evidence: {train_rows} train rows < promotion_min_train_rows={minimum}"
    if test_rows < training.promotion_min_test_rows:
        return (
            f"too little evidence: {test_rows} test rows < promotion_min_test_rows={training.promotion_min_test_rows}"
        )
    if model.get(PRIMARY_METRIC) is None and not training.promotion_allow_overall_spearman:
        return (
            f"too little evidence: {PRIMARY_METRIC} is null (no subreddit has {training.within_subreddit_min_posts} "
            "test posts) and promotion_allow_overall_spearman is off"
        )
    return None


def _broken_champion_warning(current: str, problems: list[str]) -> str:
    return f"champion {current} looks broken on this test slice: {'; '.join(problems)}"


def _gate(settings: Settings, version: str) -> PromotionDecision:
    """_judge's decision; a broken champion is named in it even when the challenger was refused first."""
    decision = _judge(settings, version)
    current = decision.champion
    metrics = _read_metrics(settings, version) or {}
    if decision.warnings or current is None or current == version or not metrics.get("model"):
        return decision
    champion_metrics = (_block_for(metrics, current) or {}).get("metrics")
    if decision.champion_metrics is None and champion_metrics:
        decision.champion_metrics = _summary(champion_metrics)  # the record shows both sides even when refused early
    problems = _implausible(settings, champion_metrics, metrics)
    if problems:
        warning = _broken_champion_warning(current, problems)
        decision.warnings.append(warning)
        decision.reason = f"{decision.reason}; {warning}"
    return decision


def _judge(settings: Settings, version: str) -> PromotionDecision:
    training = settings.training
    current = champion(settings)
    metrics = _read_metrics(settings, version)
    if metrics is None:
        return PromotionDecision(
            False, f"no {METRICS_FILE} in {version}: not a finished version", version, current, {}, None
        )
    model = metrics.get("model")
    if metrics.get("skipped_reason") or not model:
        reason = f"not trained: {metrics.get('skipped_reason') or 'no model metrics'}"
        return PromotionDecision(False, reason, version, current, {}, None)
    if not (version_dir(settings, version) / "model.keras").is_file():
        return PromotionDecision(
            False, "model.keras missing from the version folder", version, current, _summary(model), None
        )

    refused = _too_little_evidence(settings, metrics, model)
    if refused:
        return PromotionDecision(False, refused, version, current, _summary(model), None)
    problems = _implausible(settings, model, metrics)
    if problems:
        reason = f"challenger's test scores are implausible: {'; '.join(problems)}"
        return PromotionDecision(False, reason, version, current, _summary(model), None)

    notes: list[str] = []
    if metrics.get("train_labels") is None or metrics.get(CONSTANT_BASELINE) is None:
        notes.append("no train label summary / constant baseline in metrics.json: plausibility not checked")
    metric = PRIMARY_METRIC
    if model.get(PRIMARY_METRIC) is None:
        metric = FALLBACK_METRIC
        notes.append(f"{PRIMARY_METRIC} is null (no subreddit has enough test posts): judged on overall {metric}")
    value = model.get(metric)
    if value is None:
        return PromotionDecision(False, f"challenger {metric} is null", version, current, _summary(model), None)

    for name in BASELINE_NAMES:
        baseline_value = (metrics.get(name) or {}).get(metric)
        if baseline_value is None:
            notes.append(f"{name} has no {metric}: not compared")
            continue
        if not value > baseline_value:
            reason = f"{metric} {value:.4f} does not beat {name} ({baseline_value:.4f})"
            return PromotionDecision(False, "; ".join([reason, *notes]), version, current, _summary(model), None)
    notes.append(f"beats every baseline on {metric} ({value:.4f})")

    if current is None or current == version:
        notes.insert(0, "no champion yet" if current is None else "already champion")
        return PromotionDecision(current is None, "; ".join(notes), version, current, _summary(model), None)

    block = _block_for(metrics, current)
    if block is None:
        # Numbers from another test slice say nothing about this one: no comparison, no promotion.
        reason = f"champion {current} was not scored on this test slice: not promoted"
        return PromotionDecision(False, "; ".join([reason, *notes]), version, current, _summary(model), None)
    champion_metrics = block.get("metrics")
    if not champion_metrics:
        # Scoring it on this slice failed: a champion that cannot score today's features cannot serve them.
        warning = f"champion {current} could not be scored on this test slice: {block.get('error')}"
        notes += [warning, "promoted on the challenger's own gates"]
        return PromotionDecision(True, "; ".join(notes), version, current, _summary(model), None, [warning])
    notes.append("champion re-scored on the challenger's test slice")
    champion_problems = _implausible(settings, champion_metrics, metrics)
    if champion_problems:
        # A broken champion's numbers are noise: beating (or losing to) them would decide by accident.
        # The challenger has passed every gate of its own (evidence, plausibility, baselines): it replaces it.
        warning = _broken_champion_warning(current, champion_problems)
        notes += [warning, "its scores are not compared: promoted on the challenger's own gates"]
        return PromotionDecision(
            True, "; ".join(notes), version, current, _summary(model), _summary(champion_metrics), [warning]
        )
    champion_value = (champion_metrics or {}).get(metric)
    if champion_value is None:
        notes.append(f"champion {current} has no {metric}: promoted on the baseline gate alone")
        return PromotionDecision(True, "; ".join(notes), version, current, _summary(model), _summary(champion_metrics))
    needed = champion_value + training.promotion_margin
    if value < needed:
        reason = f"{metric} {value:.4f} < champion {champion_value:.4f} + margin {training.promotion_margin}"
        return PromotionDecision(
            False, "; ".join([reason, *notes]), version, current, _summary(model), _summary(champion_metrics)
        )
    mae, champion_mae = model.get("mae"), champion_metrics.get("mae")
    if mae is not None and champion_mae is not None and mae > champion_mae + training.mae_tolerance:
        reason = f"MAE {mae:.4f} worse than champion {champion_mae:.4f} + tolerance {training.mae_tolerance}"
        return PromotionDecision(
            False, "; ".join([reason, *notes]), version, current, _summary(model), _summary(champion_metrics)
        )
    notes.append(f"beats champion {current} ({champion_value:.4f}) by at least {training.promotion_margin}")
    return PromotionDecision(True, "; ".join(notes), version, current, _summary(model), _summary(champion_metrics))


def decide_and_publish(settings: Settings, version: str) -> PromotionDecision:
    """Gate the challenger against baselines and the champion (its metrics.json block); move the pointer if it wins."""
    with _registry_lock(settings):
        decision = _gate(settings, version)
        decided_at = datetime.now(UTC).isoformat()
        record = json_safe({"decided_at": decided_at, **asdict(decision)})
        if decision.promoted:
            atomic_write_json(
                settings.models_dir / CHAMPION_FILE,
                {
                    "version": version,
                    "promoted_at": decided_at,
                    "previous": decision.champion,
                    "reason": decision.reason,
                },
            )
        directory = version_dir(settings, version)
        if directory.is_dir():
            atomic_write_json(directory / DECISION_FILE, record)
        with open(settings.models_dir / PROMOTIONS_FILE, "a", encoding="utf-8") as log_file:
            log_file.write(json.dumps(record, sort_keys=True, default=str, allow_nan=False) + "\n")
    return decision


def _created(version: str, metrics: dict | None) -> str | None:
    if metrics and metrics.get("created_utc"):
        return metrics["created_utc"]
    try:
        stamp = datetime.strptime(version.split("-")[0], VERSION_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return stamp.isoformat()


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every version folder, newest first: created, metrics summary, status, promoted?, champion?"""
    root = settings.models_dir
    if not root.is_dir():
        return []
    current = champion(settings)
    versions = []
    for directory in sorted((p for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)), reverse=True):
        metrics = _read_metrics(settings, directory.name)
        decision_path = directory / DECISION_FILE
        decision = json.loads(decision_path.read_text()) if decision_path.is_file() else None
        if metrics is None:
            status = "incomplete"
        elif metrics.get("skipped_reason"):
            status = "skipped"
        else:
            status = "trained"
        versions.append(
            {
                "version": directory.name,
                "created": _created(directory.name, metrics),
                "status": status,
                "skipped_reason": (metrics or {}).get("skipped_reason"),
                "profile": (metrics or {}).get("profile"),
                "rows": (metrics or {}).get("rows"),
                "metrics": _summary((metrics or {}).get("model")),
                "baselines": {name: _summary((metrics or {}).get(name)) for name in BASELINE_NAMES},
                "promoted": None if decision is None else bool(decision.get("promoted")),
                "decision_reason": None if decision is None else decision.get("reason"),
                "is_champion": directory.name == current,
            }
        )
    return versions


def code_version() -> str:
    """The package version and the checkout's commit, recorded in each version's lineage."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return f"{__version__}+{sha}"
