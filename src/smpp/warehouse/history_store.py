"""History rows from the warehouse for the leak-free author/subreddit features (smpp.features.author_history).

`build_features` stores the history columns in each day's feature partition as point-in-time facts,
computed from these rows; `smpp predict` can compute the same columns for new posts from them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import and_, func, select, text
from sqlalchemy.orm import Session

from smpp.features.author_history import (
    CONTEXT_WINDOWS_S,
    HISTORY_COLUMNS,
    RECENT_LABELS,
    SUBREDDIT_HISTORY_COLUMNS,
    author_features,
    history_features,
    query_times,
    recent_level,
)
from smpp.warehouse import Label, Post, PostLevel, SubredditDay
from smpp.warehouse.db import in_chunks, stream_tuples, upsert
from smpp.warehouse.history_schema import ensure_history_schema
from smpp.warehouse.labels import TRAINABLE_STATUSES, label_of_score

HISTORY_ROW_COLUMNS = ["post_id", "author", "subreddit", "created_utc", "label", "label_matured_utc"]
IN_CHUNK = 500  # names per IN (...) list: well under every database's bound-parameter limit
BATCH_ROWS = 50_000  # history rows fetched at a time


def warehouse_history(
    session: Session, authors: Iterable[str | None], subreddits: Iterable[str | None], until_utc: int
) -> pd.DataFrame:
    """Every post created before `until_utc` in the given subreddits and in those the given authors
    posted in (so all of the authors' own posts too).

    The authors' other subreddits come whole because author_prior_rel_label judges each of their
    posts against its own subreddit's level at the time: from only the authors' posts there, that
    level was wrong (on the dev dump, 412 of 6,331 posts' values differed from the whole warehouse's).

    Columns HISTORY_ROW_COLUMNS: `label` is log1p(max(score, 0)) of a trainable label (NaN for posts
    without one, which still count as posts), `label_matured_utc` when it matured (float, NaN without).
    Removed posts are left out, as in training. Which labels are visible when is author_history's job (matured at or
    before a post's creation), so labels maturing after `until_utc` do no harm.
    """

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
    # A big subreddit's whole history comes back: stream it into per-batch frames, so it is never
    # all Python objects at once (numbers: benchmarks/README.md, history_features.py).
    batches = []
    for chunk in in_chunks(sorted(subreddit_names), IN_CHUNK):
        for rows in stream_tuples(session, query.where(Post.subreddit.in_(chunk)), BATCH_ROWS):
            batches.append(_batch_frame(rows))
    frame = pd.concat(batches, ignore_index=True) if batches else _batch_frame([])
    frame["label"] = label_of_score(frame.pop("score"))
    # sorted by Arrow: sort_values made a Python string per post_id (+0.12 GB at 1M rows)
    keys = pa.table(
        {"created_utc": frame["created_utc"].to_numpy(), "post_id": pa.array(frame["post_id"], pa.string())}
    )
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


def history_columns(session: Session, posts: pd.DataFrame, until_utc: int, label_age_hours: float) -> pd.DataFrame:
    """author_history.HISTORY_COLUMNS for `posts` (author, subreddit, created_utc; same index) from the
    warehouse's posts created before `until_utc`: equal to history_features over warehouse_history,
    at a cost that grows with the posts and their authors' own posts, not with the subreddits' history.

    - subreddit counts: per-day counts (subreddit_days) summed up to the day of the posts, plus
      the posts of that day range (and of the same range 30 days earlier);
    - subreddit level: the last RECENT_LABELS labels before that range (one LIMIT query) plus
      the labels maturing within it;
    - author columns: the authors' own posts, each with its subreddit level when it was created
      (post_levels, computed and stored the first time it is needed; triggers drop stale ones).

    Assumes labels mature after their post was created (labels.py and ingest write created +
    label age); author_history's guard for bad stamps is not replayed in the bounded queries.
    """

    if posts.empty:
        return history_features(posts, label_age_hours=label_age_hours)
    ensure_history_schema(session.get_bind())
    until = int(until_utc)
    q_time = query_times(posts)
    out = pd.DataFrame(index=posts.index, columns=HISTORY_COLUMNS, dtype=np.float64)
    # a post without a subreddit: no earlier posts and no level (as in history_features)
    sub = pd.DataFrame({"prior": 0.0, "recent_30": 0.0, "level": np.nan}, index=range(len(posts)))
    context = pd.DataFrame(
        {**dict.fromkeys(CONTEXT_WINDOWS_S, 0.0), "subreddit_gap_prev_log": np.nan}, index=range(len(posts))
    )
    names = posts["subreddit"].astype("str")
    for name, rows in pd.Series(np.arange(len(posts))).groupby(names.to_numpy(), sort=True):
        at = rows.to_numpy()
        times = q_time[at]
        prior = _posts_before(session, name, np.minimum(times, until))
        earlier = _posts_before(session, name, np.minimum(times - 30 * 86400, until))
        sub.loc[at, "prior"] = np.log1p(prior)
        sub.loc[at, "recent_30"] = np.log1p(np.maximum(prior - earlier, 0))
        for column, values in _recent_activity(session, name, times, until).items():
            context.loc[at, column] = values
        sub.loc[at, "level"] = subreddit_levels(session, name, times, until)
    for column, values in zip(SUBREDDIT_HISTORY_COLUMNS, ("prior", "recent_30", "level")):
        out[column] = sub[values].to_numpy()
    for column in context.columns:
        out[column] = context[column].to_numpy()

    history = _author_posts(session, posts["author"].tolist(), until)
    relative = history["label"].to_numpy(np.float64) - history["level"].to_numpy(np.float64)
    authors = author_features(posts, history, relative, label_age_hours)
    for column in authors.columns:
        out[column] = authors[column].to_numpy()
    return out.astype(np.float32)


def _kept(until: int | None) -> list:

    where = [Label.status.in_(TRAINABLE_STATUSES), Post.removed.is_(False)]
    return where if until is None else [*where, Post.created_utc < int(until)]


def _posts_before(session: Session, subreddit: str, times: np.ndarray) -> np.ndarray:
    """How many kept posts of `subreddit` were created before each time (times already capped at
    the history's end): whole days from subreddit_days, the rest from the posts themselves."""

    first_day = int(times.min()) // 86400
    whole_days = session.execute(
        select(func.coalesce(func.sum(SubredditDay.posts), 0)).where(
            SubredditDay.subreddit == subreddit, SubredditDay.day < first_day
        )
    ).scalar_one()
    created = np.sort(
        np.fromiter(
            session.scalars(
                select(Post.created_utc).where(
                    Post.subreddit == subreddit,
                    Post.removed.is_(False),
                    Post.created_utc >= first_day * 86400,
                    Post.created_utc < int(times.max()),
                )
            ),
            dtype=np.int64,
        )
    )
    return int(whole_days) + np.searchsorted(created, times, side="left")


def _recent_activity(session: Session, subreddit: str, times: np.ndarray, until: int) -> dict[str, np.ndarray]:
    """SUBREDDIT_CONTEXT_COLUMNS at `times`: the subreddit's kept posts created before each time (and
    before `until`), from one range query over the longest window and one indexed MAX before it."""

    kept = [Post.subreddit == subreddit, Post.removed.is_(False)]
    upper = np.minimum(times, until)
    start = int(np.minimum(times - max(CONTEXT_WINDOWS_S.values()), until).min())
    last_before = session.execute(select(func.max(Post.created_utc)).where(*kept, Post.created_utc < start)).scalar()
    recent = session.scalars(
        select(Post.created_utc).where(*kept, Post.created_utc >= start, Post.created_utc < int(upper.max()))
    )
    created = np.sort(np.fromiter(recent, dtype=np.int64))
    if last_before is not None:  # older than every window: only the gap can reach it
        created = np.concatenate([[int(last_before)], created])
    end = np.searchsorted(created, upper, side="left")  # posts strictly before each time
    out = {}
    for column, window in CONTEXT_WINDOWS_S.items():
        first = np.searchsorted(created, np.minimum(times - window, until), side="left")
        out[column] = np.log1p(np.maximum(end - first, 0)).astype(np.float64)
    previous = created[np.maximum(end - 1, 0)] if len(created) else np.zeros(len(times), np.int64)
    out["subreddit_gap_prev_log"] = np.where(end > 0, np.log1p(np.maximum(times - previous, 0)), np.nan)
    return out


def subreddit_levels(session: Session, subreddit: str, times: np.ndarray, until: int | None) -> np.ndarray:
    """author_history's subreddit level (mean of the last RECENT_LABELS labels visible at or before
    each time) from labels of posts created before `until` (None: any), per day of the times."""

    times = np.asarray(times, dtype=np.int64)
    levels = np.full(len(times), np.nan)
    columns = select(Label.matured_utc, Post.created_utc, Post.id, Label.score).join(Post, Post.id == Label.post_id)
    for day in np.unique(times // 86400):
        at = np.flatnonzero(times // 86400 == day)
        start = int(day) * 86400
        kept = [Label.subreddit == subreddit, *_kept(until)]
        before = session.execute(
            columns.where(*kept, Label.matured_utc <= start)
            .order_by(Label.matured_utc.desc(), Post.created_utc.desc(), Post.id.desc())
            .limit(RECENT_LABELS)
        ).all()
        within = session.execute(
            columns.where(*kept, Label.matured_utc > start, Label.matured_utc <= int(times[at].max()))
        ).all()
        rows = before + within
        if not rows:
            continue
        matured = np.array([r[0] for r in rows], dtype=np.int64)
        created = np.array([r[1] for r in rows], dtype=np.int64)
        ids = np.array([r[2] for r in rows], dtype=str)
        # history_features' order: by visible time, ties by (created_utc, post_id)
        order = np.lexsort((ids, created, matured))
        values = label_of_score([rows[i][3] for i in order]).astype(np.float64)
        levels[at] = recent_level(matured[order], values, times[at])
    return levels


def _author_posts(session: Session, authors: Iterable[str | None], until: int) -> pd.DataFrame:
    """Every kept post of these authors created before `until`, with its trainable label and its
    subreddit's level when it was created: from post_levels, computed and stored where it lacks them."""

    query = (
        select(
            Post.id,
            Post.author,
            Post.subreddit,
            Post.created_utc,
            PostLevel.label,
            PostLevel.matured_utc,
            PostLevel.level,
            PostLevel.post_id,
        )
        .outerjoin(PostLevel, PostLevel.post_id == Post.id)
        .where(Post.created_utc < int(until), Post.removed.is_(False))
    )
    columns = [*HISTORY_ROW_COLUMNS, "level", "cached"]
    batches = []
    for chunk in in_chunks(sorted({a for a in authors if isinstance(a, str) and a}), IN_CHUNK):
        for rows in stream_tuples(session, query.where(Post.author.in_(chunk)), BATCH_ROWS):
            batches.append(pd.DataFrame(rows, columns=columns))
    frame = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=columns)
    for column in HISTORY_ROW_COLUMNS[:3]:
        frame[column] = frame[column].astype("str")
    frame["created_utc"] = pd.to_numeric(frame["created_utc"]).astype("int64")
    for column in ("label", "label_matured_utc", "level"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    missing = frame["cached"].isna()
    if missing.any():  # posts never needed before (or whose cache a trigger dropped)
        # the labels and levels are read after the lock: a label written meanwhile waits for this
        # commit, and its trigger then drops the rows stored here instead of leaving them stale
        lock_post_levels(session)
        ids = frame.loc[missing, "post_id"].tolist()
        found = {}
        for chunk in in_chunks(ids, IN_CHUNK):
            found.update(
                (pid, (score, matured))
                for pid, score, matured in session.execute(
                    select(Label.post_id, Label.score, Label.matured_utc).where(
                        Label.post_id.in_(chunk), Label.status.in_(TRAINABLE_STATUSES)
                    )
                )
            )
        score = [found.get(pid, (None, None))[0] for pid in ids]
        frame.loc[missing, "label"] = label_of_score(score).astype(np.float64)
        frame.loc[missing, "label_matured_utc"] = [
            np.nan if found.get(p, (0, None))[1] is None else float(found[p][1]) for p in ids
        ]
        labelled = missing & frame["label"].notna()  # only labelled posts need a level
        for name, rows in frame[labelled].groupby("subreddit", sort=True):
            frame.loc[rows.index, "level"] = subreddit_levels(session, name, rows["created_utc"].to_numpy(), None)
        new = frame[missing]
        stored = [
            {
                "post_id": p,
                "subreddit": sub,
                "created_utc": int(t),
                "label": _none(v),
                "matured_utc": None if np.isnan(m) else int(m),
                "level": _none(lv),
            }
            for p, sub, t, v, m, lv in zip(
                new["post_id"],
                new["subreddit"],
                new["created_utc"],
                new["label"],
                new["label_matured_utc"],
                new["level"],
            )
        ]
        for start in range(0, len(stored), 10_000):
            upsert(
                session,
                PostLevel,
                stored[start : start + 10_000],
                update=("subreddit", "created_utc", "label", "matured_utc", "level"),
            )
        session.commit()
    frame = frame.drop(columns="cached")
    keys = pa.table(
        {"created_utc": frame["created_utc"].to_numpy(), "post_id": pa.array(frame["post_id"], pa.string())}
    )
    order = pc.sort_indices(keys, sort_keys=[("created_utc", "ascending"), ("post_id", "ascending")])
    return frame.take(order.to_numpy()).reset_index(drop=True)


def lock_post_levels(session: Session) -> None:
    """Hold off every write that can invalidate post_levels until this session commits.

    Every such write runs a trigger that deletes from post_levels, so on Postgres a SHARE ROW
    EXCLUSIVE lock on it waits for writers in flight and makes later ones wait (readers never do);
    on SQLite, BEGIN IMMEDIATE takes the database's one write lock.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("LOCK TABLE post_levels IN SHARE ROW EXCLUSIVE MODE"))
    elif dialect == "sqlite":
        driver = session.connection().connection.dbapi_connection
        if not driver.in_transaction:  # already writing: the write lock is held
            driver.execute("BEGIN IMMEDIATE")


def _none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
