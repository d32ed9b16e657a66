"""One function per pipeline stage. The only module that knows it is called by Airflow.

Each stage reads its inputs for the run's day (keyed by data_interval_start), calls the
domain code, writes its own partition atomically, records its counts for the UI, and
returns a small summary (XCom carries only that).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from smpp import storage
from smpp.settings import ResolvedSource, Settings, get_settings
from smpp.sources.resolve import resolve_source

log = logging.getLogger(__name__)

# DAG params that map onto settings fields (None = keep the configured value).
PARAM_SETTINGS = ("source", "archive_path", "subreddits", "label_age_hours", "model_profile")


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    day: date
    start_utc: int
    end_utc: int


def _to_datetime(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def run_context(
    interval_start: datetime | str | None,
    interval_end: datetime | str | None,
    params: dict[str, Any] | None = None,
) -> RunContext:
    if interval_start is None or interval_end is None:
        raise ValueError(
            "this run has no data interval (manual trigger without a logical date?): "
            "trigger it with a logical date so the day to process is defined"
        )
    params = params or {}
    overrides = {k: params.get(k) for k in PARAM_SETTINGS}
    if params.get("train_window_days") is not None:
        base = get_settings()
        overrides["training"] = base.training.model_copy(
            update={"train_window_days": int(params["train_window_days"])}
        ).model_dump()
    settings = get_settings().with_overrides(**overrides)
    start, end = _to_datetime(interval_start), _to_datetime(interval_end)
    return RunContext(settings, start.date(), int(start.timestamp()), int(end.timestamp()))


def _resolved_source(ctx: RunContext) -> ResolvedSource:
    """reddit or archive for this run's day, judged by the clock: the run's start_date cannot be used, as
    `airflow dags test` sets it to the logical date. A run straddling the boundary can only turn from
    reddit to archive in a later task, which reads (and indexes) the dump itself."""
    now = datetime.now(UTC)
    source = resolve_source(ctx.settings, datetime.fromtimestamp(ctx.start_utc, UTC), now)
    log.info("source %s for %s (requested %s, judged at %s)", source, ctx.day, ctx.settings.source, now.isoformat())
    return source


def _session(settings: Settings):
    from smpp.warehouse import session_for

    return session_for(settings.database_url)


def _finish(ctx: RunContext, stage: str, metrics: dict[str, Any]) -> dict[str, Any]:
    metrics = {"day": ctx.day.isoformat(), **metrics}
    storage.write_run_metrics(ctx.settings, ctx.day, stage, metrics)
    log.info("%s %s: %s", stage, ctx.day, metrics)
    return metrics


# ---------------------------------------------------------------- ingestion


def _day_posts_frame(settings: Settings, start_utc: int, end_utc: int) -> pd.DataFrame:
    from smpp.warehouse import Post

    with _session(settings) as session:
        rows = session.scalars(
            select(Post)
            .where(Post.created_utc >= start_utc, Post.created_utc < end_utc, Post.removed.is_(False))
            .order_by(Post.id)
        ).all()
        columns = [c.name for c in Post.__table__.columns]
        return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in rows], columns=columns)


def _scrape_live(ctx: RunContext, session, subreddits: list[str]) -> dict[str, Any]:
    """PRAW over each subreddit's /new for the interval, into the warehouse."""
    from smpp.sources.reddit import BatchReport, fetch_authors, make_reddit, scrape_new
    from smpp.warehouse.ingest import ingest_authors, ingest_posts, unknown_author_fullnames
    from smpp.warehouse.labels import assign_labels

    settings = ctx.settings
    reddit = make_reddit(settings)
    statuses: dict[str, str] = {}
    errors: dict[str, str] = {}
    skipped: dict[str, int] = {}
    gaps: dict[str, list[int]] = {}
    total: dict[str, int] = {}
    post_ids: list[str] = []
    removed: list[str] = []
    for subreddit in subreddits:
        result = scrape_new(
            reddit,
            subreddit,
            ctx.start_utc,
            ctx.end_utc,
            limit=settings.reddit.listing_limit,
            cap_floor=settings.reddit.listing_cap_floor,
            max_429_retries=settings.reddit.max_429_retries,
        )
        statuses[subreddit] = result.status
        if result.error:
            errors[subreddit] = result.error
        for reason, n in result.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        if result.uncovered_span:
            gaps[subreddit] = list(result.uncovered_span)
            log.warning("r/%s: listing cap hit, uncovered span %s", subreddit, result.uncovered_span)
        stats = ingest_posts(session, settings, result.posts, first_sight_only=True)
        post_ids += stats.post_ids
        removed += stats.removed_ids
        for key, value in stats.as_metrics().items():
            total[key] = total.get(key, 0) + value
    author_report = BatchReport()
    authors = fetch_authors(
        reddit,
        unknown_author_fullnames(session, post_ids),
        max_429_retries=settings.reddit.max_429_retries,
        report=author_report,
    )
    return {
        "subreddit_status": statuses,
        "subreddit_errors": errors,
        "skipped_records": skipped,
        "authors_not_returned": len(author_report.not_returned),
        "uncovered_spans": gaps,
        "authors_snapshotted": ingest_authors(session, authors),
        **total,
        "labels": vars(assign_labels(session, settings, post_ids)),
        "purged": _purge(settings, removed),
    }


