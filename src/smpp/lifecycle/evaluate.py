"""`smpp evaluate ARCHIVE`: the whole feature + training + evaluation protocol on a Reddit archive dump.

The dump is read once (streamed), turned into the pipeline's feature table shape with the same
feature code (metadata, leak-free history, title embeddings through the configured model
profile, cached on disk), split by created time (oldest 80 % train + validation, newest 20 %
test) and handed to `train_and_evaluate`, which writes the model, metrics, plots and card.
That goes through the DAG's own streamed trainer: the frame is written as day partitions into a
temp dir and `train_from_partitions` streams them, so these numbers are the code the DAG runs.
Images are not fetched (dump links are usually dead, and evaluation must run offline): the image
modalities are simply absent, which the model handles with its masks.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.settings import Settings

log = logging.getLogger(__name__)

ALL_TIME = (0, 2**62)


def read_archive(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every usable post of the dump (bad lines counted, crossposts and removed posts dropped)."""
    from smpp.sources.archive import ArchiveScan, scan_archive_posts

    scan = ArchiveScan()
    rows = [
        {
            "id": r.id,
            "subreddit": r.subreddit,
            "author": r.author,
            "created_utc": r.created_utc,
            "title": r.title,
            "score": r.score,
            "is_self": r.is_self,
            "over_18": r.over_18,
            "domain": r.domain,
            "selftext_len": r.selftext_len,
            "removed": r.removed,
        }
        for r in scan_archive_posts(Path(path), *ALL_TIME, scan)
    ]
    posts = pd.DataFrame(rows, columns=["id", "subreddit", "author", "created_utc", "title", "score", "is_self",
                                        "over_18", "domain", "selftext_len", "removed"])
    removed = int(posts["removed"].sum()) if len(posts) else 0
    posts = posts.loc[~posts["removed"].astype(bool)].drop(columns="removed").reset_index(drop=True)
    stats = {"lines": scan.lines, "posts": len(posts), "removed": removed, "skipped": dict(scan.skip_reasons)}
    return posts, stats


def archive_feature_frame(settings: Settings, posts: pd.DataFrame, embed_titles: bool = True) -> pd.DataFrame:
    """The feature table (+ labels) the pipeline would build for these posts, without images."""
    from smpp.features import schema
    from smpp.features.author_history import add_history_features
    from smpp.features.table import extra_post_features, metadata_features
    from smpp.warehouse.labels import label_of_score

    authors = pd.DataFrame(columns=["name", "created_utc", "link_karma", "comment_karma"])
    meta = metadata_features(posts, authors)
    frame = pd.DataFrame(
        {
            "post_id": posts["id"].astype(str).to_numpy(),
            "subreddit": posts["subreddit"].astype(str).to_numpy(),
            "author": posts["author"].to_numpy(),
            "created_utc": posts["created_utc"].astype("int64").to_numpy(),
        }
    )
    meta["has_image"] = np.float32(0.0)  # images are not fetched here
    for column in schema.META_COLUMNS:
        frame[column] = meta[column].to_numpy(np.float32)
    for column in schema.IMAGE_FEATURE_COLUMNS:
        frame[column] = np.float32(np.nan)
    for column, values in extra_post_features(posts).items():
        frame[column] = values
    # label: log1p(max(score, 0)); an archive's score counts as matured at the label age
    frame["label_score"] = pd.to_numeric(posts["score"], errors="coerce").to_numpy(float)
    frame["label"] = label_of_score(frame["label_score"])
    frame["label_age_hours"] = np.float32(settings.label_age_hours)
    frame["label_matured_utc"] = frame["created_utc"] + int(settings.label_age_hours * 3600)
    frame = add_history_features(frame, label_age_hours=settings.label_age_hours)
    if embed_titles:
        from smpp.encoders import embed_texts

        started = time.perf_counter()
        result = embed_texts(settings, posts["title"].fillna("").astype(str).tolist())
        log.info(
            "title embeddings: %d (%d cached) in %.1fs with %s",
            len(posts), result.cache_hits, time.perf_counter() - started, result.model_id,
        )
        frame["title_emb"] = list(result.vectors)
    return frame.sort_values(["created_utc", "post_id"], kind="stable").reset_index(drop=True)


def evaluate_archive(settings: Settings, archive: Path, out_dir: Path) -> dict[str, Any]:
    """Run the protocol on `archive`; write everything under `out_dir`; return metrics.json's content."""
    from smpp.tasks import code_version
    from smpp.training.train import train_and_evaluate

    started = time.perf_counter()
    # the split: oldest 80 % train + validation, newest 20 % test
    settings = settings.with_overrides(
        training={**settings.training.model_dump(), "test_fraction": 0.2, "train_window_days": None,
                  "train_window_rows": None}
    )
    posts, scan = read_archive(archive)
    if posts.empty:
        raise ValueError(f"no usable posts in {archive} ({scan})")
    frame = archive_feature_frame(settings, posts)
    features_s = time.perf_counter() - started
    lineage = {
        "archive": str(Path(archive).resolve()),
        "archive_scan": scan,
        "code_version": code_version(),
        "label_rule": "log1p(max(score, 0)) of the dump's score, taken as matured at the label age",
        "images": "not fetched (text and metadata only)",
    }
    report = train_and_evaluate(settings, frame, Path(out_dir), lineage=lineage)
    metrics = dict(report.metrics)
    metrics["timing_s"] = {"features": features_s, "total": time.perf_counter() - started}
    from smpp.storage import atomic_write_json
    from smpp.training.metrics import json_safe

    metrics = json_safe(metrics)
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
