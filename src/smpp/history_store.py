"""History rows from the warehouse for the leak-free author/subreddit features (smpp.author_history).

`build_features` stores the history columns in each day's feature partition as point-in-time facts,
computed from these rows; `smpp predict` can compute the same columns for new posts from them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

HISTORY_ROW_COLUMNS = ["post_id", "author", "subreddit", "created_utc", "label", "label_matured_utc"]
IN_CHUNK = 500  # names per IN (...) list: well under every database's bound-parameter limit


def in_chunks(values: list[str], size: int = IN_CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def warehouse_history(
    session: Session, authors: Iterable[str | None], subreddits: Iterable[str | None], until_utc: int
) -> pd.DataFrame:
    """Posts created before `until_utc` sharing an author or a subreddit with the given ones.

    Columns HISTORY_ROW_COLUMNS: `label` is log1p(max(score, 0)) of a trainable label (NaN for posts
    without one, which still count as posts), `label_matured_utc` when it matured. Removed posts are
    left out, as in training. Which labels are visible when is author_history's job (matured at or
    before a post's creation), so labels maturing after `until_utc` do no harm.
    """
    from smpp.labels import TRAINABLE_STATUSES
    from smpp.warehouse import Label, Post

    names = {
        Post.author: sorted({a for a in authors if isinstance(a, str) and a}),
        Post.subreddit: sorted({s for s in subreddits if isinstance(s, str) and s}),
    }
    query = (
        select(Post.id, Post.author, Post.subreddit, Post.created_utc, Label.score, Label.matured_utc)
        .outerjoin(Label, and_(Label.post_id == Post.id, Label.status.in_(TRAINABLE_STATUSES)))
        .where(Post.created_utc < int(until_utc), or_(Post.removed.is_(False), Post.removed.is_(None)))
    )
    rows: dict[str, tuple] = {}
    for column, values in names.items():
        for chunk in in_chunks(values):
            for row in session.execute(query.where(column.in_(chunk))):
                rows[row[0]] = tuple(row)
    frame = pd.DataFrame(
        list(rows.values()), columns=["post_id", "author", "subreddit", "created_utc", "score", "label_matured_utc"]
    )
    score = pd.to_numeric(frame["score"], errors="coerce").to_numpy(float)
    frame["label"] = np.where(np.isfinite(score), np.log1p(np.clip(score, 0, None)), np.nan).astype(np.float32)
    frame["created_utc"] = pd.to_numeric(frame["created_utc"]).astype("int64")
    frame["label_matured_utc"] = pd.to_numeric(frame["label_matured_utc"], errors="coerce")
    frame = frame[HISTORY_ROW_COLUMNS]
    return frame.sort_values(["created_utc", "post_id"], kind="stable").reset_index(drop=True)


def history_columns(
    session: Session, posts: pd.DataFrame, until_utc: int, label_age_hours: float
) -> pd.DataFrame:
    """author_history.HISTORY_COLUMNS for `posts` (author, subreddit, created_utc; same index) from the warehouse."""
    from smpp.author_history import history_features

    if posts.empty:
        return history_features(posts, label_age_hours=label_age_hours)
    history = warehouse_history(session, posts["author"].tolist(), posts["subreddit"].tolist(), until_utc)
    return history_features(posts, history, label_age_hours=label_age_hours)