def scrape_posts(interval_start, interval_end, params=None) -> dict[str, Any]:
    """Live: PRAW over each subreddit's /new. Archive: the dump's posts of the interval."""
    from smpp.warehouse.ingest import ingest_posts

    ctx = run_context(interval_start, interval_end, params)
    settings = ctx.settings
    source = _resolved_source(ctx)
    metrics: dict[str, Any] = {"source": source, "source_requested": settings.source}
    with _session(settings) as session:
        if source == "archive":
            from smpp.sources.archive import ArchiveScan
            from smpp.sources.dumps import iter_archive_posts

            if settings.archive_path is None:
                raise ValueError("source=archive needs archive_path (DAG param or SMPP_ARCHIVE_PATH)")
            scan = ArchiveScan()
            # only the configured subreddits (["*"]: all), from the files that can hold the day
            # (archive_path: a file, directory or glob), via each file's day index for that selection
            # (built by index_archive_file, or here by the first task that needs it) unless turned off
            records = iter_archive_posts(
                settings.archive_path,
                ctx.start_utc,
                ctx.end_utc,
                scan,
                settings=settings,
                subreddits=settings.subreddits,
            )
            stats = ingest_posts(session, settings, records)
            metrics.update(archive_lines=scan.lines, archive_skips=scan.skip_reasons, **stats.as_metrics())
            metrics.update(archive_bad_lines=scan.bad_lines, archive_days_read=scan.days_read, archive_index=scan.index)
            metrics["archive_files"] = [i["source"] for i in scan.indexes] or [f["file"] for f in scan.files]
            metrics["archive_indexes"] = scan.indexes
            # a newer dump can show a stored post as removed: purge it like a live refresh would
            metrics["purged"] = _purge(settings, stats.removed_ids)
        else:
            metrics.update(_scrape_live(ctx, session, settings.subreddits))
    # the day's partition comes from the warehouse, so posts found by frequent scrapes are in it
    posts = _day_posts_frame(settings, ctx.start_utc, ctx.end_utc)
    path = storage.write_partition(settings, "posts", ctx.day, posts)
    return _finish(ctx, "scrape_posts", {**metrics, "posts_in_day": len(posts), "partition": str(path)})


def scrape_frequent(interval_start, interval_end, params=None) -> dict[str, Any]:
    """Sub-daily scrape of busy subreddits into the warehouse only (no day partition)."""
    ctx = run_context(interval_start, interval_end, params)
    stage = f"scrape_frequent_{datetime.fromtimestamp(ctx.start_utc, UTC):%H%M}"
    if not ctx.settings.frequent_subreddits:
        return _finish(ctx, stage, {"skipped": "no frequent_subreddits configured"})
    with _session(ctx.settings) as session:
        metrics = _scrape_live(ctx, session, ctx.settings.frequent_subreddits)
    return _finish(ctx, stage, {"interval": [ctx.start_utc, ctx.end_utc], **metrics})


def _purge(settings: Settings, removed_ids: list[str]) -> dict[str, Any]:
    if not removed_ids:
        return {"posts": 0}
    from smpp.warehouse.purge import purge_ids

    return vars(purge_ids(settings, removed_ids))


