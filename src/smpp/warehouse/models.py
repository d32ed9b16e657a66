"""Warehouse tables: posts, their snapshots, authors, labels and tombstones."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Post(Base):
    """Posting-time facts, recorded when first seen (later sightings never overwrite them)."""

    __tablename__ = "posts"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    subreddit: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str | None] = mapped_column(Text)  # None once purged (deleted posts)
    author: Mapped[str | None] = mapped_column(String(64), index=True)
    author_fullname: Mapped[str | None] = mapped_column(String(32))
    created_utc: Mapped[int] = mapped_column(BigInteger, index=True)
    url: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(255))
    permalink: Mapped[str | None] = mapped_column(Text)
    is_self: Mapped[bool] = mapped_column(Boolean, default=False)
    over_18: Mapped[bool] = mapped_column(Boolean, default=False)
    is_gallery: Mapped[bool] = mapped_column(Boolean, default=False)
    post_hint: Mapped[str | None] = mapped_column(String(32))
    preview_url: Mapped[str | None] = mapped_column(Text)
    gallery_urls: Mapped[list] = mapped_column(JSON, default=list)
    flair_text: Mapped[str | None] = mapped_column(Text)
    subreddit_subscribers: Mapped[int | None] = mapped_column(BigInteger)
    selftext_len: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[int] = mapped_column(BigInteger)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


class PostSnapshot(Base):
    """The post's outcome counters as observed at one moment (`age_hours` after creation)."""

    __tablename__ = "post_snapshots"
    post_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    observed_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    num_comments: Mapped[int] = mapped_column(Integer)
    upvote_ratio: Mapped[float | None] = mapped_column(Float)
    age_hours: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))


class Author(Base):
    __tablename__ = "authors"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fullname: Mapped[str | None] = mapped_column(String(32))
    created_utc: Mapped[int | None] = mapped_column(BigInteger)
    first_seen_at: Mapped[int] = mapped_column(BigInteger)


class AuthorSnapshot(Base):
    """Karma as seen at one moment; features use only the snapshot at or before posting."""

    __tablename__ = "author_snapshots"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    observed_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    link_karma: Mapped[int | None] = mapped_column(BigInteger)
    comment_karma: Mapped[int | None] = mapped_column(BigInteger)


class Label(Base):
    """Score at the fixed label age. status: ok | late | archive (score as archived)."""

    __tablename__ = "labels"
    post_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    age_hours: Mapped[float | None] = mapped_column(Float)  # None: "at archive time"
    label_age_hours: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[int | None] = mapped_column(BigInteger)
    matured_utc: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16))
    # the post's subreddit, filled by a trigger (warehouse/history_schema.py), so "the last 100
    # labels of r/x matured before t" is an index range, not a join over the subreddit's history
    subreddit: Mapped[str | None] = mapped_column(String(64))


class SubredditDay(Base):
    """Kept (not removed) posts per subreddit and UTC day (created_utc // 86400), kept by triggers:
    a subreddit's post count before a day is a sum over days, not a count over its posts."""

    __tablename__ = "subreddit_days"
    subreddit: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    posts: Mapped[int] = mapped_column(BigInteger)


class PostLevel(Base):
    """Cache of what the author history features need of one post: its trainable label (None:
    none), when it matured, and its subreddit's recent label level when it was created (None: no
    label before it), so an author's features need only the author's own posts. Written by
    history_store when first needed; triggers delete the rows of a subreddit's posts created at or
    after a changed post or label (the only ones it can change), so a row is never stale."""

    __tablename__ = "post_levels"
    # SQLite: rows stored in the primary key's b-tree, one lookup per post
    __table_args__ = {"sqlite_with_rowid": False}
    post_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    subreddit: Mapped[str] = mapped_column(String(64))
    created_utc: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[float | None] = mapped_column(Float(precision=53))
    matured_utc: Mapped[int | None] = mapped_column(BigInteger)
    level: Mapped[float | None] = mapped_column(Float(precision=53))


class Tombstone(Base):
    """Ids of deleted/removed posts: purged everywhere and never re-ingested."""

    __tablename__ = "tombstones"
    post_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[int] = mapped_column(BigInteger)


Index("ix_snapshots_post", PostSnapshot.post_id)
# history features (history_store): bounded range reads per subreddit / author
# covering: the count and author queries never read the (wide) post rows
Index("ix_posts_subreddit_history", Post.subreddit, Post.created_utc, Post.removed)
Index("ix_posts_author_history", Post.author, Post.created_utc, Post.removed, Post.subreddit, Post.id)
Index("ix_labels_subreddit_matured", Label.subreddit, Label.matured_utc)
Index("ix_post_levels_subreddit_created", PostLevel.subreddit, PostLevel.created_utc)
