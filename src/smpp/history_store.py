"""History rows from the warehouse for the leak-free author/subreddit features (smpp.author_history).

`build_features` stores the history columns in each day's feature partition as point-in-time facts,
computed from these rows; `smpp predict` can compute the same columns for new posts from them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

HISTORY_ROW_COLUMNS = ["post_id", "author", "subreddit", "created_utc", "label", "label_matured_utc"]
IN_CHUNK = 500  # names per IN (...) list: well under every database's bound-parameter limit
BATCH_ROWS = 50_000  # history rows fetched at a time


def in_chunks(values: list[str], size: int = IN_CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def warehouse_history(
    session: Session, authors: Iterable[str | None], subreddits: Iterable[str | None], until_utc: int
) -> pd.DataFrame:
    """Every post created before `until_utc` in the given subreddits and in those the given authors
    posted in (so all of the authors' own posts too).

    The authors' other subreddits come whole because author_prior_rel_label judges each of their
    posts against its own subreddit's level at the time: from only the authors' posts there, that
    level was wrong (on the dev dump, 412 of 6,331 posts' values differed from the whole warehouse's).

    Columns HISTORY_ROW_COLUMNS: `label` is log1p(max(score, 0)) of a trainable label (NaN for posts
    without one, which still count as posts), `label_matured_utc` when it matured (float, NaN without). Removed posts are
    left out, as in training. Which labels are visible when is author_history's job (matured at or
    before a post's creation), so labels maturing after `until_utc` do no harm.
    """
    from smpp.labels import TRAINABLE_STATUSES, label_of_score
    from smpp.warehouse import Label, Post
    from smpp.warehouse.db import stream_tuples

    kept = and_(Post.created_utc < int(until_utc), Post.removed.is_(False))  # removed is NOT NULL
    author_names = sorted({a for a in authors if isinstance(a, str) and a})
    subreddit_names = {s for s in subreddits if isinstance(s, str) and s}
    for chunk in in_chunks(author_names, IN_CHUNK):
        their_subreddits = select(Post.subreddit).distinct().where(kept, Post.author.in_(chunk))
        subreddit_names.update(session.scalars(their_subreddits))
    query = (
        select(Post.id, Post.author, Post.subreddit, Post.created_utc, Label.score, Label.matured_utc)
        .outerjoin(Label, and_(Label.post_id == Post.id, Label.status.in_(TRAINABLE_STATUSES)))
        .where(kept)
    )
    # A big subreddit's whole history comes back: rows stream into per-batch frames instead of
    # all being Python objects at once (benchmarks/history_features.py: 1M rows took 3.9 s and
    # a 0.82 GB peak RSS, now 2.4 s and 0.32 GB).
    batches = []
    for chunk in in_chunks(sorted(subreddit_names), IN_CHUNK):
        for rows in stream_tuples(session, query.where(Post.subreddit.in_(chunk)), BATCH_ROWS):
            batches.append(_batch_frame(rows))
    frame = pd.concat(batches, ignore_index=True) if batches else _batch_frame([])
    frame["label"] = label_of_score(frame.pop("score"))
    # sorted by Arrow: sort_values made a Python string per post_id (+0.12 GB at 1M rows)
    keys = pa.table({"created_utc": frame["created_utc"].to_numpy(),
                     "post_id": pa.array(frame["post_id"], pa.string())})
    order = pc.sort_indices(keys, sort_keys=[("created_utc", "ascending"), ("post_id", "ascending")])
    return frame[HISTORY_ROW_COLUMNS].take(order.to_numpy()).reset_index(drop=True)


def _batch_frame(rows: list[tuple]) -> pd.DataFrame:
    """(id, author, subreddit, created, score, matured) rows with fixed dtypes, so batches concatenate
    as they are (a batch of only missing authors would otherwise turn the column into objects)."""
    frame = pd.DataFrame(rows, columns=["post_id", "author", "subreddit", "created_utc", "score", "label_matured_utc"])
    for column in ("post_id", "author", "subreddit"):
        frame[column] = frame[column].astype("str")  # missing stays missing
    frame["created_utc"] = pd.to_numeric(frame["created_utc"]).astype("int64")
    for column in ("score", "label_matured_utc"):  # NaN: no trainable label
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def history_columns(
    session: Session, posts: pd.DataFrame, until_utc: int, label_age_hours: float
) -> pd.DataFrame:
    """author_history.HISTORY_COLUMNS for `posts` (author, subreddit, created_utc; same index) from the warehouse."""
    from smpp.author_history import history_features

    if posts.empty:
        return history_features(posts, label_age_hours=label_age_hours)
    history = warehouse_history(session, posts["author"].tolist(), posts["subreddit"].tolist(), until_utc)
    return history_features(posts, history, label_age_hours=label_age_hours)