def refresh_scores(interval_start, interval_end, params=None) -> dict[str, Any]:
    """Re-read young posts' scores so each gets its label at the fixed age."""
    from smpp.warehouse.ingest import ingest_posts, now_utc
    from smpp.warehouse.labels import assign_labels, posts_due_for_refresh

    ctx = run_context(interval_start, interval_end, params)
    settings = ctx.settings
    if _resolved_source(ctx) == "archive":
        return _finish(ctx, "refresh_scores", {"skipped": "archive source: labels come from the dump"})
    from smpp.sources.reddit import BatchReport, make_reddit, refresh_posts

    report = BatchReport()
    with _session(settings) as session:
        due = posts_due_for_refresh(session, settings, now_utc())
        records = (
            refresh_posts(make_reddit(settings), due, max_429_retries=settings.reddit.max_429_retries, report=report)
            if due
            else []
        )
        stats = ingest_posts(session, settings, records)
        labels = assign_labels(session, settings)
    purged = _purge(settings, stats.removed_ids)
    return _finish(
        ctx,
        "refresh_scores",
        {
            "due": len(due),
            "refreshed": len(records),
            "newly_removed": stats.newly_removed,
            "missing": len(report.missing),
            "malformed": len(report.malformed),
            "failed_batches": len(report.errors),
            "not_refreshed": len(report.failed),
            "skipped_records": report.skipped,
            "labels": vars(labels),
            "purged": purged,
        },
    )


def filter_posts(interval_start, interval_end, params=None) -> dict[str, Any]:
    from smpp.features.filtering import apply_filters
    from smpp.images.gallery import add_image_urls

    ctx = run_context(interval_start, interval_end, params)
    posts = storage.read_partition(ctx.settings, "posts", ctx.day)
    current = _day_posts_frame(ctx.settings, ctx.start_utc, ctx.end_utc)
    # removals seen by a later refresh win over the day's first sight (removed posts are absent)
    if not posts.empty:
        posts = posts.drop(columns=["removed", "title"]).merge(current[["id", "removed", "title"]], on="id", how="left")
        posts["removed"] = posts["removed"].fillna(True).astype(bool)
    else:
        posts = current
    filtered, counts = apply_filters(posts, ctx.settings.filter)
    # image_url: the image the models use; image_urls: it, then (images.all_gallery_items) the other gallery items
    filtered = add_image_urls(filtered, ctx.settings.images.all_gallery_items)
    kept = filtered[filtered["keep"]].drop(columns=["gallery_urls"]).reset_index(drop=True)
    path = storage.write_partition(ctx.settings, "filtered", ctx.day, kept)
    counts["with_image_url"] = int(kept["image_url"].notna().sum())
    counts["extra_gallery_images"] = int(kept["image_urls"].map(len).sum()) - counts["with_image_url"]
    return _finish(ctx, "filter_posts", {**counts, "partition": str(path)})


def _archive_root(settings: Settings) -> Path:
    return settings.data_dir / "archive_index"


def plan_archive_files(interval_start, interval_end, params=None) -> list[str]:
    """The archive files this run must scan before scrape_posts: those whose day index lacks a shard
    of the run's subreddits (one mapped index_archive_file task each). [] for the live source."""
    ctx = run_context(interval_start, interval_end, params)
    settings = ctx.settings
    if _resolved_source(ctx) != "archive" or not settings.archive_use_index:
        return []
    if settings.archive_path is None:
        raise ValueError("source=archive needs archive_path (DAG param or SMPP_ARCHIVE_PATH)")
    from smpp.sources.archive_index import missing_for
    from smpp.sources.archive_select import Selection, pick_files

    picked = pick_files(settings.archive_path, ctx.start_utc, ctx.end_utc, Selection.of(settings.subreddits))
    return [str(dump.path) for dump, wanted in picked if missing_for(dump.path, _archive_root(settings), wanted)]


