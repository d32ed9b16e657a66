"""Artifacts shaped like the pipeline's, written by hand so the UI tests run in well under a second.

Two days: 2026-11-19 ran every stage and trained the newest version (not promoted);
2026-11-18 only ingested. The older version is the champion. The browser test builds its
artifacts with the real training code instead (tests/ui/test_browser.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from smpp.storage import write_run_metrics

CHAMPION = "20261118T010000Z-aaaaaa"
CHALLENGER = "20261119T010000Z-bbbbbb"
SKIPPED = "20261117T010000Z-cccccc"
FULL_DAY = "2026-11-19"
INGEST_DAY = "2026-11-18"
CARD_INJECTION = "<script>alert('card')</script>"
SKIP_REASON = "too few labelled rows: 3 < min_rows=30 — backfill more days, or lower training.min_rows"


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (49, 130, 206)).save(buffer, format="PNG")
    return buffer.getvalue()


def _metrics(version: str, within: float, champion: dict | None) -> dict:
    model = {
        "spearman_within_subreddit": within,
        "spearman_within_subreddit_weighted": within - 0.01,
        "spearman": 0.81,
        "mae": 0.91,
        "rmse": 1.2,
        "r2": 0.4,
        "n": 144,
        "subreddits_scored": 4,
        "per_subreddit": {"pics": {"spearman": within, "n": 40}},
    }
    base = {"spearman_within_subreddit": 0.05, "spearman": 0.79, "mae": 1.1, "rmse": 1.4, "r2": 0.3, "n": 144}
    return {
        "version": version,
        "created_utc": f"{version[:4]}-{version[4:6]}-{version[6:8]}T01:00:00+00:00",
        "profile": "tiny",
        "rows": {"input": 800, "labelled": 720, "in_window": 720, "train": 460, "val": 116, "test": 144},
        "data_window": {"start": "2026-10-01T00:00:00+00:00", "end": "2026-11-18T23:00:00+00:00"},
        "model": model,
        "baseline_subreddit_mean": base,
        "baseline_metadata_gbm": {**base, "spearman_within_subreddit": 0.08},
        "baseline_text_ridge": {**base, "spearman_within_subreddit": 0.11},
        "champion": champion,
        "warnings": ["image encoder is random-initialised (tiny profile)"],
        "skipped_reason": None,
        "plots": {"predicted_vs_true": "plot_predicted_vs_true.png"},
        "a_future_field": {"added": "by issue 5"},
    }


def _version(models: Path, version: str, metrics: dict, decision: dict | None, run_day: str) -> Path:
    folder = models / version
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "lineage.json").write_text(json.dumps({"run_day": run_day, "code_version": "test"}))
    (folder / "model.keras").write_bytes(b"weights")
    if decision is not None:
        (folder / "decision.json").write_text(json.dumps(decision))
    return folder


def write_artifacts(settings) -> dict:
    """Run metrics for two days and three versions; returns handy paths."""
    models = settings.models_dir
    champion_metrics = _metrics(CHAMPION, 0.21, None)
    folder = _version(
        models,
        CHAMPION,
        champion_metrics,
        {
            "decided_at": "2026-11-18T01:05:00+00:00",
            "promoted": True,
            "reason": "no champion yet; beats every baseline",
            "challenger": CHAMPION,
            "champion": None,
        },
        "2026-11-16",
    )
    (folder / "plot_predicted_vs_true.png").write_bytes(png_bytes())
    challenger = _metrics(
        CHALLENGER,
        0.1734,
        {"version": CHAMPION, "metrics": {"spearman_within_subreddit": 0.2222, "mae": 0.88, "n": 144}},
    )
    folder = _version(
        models,
        CHALLENGER,
        challenger,
        {
            "decided_at": "2026-11-19T01:05:00+00:00",
            "promoted": False,
            "reason": "spearman_within_subreddit 0.1734 < champion 0.2222 + margin 0.01",
            "challenger": CHALLENGER,
            "champion": CHAMPION,
        },
        FULL_DAY,
    )
    (folder / "plot_predicted_vs_true.png").write_bytes(png_bytes(80, 60))
    (folder / "plot_learning_curves.png").write_bytes(png_bytes(70, 50))
    (folder / "model_card.md").write_text(
        f"# Model card {CHALLENGER}\n\n| metric | value |\n|---|---|\n| within | 0.1734 |\n\n{CARD_INJECTION}\n\n"
        "[click](javascript:alert(1))\n"
    )
    skipped = {
        **_metrics(SKIPPED, 0.0, None),
        "model": None,
        "skipped_reason": SKIP_REASON,
    }
    _version(models, SKIPPED, skipped, None, "2026-11-17")
    (models / "champion.json").write_text(
        json.dumps({"version": CHAMPION, "promoted_at": "2026-11-18T01:05:00+00:00", "reason": "no champion yet"})
    )
    with open(models / "promotions.jsonl", "w") as log:
        for version, promoted, reason in (
            (SKIPPED, False, "not trained: too few rows"),
            (CHAMPION, True, "no champion yet"),
            (CHALLENGER, False, "below champion"),
        ):
            log.write(json.dumps({"challenger": version, "promoted": promoted, "reason": reason}) + "\n")

    for day, stages in ((INGEST_DAY, ("scrape_posts", "filter_posts")), (FULL_DAY, None)):
        write_run_metrics(
            settings,
            day,
            "scrape_posts",
            {
                "day": day,
                "source": "archive",
                "posts_in_day": 1234,
                "archive_skips": {"bad_created_utc": 2},
                "labels": {"labelled_ok": 1200, "labelled_late": 4, "pending": 30},
                "partition": "/srv/secret/path",
            },
        )
        write_run_metrics(
            settings,
            day,
            "filter_posts",
            {
                "day": day,
                "input": 1234,
                "kept": 987,
                "dropped_nsfw": 200,
                "dropped_short_title": 47,
                "with_image_url": 987,
            },
        )
        if stages is None:
            posts = {"kept": 987, "without_image_url": 0, "status": {"ok": 600, "http_404": 387}}
            write_run_metrics(
                settings,
                day,
                "fetch_images",
                {"posts": posts, "requested": 987, "ok": 600, "failures": {"http_404": 387}},
            )
            labels = {"ok": 700, "archive": 0, "late": 40, "not_matured": 200, "missing": 47}
            write_run_metrics(settings, day, "build_features", {"rows": 987, "with_image": 600, "labels": labels})
            write_run_metrics(settings, day, "train_model", {"version": CHALLENGER, "rows": challenger["rows"]})
            write_run_metrics(settings, day, "evaluate_and_publish", {"version": CHALLENGER, "promoted": False})
    # outside the models folder: must never be served
    secret = settings.data_dir / "secret.png"
    secret.write_bytes(png_bytes(9, 9))
    (models / CHALLENGER / "plot_escape.png").symlink_to(secret)
    (models / "plot_loose.png").write_bytes(png_bytes(9, 9))
    return {"secret": secret}


def synthetic_features(n_rows: int = 300, seed: int = 0):
    """A small feature table in smpp.features.schema's shape; the label follows subreddit and title."""
    import numpy as np
    import pandas as pd

    from smpp.features import schema

    rng = np.random.default_rng(seed)
    subreddits = rng.choice(["pics", "aww", "EarthPorn", "funny"], size=n_rows)
    titles = rng.normal(size=(n_rows, 16)).astype(np.float32)
    effect = {"pics": 2.0, "aww": 1.0, "EarthPorn": 0.0, "funny": -1.0}
    frame = pd.DataFrame(
        {
            "post_id": [f"p{i:05d}" for i in range(n_rows)],
            "subreddit": subreddits,
            "author": [f"user{i % 40}" for i in range(n_rows)],
            "created_utc": (1_780_000_000 + np.sort(rng.integers(0, 20 * 86400, size=n_rows))).astype("int64"),
            "label": np.clip(
                3 + np.array([effect[s] for s in subreddits]) + titles[:, 0] + 0.3 * rng.normal(size=n_rows), 0, None
            ),
        }
    )
    for column in schema.META_COLUMNS:
        frame[column] = rng.normal(size=n_rows).astype(np.float32)
    frame["has_image"] = np.zeros(n_rows, dtype=np.float32)
    for column in schema.IMAGE_FEATURE_COLUMNS:
        frame[column] = np.full(n_rows, np.nan, dtype=np.float32)
    frame["title_emb"] = list(titles)
    for column in ("caption_emb", "image_emb", "joint_emb"):
        frame[column] = [None] * n_rows
    return frame


