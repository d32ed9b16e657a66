"""Purge deleted/removed posts from every store (Reddit's terms require it).

The warehouse row is purged and tombstoned at ingestion; this removes the rest: the post's
rows in every day partition, its cached captions/embeddings, and its image file unless a
live post still uses the same image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from smpp import storage
from smpp.settings import Settings
from smpp.stages import POST_PARTITIONS

log = logging.getLogger(__name__)

ID_COLUMNS = ("post_id", "id")


@dataclass
class PurgeStats:
    posts: int = 0
    partition_rows: int = 0
    partitions_rewritten: int = 0
    image_files: int = 0
    cache_entries: int = 0
    days: list[str] = field(default_factory=list)


def _id_column(table: pa.Table) -> str | None:
    return next((c for c in ID_COLUMNS if c in table.column_names), None)


def _rows_of(table: pa.Table, ids: set[str]) -> pa.Table:
    column = _id_column(table)
    if column is None or table.num_rows == 0:
        return table.slice(0, 0)
    return table.filter(pc.is_in(table.column(column), value_set=pa.array(sorted(ids), pa.string())))


def _read(path: Path) -> pa.Table | None:
    return pq.read_table(path) if path.is_file() else None


def _content_keys(settings: Settings, day: str, ids: set[str]) -> set[str]:
    """Cache keys the purged posts may have left: title/caption texts, images, image+title pairs."""
    from smpp.encoders.cache import joint_key, text_key

    keys: set[str] = set()
    titles: dict[str, str] = {}
    for stage in ("posts", "filtered"):
        table = _read(storage.partition_path(settings, stage, day))
        if table is not None and "title" in table.column_names:
            rows = _rows_of(table, ids).to_pylist()
            titles.update({r["id"]: r["title"] for r in rows if r.get("title")})
    keys.update(text_key(t) for t in titles.values())
    captions = _read(storage.partition_path(settings, "captions", day))
    if captions is not None:
        keys.update(text_key(r["caption"]) for r in _rows_of(captions, ids).to_pylist() if r.get("caption"))
    images = _read(storage.partition_path(settings, "images", day))
    if images is not None:
        for row in _rows_of(images, ids).to_pylist():
            if row.get("sha256"):
                keys.add(row["sha256"])
                if row["post_id"] in titles:
                    keys.add(joint_key(row["sha256"], titles[row["post_id"]]))
    return keys


def _image_shas(settings: Settings, day: str, ids: set[str]) -> set[str]:
    images = _read(storage.partition_path(settings, "images", day))
    if images is None:
        return set()
    return {r["sha256"] for r in _rows_of(images, ids).to_pylist() if r.get("sha256")}


def _shas_still_used(settings: Settings, shas: set[str]) -> set[str]:
    used: set[str] = set()
    for day in storage.list_partition_days(settings, "images"):
        table = pq.read_table(storage.partition_path(settings, "images", day), columns=["sha256"])
        used.update(s for s in table.column("sha256").to_pylist() if s in shas)
    return used


def _rewrite_without(path: Path, ids: set[str]) -> int:
    table = _read(path)
    if table is None:
        return 0
    column = _id_column(table)
    if column is None:
        return 0
    keep = pc.invert(pc.is_in(table.column(column), value_set=pa.array(sorted(ids), pa.string())))
    kept = table.filter(keep)
    dropped = table.num_rows - kept.num_rows
    if dropped:
        storage.atomic_write_table(path, kept)  # schema and its metadata are kept
    return dropped


def purge_posts(settings: Settings, created_by_id: dict[str, int]) -> PurgeStats:
    """Remove these posts (id -> created_utc) from partitions, caches and the image store."""
    from smpp.encoders.cache import purge_keys

    stats = PurgeStats(posts=len(created_by_id))
    by_day: dict[str, set[str]] = {}
    for post_id, created in created_by_id.items():
        day = datetime.fromtimestamp(created, UTC).date().isoformat()
        by_day.setdefault(day, set()).add(post_id)
    cache_keys: set[str] = set()
    shas: set[str] = set()
    for day, ids in sorted(by_day.items()):
        cache_keys |= _content_keys(settings, day, ids)
        shas |= _image_shas(settings, day, ids)
        for stage in POST_PARTITIONS:  # the images partition also maps posts to files
            dropped = _rewrite_without(storage.partition_path(settings, stage, day), ids)
            stats.partition_rows += dropped
            stats.partitions_rewritten += bool(dropped)
        stats.days.append(day)
    stats.cache_entries = purge_keys(settings.cache_dir, cache_keys)
    for sha in shas - _shas_still_used(settings, shas):
        for path in settings.images_dir.glob(f"{sha[:2]}/{sha}.*"):
            path.unlink(missing_ok=True)
            stats.image_files += 1
    log.info("purged %d removed posts: %s", stats.posts, stats)
    return stats


def purge_ids(settings: Settings, ids: Iterable[str]) -> PurgeStats:
    """Look up the posts' creation times in the warehouse, then purge them."""
    from sqlalchemy import select

    from smpp.warehouse import Post, session_for

    ids = list(ids)
    with session_for(settings.database_url) as session:
        created = dict(session.execute(select(Post.id, Post.created_utc).where(Post.id.in_(ids))).all())
    return purge_posts(settings, created)
