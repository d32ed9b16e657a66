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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.encoders import embed_texts
from smpp.features.author_history import history_features
from smpp.features.table import build_feature_table, feature_frame_of
from smpp.lifecycle.registry import code_version
from smpp.settings import Settings
from smpp.sources.archive import ArchiveScan, scan_archive_posts
from smpp.storage import atomic_write_json
from smpp.training.metrics import json_safe
from smpp.warehouse.labels import label_of_score

log = logging.getLogger(__name__)

ALL_TIME = (0, 2**62)


def read_archive(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every usable post of the dump (bad lines counted, crossposts and removed posts dropped)."""

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
    posts = pd.DataFrame(
        rows,
        columns=[
            "id",
            "subreddit",
            "author",
            "created_utc",
            "title",
            "score",
            "is_self",
            "over_18",
            "domain",
            "selftext_len",
            "removed",
        ],
    )
    removed = int(posts["removed"].sum()) if len(posts) else 0
    posts = posts.loc[~posts["removed"].astype(bool)].drop(columns="removed").reset_index(drop=True)
    stats = {"lines": scan.lines, "posts": len(posts), "removed": removed, "skipped": dict(scan.skip_reasons)}
    return posts, stats


@contextmanager
def timed_step(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    """Log a step's start and end; add its seconds to `timings` (evaluate prints them at the end)."""
    log.info("step %s: started", name)
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + seconds, 3)
        log.info("step %s: done in %.1f s", name, seconds)


def archive_feature_frame(
    settings: Settings, posts: pd.DataFrame, embed_titles: bool = True, timings: dict[str, float] | None = None
) -> pd.DataFrame:
    """The feature table (+ labels) the pipeline would build for these posts, without images.

    timings: step name -> seconds, filled in (history, title embeddings, feature table)."""
    posts = posts.reset_index(drop=True)
    # label: log1p(max(score, 0)); an archive's score counts as matured at the label age
    labels = pd.DataFrame({"label_score": pd.to_numeric(posts["score"], errors="coerce").to_numpy(float)})
    labels["label"] = label_of_score(labels["label_score"])
    labels["label_age_hours"] = np.float32(settings.label_age_hours)
    created = pd.to_numeric(posts["created_utc"]).astype("int64")
    labels["label_matured_utc"] = created.to_numpy() + int(settings.label_age_hours * 3600)
    # the dump is its own history: every earlier post, its label once matured (leak-free by time)
    with timed_step(timings, "history"):
        history = _history(settings, posts, created, labels)
    embeddings, dims = {}, {}
    if embed_titles:
        with timed_step(timings, "title embeddings"):
            started = time.perf_counter()
            result = embed_texts(settings, posts["title"].fillna("").astype(str).tolist())
            log.info(
                "title embeddings: %d (%d cached) in %.1fs with %s",
                len(posts),
                result.cache_hits,
                time.perf_counter() - started,
                result.model_id,
            )
            embeddings["title_emb"], dims["title_emb"] = list(result.vectors), int(result.dim)
    authors = pd.DataFrame(columns=["name", "created_utc", "link_karma", "comment_karma"])  # dumps carry no karma
    with timed_step(timings, "feature table"):
        table = build_feature_table(posts, authors, day=None, history=history, dims=dims, embeddings=embeddings)
        frame = feature_frame_of(table).drop(columns="ds").join(labels)
    return frame.sort_values(["created_utc", "post_id"], kind="stable").reset_index(drop=True)


def _history(settings: Settings, posts: pd.DataFrame, created: pd.Series, labels: pd.DataFrame) -> pd.DataFrame:
    return history_features(
        pd.DataFrame(
            {
                "author": posts["author"].to_numpy(),
                "subreddit": posts["subreddit"].to_numpy(),
                "created_utc": created.to_numpy(),
                "label": labels["label"].to_numpy(),
                "label_matured_utc": labels["label_matured_utc"].to_numpy(),
            }
        ),
        label_age_hours=settings.label_age_hours,
    )


def evaluate_archive(settings: Settings, archive: Path, out_dir: Path) -> dict[str, Any]:
    """Run the protocol on `archive`; write everything under `out_dir`; return metrics.json's content."""
    from smpp.training.train import train_and_evaluate

    started = time.perf_counter()
    # the split: oldest 80 % train + validation, newest 20 % test
    settings = settings.with_overrides(
        training={
            **settings.training.model_dump(),
            "test_fraction": 0.2,
            "train_window_days": None,
            "train_window_rows": None,
        }
    )
    timings: dict[str, float] = {}
    with timed_step(timings, "read archive"):
        posts, scan = read_archive(archive)
    if posts.empty:
        raise ValueError(f"no usable posts in {archive} ({scan})")
    frame = archive_feature_frame(settings, posts, timings=timings)
    features_s = time.perf_counter() - started
    lineage = {
        "archive": str(Path(archive).resolve()),
        "archive_scan": scan,
        "code_version": code_version(),
        "label_rule": "log1p(max(score, 0)) of the dump's score, taken as matured at the label age",
        "images": "not fetched (text and metadata only)",
    }
    with timed_step(timings, "training and evaluation"):
        report = train_and_evaluate(settings, frame, Path(out_dir), lineage=lineage)
    metrics = dict(report.metrics)
    metrics["timing_s"] = {"features": features_s, "steps": timings, "total": time.perf_counter() - started}

    metrics = json_safe(metrics)
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
