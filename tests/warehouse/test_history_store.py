"""warehouse_history: the rows the history features see, on SQLite and, when reachable, Postgres."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from smpp.warehouse import Label, Post, history_store, session_for
from smpp.warehouse.db import stream_tuples
from smpp.warehouse.history_store import HISTORY_ROW_COLUMNS, warehouse_history

UNTIL = 1_700_000_000
DAY = 86_400


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wh.sqlite'}"
    return request.getfixturevalue("postgres_url")


def _warehouse(url: str, size: int = 40, days: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`size` posts over 4 subreddits and 6 authors (some none), with every kind of label and removal."""
    rng = np.random.default_rng(7)
    posts, labels = [], []
    for i in range(size):
        pid = f"p{i:03d}"
        created = UNTIL - int(rng.integers(-3, days)) * DAY + int(rng.integers(0, 3)) * 3600  # ties, later posts
        author = None if i % 9 == 0 else f"user{i % 6}"
        posts.append(
            {
                "id": pid,
                "subreddit": f"sub{i % 4}",
                "author": author,
                "created_utc": created,
                "title": "t",
                "selftext_len": 0,
                "source": "archive",
                "first_seen_at": created,
                "removed": i % 11 == 5,
            }
        )
        if i % 5 != 1:  # some posts have no label at all
            status = ("ok", "archive", "late")[i % 3]
            labels.append(
                {
                    "post_id": pid,
                    "score": int(rng.integers(-3, 500)),
                    "age_hours": 24.0,
                    "label_age_hours": 24.0,
                    "observed_at": created + DAY,
                    "matured_utc": created + DAY,
                    "status": status,
                }
            )
    with session_for(url) as session:
        session.execute(insert(Post), posts)
        session.execute(insert(Label), labels)
        session.commit()
    return pd.DataFrame(posts), pd.DataFrame(labels)


def _expected(posts: pd.DataFrame, labels: pd.DataFrame, authors: list, subreddits: list) -> pd.DataFrame:
    trainable = labels[labels["status"].isin(["ok", "archive"])]
    rows = posts.merge(trainable, how="left", left_on="id", right_on="post_id", suffixes=("", "_label"))
    kept = (rows["created_utc"] < UNTIL) & ~rows["removed"]
    # the given subreddits, and every subreddit the given authors posted in (kept posts)
    their = set(rows.loc[kept & rows["author"].isin([a for a in authors if a]), "subreddit"])
    keep = kept & rows["subreddit"].isin(set(subreddits) | their)
    rows = rows[keep].sort_values(["created_utc", "id"])
    score = rows["score"].to_numpy(float)
    return pd.DataFrame(
        {
            "post_id": rows["id"].tolist(),
            "author": rows["author"].tolist(),
            "subreddit": rows["subreddit"].tolist(),
            "created_utc": rows["created_utc"].astype("int64").to_numpy(),
            "label": np.where(np.isfinite(score), np.log1p(np.clip(score, 0, None)), np.nan).astype(np.float32),
            "label_matured_utc": rows["matured_utc"].to_numpy(float),
        }
    )


