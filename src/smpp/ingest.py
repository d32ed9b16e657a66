"""Store what sources yield: posts (first sight wins), snapshots, authors, archive labels."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from smpp.settings import Settings
from smpp.sources.records import AuthorRecord, PostRecord
from smpp.warehouse import Author, AuthorSnapshot, Label, Post, PostSnapshot, Tombstone, upsert

log = logging.getLogger(__name__)

IN_CHUNK = 500  # ids per IN (...) query: SQLite caps bound parameters per statement


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


def _post_row(record: PostRecord, first_seen_at: int) -> dict:
    return {
        "id": record.id,
        "subreddit": record.subreddit,
        "title": record.title,
        "author": record.author,
        "author_fullname": record.author_fullname,
        "created_utc": record.created_utc,
        "url": record.url,
        "domain": record.domain,
        "permalink": record.permalink,
        "is_self": record.is_self,
        "over_18": record.over_18,
        "is_gallery": record.is_gallery,
        "post_hint": record.post_hint,
        "preview_url": record.preview_url,
        "gallery_urls": list(record.gallery_urls),
        "flair_text": record.flair_text,
        "subreddit_subscribers": record.subreddit_subscribers,
        "selftext_len": record.selftext_len,
        "source": record.source,
        "first_seen_at": first_seen_at,
        "removed": record.removed,
    }


def tombstoned_ids(session: Session, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    found: set[str] = set()
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        # Core, not ORM: one lookup per day of a backfill, where ORM overhead was most of its cost
        found.update(session.connection().execute(select(Tombstone.post_id).where(Tombstone.post_id.in_(chunk))).scalars())
    return found


def stored_post_ids(session: Session, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        found.update(session.connection().execute(select(Post.id).where(Post.id.in_(chunk))).scalars())
    return found


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
    records = list(records)
    stats = IngestStats(seen=len(records))
    ids = [r.id for r in records]
    dead = tombstoned_ids(session, ids)
    existing = stored_post_ids(session, ids)
    posts, snapshots, labels, removed = [], [], [], []
    for record in records:
        if record.id in dead:
            stats.tombstoned_skipped += 1
            continue
        if record.removed:
            removed.append(record)
            continue
        posts.append(_post_row(record, record.observed_at or now))
        stats.post_ids.append(record.id)
        if record.id not in existing:
            stats.new_posts += 1
        if record.observed_at is not None and not (first_sight_only and record.id in existing):
            snapshots.append(
                {
                    "post_id": record.id,
                    "observed_at": record.observed_at,
                    "score": record.score,
                    "num_comments": record.num_comments,
                    "upvote_ratio": record.upvote_ratio,
                    "age_hours": (record.observed_at - record.created_utc) / 3600.0,
                    "source": record.source,
                }
            )
        if record.source == "archive":
            labels.append(archive_label(record, settings.label_age_hours))
    # first sight wins for posting-time facts, so a later sighting never rewrites them
    upsert(session, Post, posts)
    stats.snapshots = upsert(session, PostSnapshot, snapshots)
    # the archive is the best knowledge we have of a historical score: keep the latest dump's
    stats.archive_labels = upsert(
        session, Label, labels, update=["score", "age_hours", "observed_at", "status"]
    )
    stats.removed_ids = mark_removed(session, removed, now)
    stats.newly_removed = len(stats.removed_ids)
    session.commit()
    return stats


def archive_label(record: PostRecord, label_age_hours: float) -> dict:
    age = (record.observed_at - record.created_utc) / 3600.0 if record.observed_at else None
    return {
        "post_id": record.id,
        "score": record.score,
        "age_hours": age,  # None = "at archive time", age unknown
        "label_age_hours": label_age_hours,
        "observed_at": record.observed_at,
        # when the fixed-age label would have been known: what a backfilled day may use
        "matured_utc": record.created_utc + int(label_age_hours * 3600),
        "status": "archive",
    }


def mark_removed(session: Session, records: Iterable[PostRecord], now: int) -> list[str]:
    """Tombstone removed/deleted posts and purge their warehouse content; returns stored ids hit.

    The post's partitions, caches and image are purged by smpp.purge (outside the warehouse).
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