def index_archive_file(path: str, interval_start, interval_end, params=None) -> dict[str, Any]:
    """Build the missing day-index shards of one archive file for the run's subreddits (one scan).

    Idempotent and locked per file: parallel runs needing the same month wait for one scan."""
    from smpp.sources.archive_index import ensure_day_index
    from smpp.sources.archive_select import Selection, classify

    ctx = run_context(interval_start, interval_end, params)
    settings = ctx.settings
    wanted = classify(Path(path)).selection_for(Selection.of(settings.subreddits))
    if wanted is None:
        return {"file": path, "skipped": "holds none of the configured subreddits"}
    index = ensure_day_index(
        Path(path),
        _archive_root(settings),
        flush_bytes=settings.archive_index_flush_mb << 20,
        subreddits=None if wanted.everything else sorted(wanted.names),
        progress_every_s=settings.archive_progress_every_s,
    )
    summary = {**index.summary(), "selection": wanted.key, "index_bytes": index.disk_bytes()}
    log.info("index_archive_file %s: %s", path, summary)
    return summary


# ---------------------------------------------------------------- enrichment


def fetch_images(interval_start, interval_end, params=None) -> dict[str, Any]:
    from smpp.images.fetch import count_reasons
    from smpp.images.fetch import fetch_images as fetch
    from smpp.images.gallery import expand_gallery_requests

    ctx = run_context(interval_start, interval_end, params)
    kept = storage.read_partition(ctx.settings, "filtered", ctx.day)
    # one row per (post, image); image_index 0 is the image the models use
    wanted = expand_gallery_requests(kept, ctx.settings.images.all_gallery_items)
    fetched = fetch(ctx.settings, wanted)
    fetched.insert(1, "image_index", wanted["image_index"].to_numpy())  # fetch keeps the request order
    ok = fetched[fetched["status"] == "ok"]
    # the same image under several posts is a repost: stored and processed once
    primary = (fetched["image_index"] == 0) & (fetched["status"] == "ok")
    fetched["duplicate_image"] = fetched["sha256"].where(primary).duplicated(keep="first") & primary
    path = storage.write_partition(ctx.settings, "images", ctx.day, fetched)
    requested_posts = int((wanted["image_index"] == 0).sum())
    return _finish(
        ctx,
        "fetch_images",
        {
            # per kept post, by the image the models use (the counts below are per image, gallery items too)
            "posts": {
                "kept": len(kept),
                "without_image_url": len(kept) - requested_posts,
                "status": count_reasons(fetched[fetched["image_index"] == 0]),
            },
            "requested": len(wanted),
            "extra_gallery_images": int((wanted["image_index"] > 0).sum()),
            "ok": len(ok),
            "unique_images": int(ok["sha256"].nunique()),
            "duplicate_images": int(fetched["duplicate_image"].sum()),
            "failures": {k: v for k, v in count_reasons(fetched).items() if k != "ok"},
            "partition": str(path),
        },
    )


def _ok_images(ctx: RunContext) -> pd.DataFrame:
    from smpp.encoders.stages import usable_images

    return usable_images(storage.read_partition(ctx.settings, "images", ctx.day))


def caption_images(interval_start, interval_end, params=None) -> dict[str, Any]:
    from smpp.encoders.stages import caption_posts

    ctx = run_context(interval_start, interval_end, params)
    captions = caption_posts(ctx.settings, _ok_images(ctx))
    path = storage.write_partition(
        ctx.settings,
        "captions",
        ctx.day,
        captions.frame,
        metadata={"caption_model_id": captions.model_id, "caption_revision": captions.revision},
    )
    counts = {
        "captioned": len(captions.frame),
        "cache_hits": captions.cache_hits,
        "cache_misses": captions.cache_misses,
    }
    return _finish(ctx, "caption_images", {**counts, "partition": str(path)})


# embedding task -> the partition it writes; each may run as mapped tasks over row chunks
EMBEDDING_STAGES = {
    "embed_text": "text_embeddings",
    "embed_images": "image_embeddings",
    "embed_image_text": "joint_embeddings",
}


def plan_embedding_chunks(interval_start, interval_end, task_name: str, params=None) -> list[int]:
    """Split one embedding stage's day into chunks of `encoders.chunk_size` rows (mapped tasks)."""
    import math

    ctx = run_context(interval_start, interval_end, params)
    size = ctx.settings.encoders.chunk_size
    if task_name == "embed_text":
        rows = len(storage.read_partition(ctx.settings, "filtered", ctx.day))
    else:
        rows = len(_ok_images(ctx))
    chunks = max(1, math.ceil(rows / size))  # an empty day still writes its (empty) partition
    storage.plan_chunks(ctx.settings, EMBEDDING_STAGES[task_name], ctx.day, chunks)
    _finish(ctx, f"plan_{task_name}", {"rows": rows, "chunk_size": size, "chunks": chunks})
    return list(range(chunks))


