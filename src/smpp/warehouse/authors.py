"""Author facts (account creation time, link and comment karma) for posting-time features.

Shared by the pipeline (build_features: the warehouse's first snapshot of each author) and
`smpp predict` (which may also fetch an author's karma from Reddit now).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from smpp.settings import Settings
from smpp.warehouse.db import in_chunks

AUTHOR_COLUMNS = ["name", "created_utc", "link_karma", "comment_karma"]


def warehouse_exists(settings: Settings) -> bool:
    """False for a SQLite warehouse file that is not there (opening it would create an empty one)."""
    url = settings.database_url or ""
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file()


def first_snapshots(settings: Settings, names: Iterable[str | None]) -> pd.DataFrame:
    """Each author's first snapshot: what was known when we first saw them, never later karma.

    Columns AUTHOR_COLUMNS, one row per author the warehouse knows; karma is NaN for an
    author without a snapshot.
    """
    from smpp.warehouse import Author, AuthorSnapshot, session_for

    names = sorted({n for n in names if n})
    if not names:
        return pd.DataFrame(columns=AUTHOR_COLUMNS)
    rows = []
    with session_for(settings.database_url) as session:
        for chunk in in_chunks(names):  # one IN list over SQLite's bound-parameter limit fails
            rows += session.execute(
                select(
                    Author.name,
                    Author.created_utc,
                    AuthorSnapshot.link_karma,
                    AuthorSnapshot.comment_karma,
                    AuthorSnapshot.observed_at,
                )
                .outerjoin(AuthorSnapshot, AuthorSnapshot.name == Author.name)
                .where(Author.name.in_(chunk))
                .order_by(Author.name, AuthorSnapshot.observed_at)
            ).all()
    frame = pd.DataFrame(rows, columns=[*AUTHOR_COLUMNS, "observed_at"]).drop_duplicates("name", keep="first")
    return frame[AUTHOR_COLUMNS].reset_index(drop=True)


def warehouse_authors(settings: Settings, names: Iterable[str | None]) -> pd.DataFrame:
    """first_snapshots, or an empty frame when there is no warehouse (nothing is created)."""
    names = list(names)
    if not any(names) or not warehouse_exists(settings):
        return pd.DataFrame(columns=AUTHOR_COLUMNS)
    return first_snapshots(settings, names)


def known_fullnames(settings: Settings, names: Iterable[str | None]) -> dict[str, str]:
    """name -> t2_ fullname for the authors the warehouse has a fullname for (authors or posts)."""
    from smpp.warehouse import Author, Post, session_for

    names = sorted({n for n in names if n})
    if not names or not warehouse_exists(settings):
        return {}
    found: dict[str, str] = {}
    with session_for(settings.database_url) as session:
        for chunk in in_chunks(names):  # one IN list over SQLite's bound-parameter limit fails
            found.update(
                session.execute(
                    select(Post.author, Post.author_fullname).where(
                        Post.author.in_(chunk), Post.author_fullname.is_not(None)
                    )
                ).all()
            )
            found.update(
                session.execute(
                    select(Author.name, Author.fullname).where(Author.name.in_(chunk), Author.fullname.is_not(None))
                ).all()
            )
    return found


def fetch_current(settings: Settings, fullnames: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """Authors' karma and account age from Reddit now, through the pipeline's PRAW author code.

    100 authors per request, under the pipeline's pacing and 429 retries. Returns
    (frame with AUTHOR_COLUMNS plus "fullname", fullnames Reddit did not return). Raises
    RedditConfigError without credentials and prawcore's TooManyRequests once retries are spent.
    """
    from smpp.sources.reddit import BatchReport, fetch_authors, make_reddit

    wanted = sorted({f for f in fullnames if f})
    columns = [*AUTHOR_COLUMNS, "fullname"]
    if not wanted:
        return pd.DataFrame(columns=columns), []
    reddit = make_reddit(settings)
    report = BatchReport()
    records = fetch_authors(reddit, wanted, max_429_retries=settings.reddit.max_429_retries, report=report)
    frame = pd.DataFrame(
        [(r.name, r.created_utc, r.link_karma, r.comment_karma, r.fullname) for r in records], columns=columns
    )
    returned = set(frame["fullname"])
    return frame, [f for f in wanted if f not in returned]