PREDECESSOR_DAY = "2026-11-17"  # the real version the run's version is scored against, as a champion


def train_real_version(data_dir: str, run_day: str = FULL_DAY, with_champion: bool = False) -> str:
    """One version trained by the pipeline's own code (metrics, plots, card) into an empty registry.

    with_champion: first train a real predecessor (PREDECESSOR_DAY) and score it on the new
    version's test slice as its champion, as train_model does: metrics.json gets a champion block.
    """
    from smpp.lifecycle.registry import new_version_id, version_dir
    from smpp.settings import Settings, TrainingSettings
    from smpp.training import train_and_evaluate

    settings = Settings(
        data_dir=data_dir,
        model_profile="tiny",
        training=TrainingSettings(epochs=3, batch_size=64, min_rows=30, within_subreddit_min_posts=5),
    )
    champion = None
    if with_champion:
        before = new_version_id()
        train_and_evaluate(
            settings, synthetic_features(seed=1), version_dir(settings, before), lineage={"run_day": PREDECESSOR_DAY}
        )
        champion = (before, version_dir(settings, before))
    version = new_version_id()
    train_and_evaluate(
        settings, synthetic_features(), version_dir(settings, version), lineage={"run_day": run_day}, champion=champion
    )
    return version


def skip_real_version(data_dir: str, run_day: str) -> tuple[str, dict]:
    """A training the pipeline's code skips (3 labelled rows < min_rows=30): (version, train_model's record)."""
    from smpp.lifecycle.registry import new_version_id, version_dir
    from smpp.settings import Settings, TrainingSettings
    from smpp.training import train_and_evaluate

    settings = Settings(data_dir=data_dir, model_profile="tiny", training=TrainingSettings(min_rows=30))
    version = new_version_id()
    out = version_dir(settings, version)
    report = train_and_evaluate(settings, synthetic_features(n_rows=3), out, lineage={"run_day": run_day})
    assert report.skipped_reason is not None
    return version, {"version": version, "rows": report.rows, "skipped_reason": report.skipped_reason, "trained": True}