def _chunk(frame: pd.DataFrame, settings: Settings, chunk: int | None) -> pd.DataFrame:
    if chunk is None:
        return frame
    size = settings.encoders.chunk_size
    return frame.iloc[chunk * size : (chunk + 1) * size].reset_index(drop=True)


def _write_embeddings(ctx: RunContext, task_name: str, chunk: int | None, embeddings) -> dict[str, Any]:
    """Write one embedding stage's table (a day partition, or a mapped task's chunk) and its metrics."""
    stage = EMBEDDING_STAGES[task_name]
    table = embeddings.table()
    if chunk is None:
        path = storage.atomic_write_table(storage.partition_path(ctx.settings, stage, ctx.day), table)
    else:
        path = storage.write_chunk(ctx.settings, stage, ctx.day, chunk, table)
    name = task_name if chunk is None else f"{task_name}.chunk-{chunk:05d}"
    return _finish(ctx, name, {**embeddings.metrics(), "partition": str(path)})


def embed_text(interval_start, interval_end, params=None, chunk: int | None = None) -> dict[str, Any]:
    """bge-m3 dense vectors of titles and captions (one model call, cached by text)."""
    from smpp.encoders.stages import text_embeddings

    ctx = run_context(interval_start, interval_end, params)
    kept = _chunk(storage.read_partition(ctx.settings, "filtered", ctx.day), ctx.settings, chunk)
    captions = storage.read_partition(ctx.settings, "captions", ctx.day)
    return _write_embeddings(ctx, "embed_text", chunk, text_embeddings(ctx.settings, kept, captions))


def embed_images(interval_start, interval_end, params=None, chunk: int | None = None) -> dict[str, Any]:
    """timm ViT pooled image features."""
    from smpp.encoders.stages import image_embeddings

    ctx = run_context(interval_start, interval_end, params)
    images = _chunk(_ok_images(ctx), ctx.settings, chunk)
    return _write_embeddings(ctx, "embed_images", chunk, image_embeddings(ctx.settings, images))


def embed_image_text(interval_start, interval_end, params=None, chunk: int | None = None) -> dict[str, Any]:
    """Visualized BGE joint embedding of each image with its post title."""
    from smpp.encoders.stages import joint_embeddings

    ctx = run_context(interval_start, interval_end, params)
    images = _chunk(_ok_images(ctx), ctx.settings, chunk)
    kept = storage.read_partition(ctx.settings, "filtered", ctx.day)
    return _write_embeddings(ctx, "embed_image_text", chunk, joint_embeddings(ctx.settings, images, kept))


def merge_embedding_chunks(ctx: RunContext) -> None:
    """Merge mapped tasks' chunks into day partitions, and their counts into one metrics file."""
    from smpp.encoders.stages import summed_chunk_metrics

    folder = storage.run_metrics_path(ctx.settings, ctx.day, "x").parent
    for task_name, stage in EMBEDDING_STAGES.items():
        if not storage.merge_chunks(ctx.settings, stage, ctx.day):
            continue
        chunk_files = sorted(folder.glob(f"{task_name}.chunk-*.json"))
        total = summed_chunk_metrics(json.loads(path.read_text()) for path in chunk_files)
        for path in chunk_files:
            path.unlink()
        total["partition"] = str(storage.partition_path(ctx.settings, stage, ctx.day))
        _finish(ctx, task_name, total)


def _day_history(ctx: RunContext, kept: pd.DataFrame) -> pd.DataFrame:
    """The day's leak-free author/subreddit history columns, as point-in-time facts at the interval's end.

    An earlier post of the same day is history for a later one; history_columns reads the warehouse
    incrementally, so its cost follows the day's posts, not the length of the history.
    """
    from smpp.warehouse.history_store import history_columns

    posts = pd.DataFrame(
        {
            "author": kept["author"].astype(object).to_numpy() if len(kept) else [],
            "subreddit": kept["subreddit"].astype(object).to_numpy() if len(kept) else [],
            "created_utc": pd.to_numeric(kept["created_utc"]).astype("int64").to_numpy() if len(kept) else [],
        }
    )
    with _session(ctx.settings) as session:
        return history_columns(session, posts, ctx.end_utc, ctx.settings.label_age_hours)


