"""Store what sources yield: posts (first sight wins), snapshots, authors, archive labels."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from smpp.progress import Progress
from smpp.settings import Settings
from smpp.sources.records import AuthorRecord, PostRecord
from smpp.warehouse import Author, AuthorSnapshot, Label, Post, PostSnapshot, Tombstone, upsert
from smpp.warehouse.db import IN_CHUNK, existing_keys, insert_rows

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    seen: int = 0
    new_posts: int = 0
    snapshots: int = 0
    archive_labels: int = 0
    tombstoned_skipped: int = 0
    newly_removed: int = 0
    post_ids: list[str] = field(default_factory=list)
    removed_ids: list[str] = field(default_factory=list)  # stored posts now removed: purge them

    def as_metrics(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def now_utc() -> int:
    return int(time.time())


# Column order of the tuples ingest_posts writes (warehouse.insert_rows): tuples, not dicts,
# because archive backfills write ~2 rows per post and per-row dict handling dominated.
POST_COLUMNS = (
    "id",
    "subreddit",
    "title",
    "author",
    "author_fullname",
    "created_utc",
    "url",
    "domain",
    "permalink",
    "is_self",
    "over_18",
    "is_gallery",
    "post_hint",
    "preview_url",
    "gallery_urls",
    "flair_text",
    "subreddit_subscribers",
    "selftext_len",
    "source",
    "first_seen_at",
    "removed",
)
SNAPSHOT_COLUMNS = ("post_id", "observed_at", "score", "num_comments", "upvote_ratio", "age_hours", "source")
LABEL_COLUMNS = ("post_id", "score", "age_hours", "label_age_hours", "observed_at", "matured_utc", "status")
# the archive is the best knowledge we have of a historical score: keep the latest dump's
ARCHIVE_LABEL_UPDATE = ("score", "age_hours", "observed_at", "status")
INGEST_BATCH = 50_000  # rows per executemany: a progress line between batches, one transaction for all


def _post_row(record: PostRecord, first_seen_at: int) -> tuple:
    return (
        record.id,
        record.subreddit,
        record.title,
        record.author,
        record.author_fullname,
        record.created_utc,
        record.url,
        record.domain,
        record.permalink,
        record.is_self,
        record.over_18,
        record.is_gallery,
        record.post_hint,
        record.preview_url,
        list(record.gallery_urls),
        record.flair_text,
        record.subreddit_subscribers,
        record.selftext_len,
        record.source,
        first_seen_at,
        record.removed,
    )


def tombstoned_ids(session: Session, ids: Iterable[str]) -> set[str]:
    return existing_keys(session, Tombstone.__table__.c.post_id, ids)


def stored_post_ids(session: Session, ids: Iterable[str]) -> set[str]:
    return existing_keys(session, Post.__table__.c.id, ids)


def ingest_posts(
    session: Session,
    settings: Settings,
    records: Iterable[PostRecord],
    now: int | None = None,
    *,
    first_sight_only: bool = False,
) -> IngestStats:
    """Upsert posts and their snapshots. Re-ingesting the same records changes nothing.

    first_sight_only: snapshot only posts not stored yet (a re-scraped day adds no rows;
    later observations are the refresh stage's job).
    """
    now = now if now is not None else now_utc()
    reading = Progress("ingest: reading posts", None, unit="posts", every_s=settings.progress_every_s)
    records = [reading.counted(r, 1) for r in records]  # an archive day reads its index here
    reading.finish()
    stats = IngestStats(seen=len(records))
    ids = [r.id for r in records]
    dead = tombstoned_ids(session, ids)
    existing = stored_post_ids(session, ids)
    label_age_hours = settings.label_age_hours
    label_age_seconds = int(label_age_hours * 3600)
    posts, snapshots, labels, removed = [], [], [], []
    for record in records:
        post_id = record.id
        if post_id in dead:
            stats.tombstoned_skipped += 1
            continue
        if record.removed:
            removed.append(record)
            continue
        observed_at = record.observed_at
        posts.append(_post_row(record, observed_at or now))
        stats.post_ids.append(post_id)
        if post_id not in existing:
            stats.new_posts += 1
        if observed_at is not None and not (first_sight_only and post_id in existing):
            snapshots.append(
                (
                    post_id,
                    observed_at,
                    record.score,
                    record.num_comments,
                    record.upvote_ratio,
                    (observed_at - record.created_utc) / 3600.0,
                    record.source,
                )
            )
        if record.source == "archive":
            labels.append(archive_label_row(record, label_age_hours, label_age_seconds))
    writing = Progress(
        "ingest: writing posts, snapshots and labels",
        len(posts) + len(snapshots) + len(labels),
        unit="rows",
        every_s=settings.progress_every_s,
    )
    # first sight wins for posting-time facts, so a later sighting never rewrites them
    _insert_batches(session, Post, POST_COLUMNS, posts, writing)
    stats.snapshots = _insert_batches(session, PostSnapshot, SNAPSHOT_COLUMNS, snapshots, writing)
    stats.archive_labels = _insert_batches(session, Label, LABEL_COLUMNS, labels, writing, update=ARCHIVE_LABEL_UPDATE)
    writing.finish()
    stats.removed_ids = mark_removed(session, removed, now)
    stats.newly_removed = len(stats.removed_ids)
    session.commit()
    return stats


def _insert_batches(
    session: Session,
    model: type,
    columns: tuple[str, ...] | list[str],
    rows: list[tuple],
    progress: Progress,
    update: Iterable[str] | None = None,
) -> int:
    """insert_rows in batches of INGEST_BATCH, in the caller's one transaction: same rows, and a
    progress line between batches (a backfilled day of every subreddit writes millions of rows)."""
    written = 0
    for start in range(0, len(rows), INGEST_BATCH):
        written += progress.counted(
            insert_rows(session, model, columns, rows[start : start + INGEST_BATCH], update=update),
            len(rows[start : start + INGEST_BATCH]),
        )
    return written


def archive_label_row(record: PostRecord, label_age_hours: float, label_age_seconds: int) -> tuple:
    observed_at = record.observed_at
    return (
        record.id,
        record.score,
        (observed_at - record.created_utc) / 3600.0 if observed_at else None,  # None = "at archive time"
        label_age_hours,
        observed_at,
        # when the fixed-age label would have been known: what a backfilled day may use
        record.created_utc + label_age_seconds,
        "archive",
    )


def mark_removed(session: Session, records: Iterable[PostRecord], now: int) -> list[str]:
    """Tombstone removed/deleted posts and purge their warehouse content; returns stored ids hit.

    The post's partitions, caches and image are purged by smpp.warehouse.purge (outside the warehouse).
    """
    records = list(records)
    tombstones = [
        {
            "post_id": r.id,
            "reason": "deleted" if r.title == "[deleted]" or r.author is None else "removed",
            "recorded_at": now,
        }
        for r in records
    ]
    upsert(session, Tombstone, tombstones)  # the first reason recorded stays
    ids = list(dict.fromkeys(r.id for r in records))
    purged: list[str] = []
    # batched per IN_CHUNK ids: dumps hold many removed posts, one round trip each was slow
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        stored = {p.id: p for p in session.scalars(select(Post).where(Post.id.in_(chunk)))}
        for post_id in chunk:
            post = stored.get(post_id)
            if post is not None and not post.removed:
                post.removed = True
                post.title = None
                post.url = None
                post.preview_url = None
                post.gallery_urls = []
                purged.append(post_id)
        session.query(Label).filter(Label.post_id.in_(chunk)).delete()
    return purged


def ingest_authors(session: Session, authors: Iterable[AuthorRecord]) -> int:
    authors = list(authors)
    upsert(
        session,
        Author,
        [
            {
                "name": a.name,
                "fullname": a.fullname,
                "created_utc": a.created_utc,
                "first_seen_at": a.observed_at,
            }
            for a in authors
        ],
    )
    n = upsert(
        session,
        AuthorSnapshot,
        [
            {
                "name": a.name,
                "observed_at": a.observed_at,
                "link_karma": a.link_karma,
                "comment_karma": a.comment_karma,
            }
            for a in authors
        ],
    )
    session.commit()
    return n


def unknown_author_fullnames(session: Session, post_ids: Iterable[str]) -> list[str]:
    """Authors of these posts never snapshotted yet (karma is recorded at first sight only)."""
    post_ids = list(post_ids)
    if not post_ids:
        return []
    rows = session.execute(
        select(Post.author, Post.author_fullname)
        .where(Post.id.in_(post_ids))
        .where(Post.author.is_not(None))
        .where(Post.author_fullname.is_not(None))
    ).all()
    known = set(session.scalars(select(Author.name).where(Author.name.in_([r[0] for r in rows]))))
    return sorted({fullname for name, fullname in rows if name not in known})