@pytest.mark.parametrize("batch_rows, in_chunk", [(50_000, 500), (3, 2)])
def test_history_rows_are_every_earlier_kept_post_of_the_subreddits_and_the_authors_subreddits_once(
    db_url, monkeypatch, batch_rows, in_chunk
):
    posts, labels = _warehouse(db_url)
    # tiny batches and IN lists: rows split across batches and queries still come back once each
    monkeypatch.setattr(history_store, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(history_store, "IN_CHUNK", in_chunk)
    cases = [
        (["user1", "user2", None, "nobody"], ["sub0"]),
        (["user0", "user1", "user2", "user3", "user4", "user5"], []),
        ([], ["sub0", "sub1", "sub2", "sub3"]),
        ([None], ["sub3", "sub2"]),
        ([], []),
    ]
    with session_for(db_url) as session:
        for authors, subreddits in cases:
            got = warehouse_history(session, authors, subreddits, UNTIL)
            expected = _expected(posts, labels, authors, subreddits)
            assert list(got.columns) == HISTORY_ROW_COLUMNS
            assert got["post_id"].is_unique
            assert got["post_id"].tolist() == expected["post_id"].tolist(), (authors, subreddits)
            assert got["author"].where(got["author"].notna(), None).tolist() == expected["author"].tolist()
            assert got["subreddit"].tolist() == expected["subreddit"].tolist()
            assert got["created_utc"].dtype == np.int64
            np.testing.assert_array_equal(got["created_utc"].to_numpy(), expected["created_utc"].to_numpy())
            np.testing.assert_array_equal(got["label"].to_numpy(), expected["label"].to_numpy())
            assert got["label"].dtype == np.float32
            assert got["label_matured_utc"].dtype == np.float64
            np.testing.assert_array_equal(got["label_matured_utc"].to_numpy(), expected["label_matured_utc"])


def test_stored_history_columns_equal_the_features_over_the_whole_warehouse(db_url):
    """Authors post in other subreddits too: their relative labels need those subreddits' levels."""
    from smpp.features.author_history import HISTORY_COLUMNS, history_features
    from smpp.warehouse.history_store import history_columns

    posts, _ = _warehouse(db_url, size=400, days=60)
    with session_for(db_url) as session:
        whole = warehouse_history(session, [], sorted(set(posts["subreddit"])), UNTIL)
        assert posts["subreddit"].nunique() == 4 and whole.groupby("author")["subreddit"].nunique().max() > 1
        for subreddits in (["sub0"], ["sub1", "sub3"]):
            day = posts[
                posts["subreddit"].isin(subreddits)
                & (posts["created_utc"] >= UNTIL - 8 * DAY)
                & (posts["created_utc"] < UNTIL)
            ].reset_index(drop=True)
            got = history_columns(session, day, UNTIL, 24.0)
            expected = history_features(day, whole, label_age_hours=24.0)
            assert got["author_prior_rel_label"].notna().any()
            pd.testing.assert_frame_equal(got[HISTORY_COLUMNS], expected[HISTORY_COLUMNS], check_exact=True)


def test_history_of_one_batch_of_authorless_posts_keeps_the_string_dtype(db_url, monkeypatch):
    """A batch whose authors are all missing must not turn the whole column into Python objects."""
    _warehouse(db_url)
    monkeypatch.setattr(history_store, "BATCH_ROWS", 1)
    with session_for(db_url) as session:
        got = warehouse_history(session, [], ["sub0", "sub1"], UNTIL)
    assert got["author"].isna().any() and got["author"].notna().any()
    assert got["author"].dtype == pd.DataFrame({"a": ["x", None]})["a"].dtype


def test_stream_tuples_batches_plain_tuples_and_refuses_parameters_it_cannot_pass_as_is(tmp_path):
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    posts, _ = _warehouse(url)
    with session_for(url) as session:
        batches = list(stream_tuples(session, select(Post.id).order_by(Post.id), batch_rows=7))
        assert [len(b) for b in batches] == [7] * 5 + [5]
        assert all(type(row) is tuple for batch in batches for row in batch)
        assert [row[0] for batch in batches for row in batch] == sorted(posts["id"])
        with pytest.raises(TypeError, match="unprocessed"):
            list(stream_tuples(session, select(Post.id).where(Post.created_utc < pd.Timestamp(UNTIL, unit="s"))))


def test_trainable_labels_are_matured_trainable_and_of_kept_posts(db_url):
    """What training joins: ok/archive labels matured by the end, of posts not removed, from the window start."""
    from smpp.warehouse.labels import label_of_score, trainable_labels

    posts, labels = _warehouse(db_url, size=120, days=60)
    end, window_start = UNTIL - 5 * DAY, UNTIL - 40 * DAY
    with session_for(db_url) as session:
        got = trainable_labels(session, end, window_start).sort_values("post_id").reset_index(drop=True)
        assert len(trainable_labels(session, end)) > len(got)  # the window start cuts
    rows = labels.merge(posts, left_on="post_id", right_on="id")
    keep = (
        rows["status"].isin(["ok", "archive"])
        & (rows["matured_utc"] <= end)
        & ~rows["removed"]
        & (rows["created_utc"] >= window_start)
    )
    expected = rows[keep].sort_values("post_id")
    assert list(got.columns) == ["post_id", "label"] and got["label"].dtype == np.float32
    assert got["post_id"].tolist() == expected["post_id"].tolist()
    np.testing.assert_array_equal(got["label"].to_numpy(), np.log1p(expected["score"].clip(lower=0)).astype(np.float32))
    np.testing.assert_array_equal(label_of_score([None, -3, 0, 9]), np.array([np.nan, 0, 0, np.log1p(9)], np.float32))


def _day_rows(day: int, rng: np.random.Generator, per_day: int = 30) -> tuple[list[dict], list[dict]]:
    """One day's posts (4 subreddits, 12 authors who post across them, some without author, some
    removed) and their labels, as ingest writes them: matured a day after creation."""
    start = UNTIL + day * DAY
    posts, labels = [], []
    for i in range(per_day):
        pid = f"d{day:02d}p{i:02d}"
        created = start + int(rng.integers(0, DAY // 600)) * 600  # ties within a day
        author = None if i % 10 == 0 else f"user{int(rng.integers(0, 12))}"
        posts.append(
            {
                "id": pid,
                "subreddit": f"sub{int(rng.integers(0, 4))}",
                "author": author,
                "created_utc": created,
                "title": "t",
                "selftext_len": 0,
                "source": "archive",
                "first_seen_at": created,
                "removed": bool(rng.random() < 0.05),
            }
        )
        if i % 7 != 3:
            labels.append(
                {
                    "post_id": pid,
                    "score": int(rng.integers(-3, 500)),
                    "age_hours": 24.0,
                    "label_age_hours": 24.0,
                    "observed_at": created + DAY,
                    "matured_utc": created + DAY,
                    "status": ("ok", "archive", "ok", "late")[i % 4],
                }
            )
    return posts, labels


def _ingest(session, posts: list[dict], labels: list[dict]) -> None:
    """What ingest does: posts keep their first sight, labels take the newest score."""
    from smpp.warehouse.db import insert_rows
    from smpp.warehouse.ingest import LABEL_COLUMNS, POST_COLUMNS

    defaults = {"is_self": False, "over_18": False, "is_gallery": False, "gallery_urls": []}
    insert_rows(session, Post, POST_COLUMNS, [tuple(p.get(c, defaults.get(c)) for c in POST_COLUMNS) for p in posts])
    insert_rows(
        session,
        Label,
        LABEL_COLUMNS,
        [tuple(r[c] for c in LABEL_COLUMNS) for r in labels],
        update=("score", "age_hours", "observed_at", "matured_utc", "status"),
    )
    session.commit()


def _day_posts(posts: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(posts)[["id", "author", "subreddit", "created_utc"]]


def _whole_features(session, day: pd.DataFrame, until: int) -> pd.DataFrame:
    from smpp.features.author_history import history_features

    whole = warehouse_history(session, [], [f"sub{i}" for i in range(4)], until)
    return history_features(day, whole, label_age_hours=24.0)


def _table_rows(session, model) -> list[tuple]:
    return sorted(tuple(r) for r in session.execute(select(model.__table__)).all())


def test_history_of_a_warehouse_built_day_by_day_equals_the_whole_warehouse_computation(db_url):
    """Days ingested and built one after another (and one day ingested late, after later days were
    built): each day's columns equal history_features over the whole warehouse as it then is."""
    from smpp.features.author_history import HISTORY_COLUMNS
    from smpp.warehouse import PostLevel
    from smpp.warehouse.history_store import history_columns

    rng = np.random.default_rng(3)
    days = {d: _day_rows(d, rng) for d in range(14)}
    late = 6  # ingested only after day 10 was built: cached levels of later posts must not go stale
    with session_for(db_url) as session:
        for d in range(14):
            if d != late:
                _ingest(session, *days[d])
            if d == 10:
                _ingest(session, *days[late])
            until = UNTIL + (d + 1) * DAY
            day = _day_posts(days[d][0])
            got = history_columns(session, day, until, 24.0)
            expected = _whole_features(session, day, until)
            pd.testing.assert_frame_equal(got[HISTORY_COLUMNS], expected[HISTORY_COLUMNS], check_exact=True)
        assert got["author_prior_rel_label"].notna().mean() > 0.5 and got["subreddit_posts_30d_log"].gt(0).all()
        # a post removed later (tombstoned) leaves everyone's history, cached levels included
        gone = days[2][0][5]["id"]
        session.execute(Post.__table__.update().where(Post.id == gone).values(removed=True))
        session.execute(Label.__table__.delete().where(Label.post_id == gone))
        session.commit()
        day = _day_posts(days[13][0])
        pd.testing.assert_frame_equal(
            history_columns(session, day, UNTIL + 14 * DAY, 24.0)[HISTORY_COLUMNS],
            _whole_features(session, day, UNTIL + 14 * DAY)[HISTORY_COLUMNS],
            check_exact=True,
        )
        assert session.scalar(select(func.count()).select_from(PostLevel)) > 0


def test_rerunning_a_day_mid_backfill_gives_identical_features_and_rows(db_url):
    """Days 0-9 built, then day 4 re-ingested and rebuilt: its columns, every later day's, and the
    history tables' rows are as before (nothing duplicated, nothing changed)."""
    from smpp.features.author_history import HISTORY_COLUMNS
    from smpp.warehouse import PostLevel, SubredditDay
    from smpp.warehouse.history_store import history_columns

    rng = np.random.default_rng(5)
    days = {d: _day_rows(d, rng) for d in range(10)}
    first = {}
    with session_for(db_url) as session:
        for d in range(10):
            _ingest(session, *days[d])
            first[d] = history_columns(session, _day_posts(days[d][0]), UNTIL + (d + 1) * DAY, 24.0)
        before = {m: _table_rows(session, m) for m in (Post, Label, SubredditDay)}
        _ingest(session, *days[4])
        again = history_columns(session, _day_posts(days[4][0]), UNTIL + 5 * DAY, 24.0)
        pd.testing.assert_frame_equal(again[HISTORY_COLUMNS], first[4][HISTORY_COLUMNS], check_exact=True)
        for d in range(5, 10):
            later = history_columns(session, _day_posts(days[d][0]), UNTIL + (d + 1) * DAY, 24.0)
            pd.testing.assert_frame_equal(later[HISTORY_COLUMNS], first[d][HISTORY_COLUMNS], check_exact=True)
        assert {m: _table_rows(session, m) for m in (Post, Label, SubredditDay)} == before
        levels = _table_rows(session, PostLevel)
        assert len({r[0] for r in levels}) == len(levels)


def test_an_existing_warehouse_is_upgraded_in_place(tmp_path):
    """A warehouse from before the history schema (no labels.subreddit, counts, levels or triggers)
    gets them when opened, and its history columns are right."""
    import sqlite3

    from smpp.features.author_history import HISTORY_COLUMNS
    from smpp.warehouse import db
    from smpp.warehouse.history_schema import _ready
    from smpp.warehouse.history_store import history_columns

    path = tmp_path / "old.sqlite"
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(9)
    days = {d: _day_rows(d, rng) for d in range(6)}
    with session_for(url) as session:
        for d in range(6):
            _ingest(session, *days[d])
    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    _ready.clear()
    with sqlite3.connect(path) as conn:  # back to the old schema
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP INDEX ix_labels_subreddit_matured")
        conn.execute("ALTER TABLE labels DROP COLUMN subreddit")
        conn.execute("DROP TABLE subreddit_days")
        conn.execute("DROP TABLE post_levels")
    with session_for(url) as session:
        day = _day_posts(days[5][0])
        got = history_columns(session, day, UNTIL + 6 * DAY, 24.0)
        pd.testing.assert_frame_equal(
            got[HISTORY_COLUMNS], _whole_features(session, day, UNTIL + 6 * DAY)[HISTORY_COLUMNS], check_exact=True
        )
        assert session.scalar(select(func.count()).select_from(Label).where(Label.subreddit.is_(None))) == 0


def test_a_label_written_while_levels_are_being_cached_never_leaves_them_stale(db_url, monkeypatch):
    """The race of two DAGs: a score refresh commits a label between build_features' reads and its
    post_levels write. The write lock makes the refresh wait, so its trigger drops what was cached."""
    import threading
    import time

    from sqlalchemy import update

    from smpp.features.author_history import HISTORY_COLUMNS
    from smpp.warehouse.history_store import history_columns

    posts, labels = _warehouse(db_url, size=400, days=60)
    sub0 = posts[(posts["subreddit"] == "sub0") & ~posts["removed"]].sort_values("created_utc")
    labelled = set(labels.loc[labels["status"].isin(["ok", "archive"]), "post_id"])
    target = next(pid for pid in sub0["id"] if pid in labelled)  # the oldest labelled post: moves later levels
    day = posts[
        (posts["subreddit"] == "sub0") & (posts["created_utc"] >= UNTIL - 8 * DAY) & (posts["created_utc"] < UNTIL)
    ].reset_index(drop=True)

    def refresh_score() -> None:
        with session_for(db_url) as session:
            session.execute(update(Label).where(Label.post_id == target).values(score=1_000_000))
            session.commit()

    writer = threading.Thread(target=refresh_score)
    real_upsert = history_store.upsert

    def upsert_after_a_refresh(session, model, rows, **kwargs):
        if not writer.is_alive() and writer.ident is None:  # the first write of the cache
            writer.start()
            time.sleep(0.5)  # without the lock the refresh commits here, before the rows are stored
        return real_upsert(session, model, rows, **kwargs)

    monkeypatch.setattr(history_store, "upsert", upsert_after_a_refresh)
    with session_for(db_url) as session:
        history_columns(session, day, UNTIL, 24.0)
    writer.join(timeout=60)
    assert writer.ident is not None and not writer.is_alive()
    monkeypatch.setattr(history_store, "upsert", real_upsert)
    with session_for(db_url) as session:
        got = history_columns(session, day, UNTIL, 24.0)  # read from the cache where it survived
        expected = _whole_features(session, day, UNTIL)
    assert got["author_prior_rel_label"].notna().any()
    pd.testing.assert_frame_equal(got[HISTORY_COLUMNS], expected[HISTORY_COLUMNS], check_exact=True)
