"""Model registry: versions under models_dir, a champion pointer, and a gated, logged promotion.

Layout: models/<version>/ (model.keras, metrics.json, decision.json, ...), models/champion.json,
models/promotions.jsonl (one line per decision, promoted or not).
"""

from __future__ import annotations

import fcntl
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from smpp.settings import Settings
from smpp.storage import atomic_write_json
from smpp.training.baselines import BASELINE_NAMES
from smpp.training.metrics import json_safe

CHAMPION_FILE = "champion.json"
PROMOTIONS_FILE = "promotions.jsonl"
DECISION_FILE = "decision.json"
METRICS_FILE = "metrics.json"
LOCK_FILE = ".registry.lock"
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
VERSION_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
PRIMARY_METRIC = "spearman_within_subreddit"
FALLBACK_METRIC = "spearman"


def new_version_id(now: datetime | None = None) -> str:
    """Sortable UTC timestamp plus a random suffix, e.g. 20261121T201500Z-ab12cd."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
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
    keep = ("spearman_within_subreddit", "spearman_within_subreddit_weighted", "spearman", "mae", "rmse", "r2", "n")
    return {k: metrics.get(k) for k in keep}


def metrics_summary(metrics: dict | None) -> dict | None:
    """The decision numbers of a metrics dict as JSON-safe values (None stays None)."""
    return None if metrics is None else json_safe(_summary(metrics))


def _resolve_champion_metrics(
    settings: Settings, challenger: dict, current: str, passed: dict | None
) -> tuple[dict | None, str]:
    """Champion metrics for the comparison, and where they came from."""
    if passed is not None:
        return passed, "champion re-scored on the challenger's test slice by the caller"
    stored = challenger.get("champion") or {}
    if stored.get("version") == current and stored.get("metrics"):
        return stored["metrics"], "champion re-scored on the challenger's test slice at training time"
    own = (_read_metrics(settings, current) or {}).get("model")
    if own:
        return own, "champion's own test metrics (NOT the same test slice: not re-scored)"
    return None, "champion metrics unavailable"


def _gate(settings: Settings, version: str, champion_metrics_on_same_test: dict | None) -> PromotionDecision:
    training = settings.training
    current = champion(settings)
    metrics = _read_metrics(settings, version)
    if metrics is None:
        return PromotionDecision(False, f"no {METRICS_FILE} in {version}: not a finished version", version, current, {}, None)
    model = metrics.get("model")
    if metrics.get("skipped_reason") or not model:
        reason = f"not trained: {metrics.get('skipped_reason') or 'no model metrics'}"
        return PromotionDecision(False, reason, version, current, {}, None)
    if not (version_dir(settings, version) / "model.keras").is_file():
        return PromotionDecision(False, "model.keras missing from the version folder", version, current, _summary(model), None)

    notes: list[str] = []
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

    champion_metrics, source = _resolve_champion_metrics(settings, metrics, current, champion_metrics_on_same_test)
    notes.append(source)
    champion_value = (champion_metrics or {}).get(metric)
    if champion_value is None:
        notes.append(f"champion {current} has no {metric}: promoted on the baseline gate alone")
        return PromotionDecision(True, "; ".join(notes), version, current, _summary(model), _summary(champion_metrics))
    needed = champion_value + training.promotion_margin
    if value < needed:
        reason = f"{metric} {value:.4f} < champion {champion_value:.4f} + margin {training.promotion_margin}"
        return PromotionDecision(False, "; ".join([reason, *notes]), version, current, _summary(model), _summary(champion_metrics))
    mae, champion_mae = model.get("mae"), champion_metrics.get("mae")
    if mae is not None and champion_mae is not None and mae > champion_mae + training.mae_tolerance:
        reason = f"MAE {mae:.4f} worse than champion {champion_mae:.4f} + tolerance {training.mae_tolerance}"
        return PromotionDecision(False, "; ".join([reason, *notes]), version, current, _summary(model), _summary(champion_metrics))
    notes.append(f"beats champion {current} ({champion_value:.4f}) by at least {training.promotion_margin}")
    return PromotionDecision(True, "; ".join(notes), version, current, _summary(model), _summary(champion_metrics))


def decide_and_publish(
    settings: Settings, version: str, champion_metrics_on_same_test: dict | None = None
) -> PromotionDecision:
    """Gate the challenger against baselines and champion; move the pointer if it wins; log either way."""
    with _registry_lock(settings):
        decision = _gate(settings, version, champion_metrics_on_same_test)
        decided_at = datetime.now(timezone.utc).isoformat()
        record = json_safe({"decided_at": decided_at, **asdict(decision)})
        if decision.promoted:
            atomic_write_json(
                settings.models_dir / CHAMPION_FILE,
                {"version": version, "promoted_at": decided_at, "previous": decision.champion, "reason": decision.reason},
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
        stamp = datetime.strptime(version.split("-")[0], VERSION_TIME_FORMAT).replace(tzinfo=timezone.utc)
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