def build_features(interval_start, interval_end, params=None) -> dict[str, Any]:
    """The day's feature table: kept posts + authors + images + embeddings + history, one validated assembly."""
    from smpp.encoders import model_info
    from smpp.features.schema import EMBEDDING_COLUMNS
    from smpp.features.table import build_feature_table, vectors_by_post
    from smpp.images.features import image_features_frame
    from smpp.images.gallery import primary_images
    from smpp.warehouse.authors import first_snapshots
    from smpp.warehouse.ingest import now_utc
    from smpp.warehouse.labels import day_label_status

    ctx = run_context(interval_start, interval_end, params)
    settings = ctx.settings
    merge_embedding_chunks(ctx)
    kept = storage.read_partition(settings, "filtered", ctx.day)
    images = primary_images(storage.read_partition(settings, "images", ctx.day))
    ok = images[images["status"] == "ok"] if not images.empty else images
    image_feats = image_features_frame(ok["path"].tolist() if not ok.empty else [])
    image_feats.insert(0, "post_id", ok["post_id"].tolist() if not ok.empty else [])
    post_ids = kept["id"].astype(str).tolist() if not kept.empty else []
    text_embeddings = storage.read_partition(settings, "text_embeddings", ctx.day)
    stored = {
        "title_emb": text_embeddings,
        "caption_emb": text_embeddings,
        "image_emb": storage.read_partition(settings, "image_embeddings", ctx.day),
        "joint_emb": storage.read_partition(settings, "joint_embeddings", ctx.day),
    }
    dims = {col: int(model_info(settings, role)["dim"]) for col, role in EMBEDDING_COLUMNS.items()}
    table = build_feature_table(
        kept,
        first_snapshots(settings, kept["author"].dropna().tolist()),
        day=ctx.day,
        history=_day_history(ctx, kept),
        dims=dims,
        embeddings={col: vectors_by_post(post_ids, frame, col) for col, frame in stored.items()},
        image_ok=ok["post_id"].tolist() if not ok.empty else [],
        image_features=image_feats,
    )
    meta = {f"{col}_dim": str(dim) for col, dim in dims.items()}
    meta.update({"model_profile": settings.model_profile})
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    path = storage.atomic_write_table(storage.partition_path(settings, "features", ctx.day), table)
    counted_at = now_utc()
    with _session(settings) as session:
        # the label status of each feature row's post as of now: the day's label coverage
        labels = day_label_status(session, settings, table.column("post_id").to_pylist(), counted_at)
    return _finish(
        ctx,
        "build_features",
        {
            "rows": table.num_rows,
            "with_image": int(sum(table.column("has_image").to_pylist())),
            "labels": labels,
            "labels_counted_at": datetime.fromtimestamp(counted_at, UTC).isoformat(),
            "dims": dims,
            "partition": str(path),
        },
    )


# ---------------------------------------------------------------- training


def train_model(interval_start, interval_end, params=None) -> dict[str, Any]:
    """Train from the window's feature partitions, streamed (memory stays flat as history grows)."""
    from smpp.lifecycle.retrain import train_day

    ctx = run_context(interval_start, interval_end, params)
    return _finish(ctx, "train_model", train_day(ctx.settings, ctx.day, ctx.start_utc, ctx.end_utc))


def evaluate_and_publish(interval_start, interval_end, version: str | None, params=None) -> dict[str, Any]:
    """Compare with the champion on the challenger's own test slice; promote only on a win."""
    from smpp.lifecycle.retrain import publish_day

    ctx = run_context(interval_start, interval_end, params)
    return _finish(ctx, "evaluate_and_publish", publish_day(ctx.settings, ctx.day, ctx.end_utc, version))


def score_with_champion(version: str, day: str) -> dict[str, Any]:
    """Score the day that produced a new champion with it (the smpp_score_champion DAG)."""
    from smpp.lifecycle.retrain import score_day_with

    return score_day_with(get_settings(), version, day)
