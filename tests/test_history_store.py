"""warehouse_history: the rows the history features see, on SQLite and, when reachable, Postgres."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select

from smpp import history_store
from smpp.history_store import HISTORY_ROW_COLUMNS, warehouse_history
from smpp.warehouse import Label, Post, session_for
from smpp.warehouse.db import stream_tuples

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
        posts.append({"id": pid, "subreddit": f"sub{i % 4}", "author": author, "created_utc": created,
                      "title": "t", "selftext_len": 0, "source": "archive", "first_seen_at": created,
                      "removed": i % 11 == 5})
        if i % 5 != 1:  # some posts have no label at all
            status = ("ok", "archive", "late")[i % 3]
            labels.append({"post_id": pid, "score": int(rng.integers(-3, 500)), "age_hours": 24.0,
                           "label_age_hours": 24.0, "observed_at": created + DAY, "matured_utc": created + DAY,
                           "status": status})
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
    return pd.DataFrame({
        "post_id": rows["id"].tolist(),
        "author": rows["author"].tolist(),
        "subreddit": rows["subreddit"].tolist(),
        "created_utc": rows["created_utc"].astype("int64").to_numpy(),
        "label": np.where(np.isfinite(score), np.log1p(np.clip(score, 0, None)), np.nan).astype(np.float32),
        "label_matured_utc": rows["matured_utc"].to_numpy(float),
    })


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
    from smpp.author_history import HISTORY_COLUMNS, history_features
    from smpp.history_store import history_columns

    posts, _ = _warehouse(db_url, size=400, days=60)
    with session_for(db_url) as session:
        whole = warehouse_history(session, [], sorted(set(posts["subreddit"])), UNTIL)
        assert posts["subreddit"].nunique() == 4 and whole.groupby("author")["subreddit"].nunique().max() > 1
        for subreddits in (["sub0"], ["sub1", "sub3"]):
            day = posts[posts["subreddit"].isin(subreddits) & (posts["created_utc"] >= UNTIL - 8 * DAY)
                        & (posts["created_utc"] < UNTIL)].reset_index(drop=True)
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
    from smpp.labels import label_of_score, trainable_labels

    posts, labels = _warehouse(db_url, size=120, days=60)
    end, window_start = UNTIL - 5 * DAY, UNTIL - 40 * DAY
    with session_for(db_url) as session:
        got = trainable_labels(session, end, window_start).sort_values("post_id").reset_index(drop=True)
        assert len(trainable_labels(session, end)) > len(got)  # the window start cuts
    rows = labels.merge(posts, left_on="post_id", right_on="id")
    keep = (rows["status"].isin(["ok", "archive"]) & (rows["matured_utc"] <= end) & ~rows["removed"]
            & (rows["created_utc"] >= window_start))
    expected = rows[keep].sort_values("post_id")
    assert list(got.columns) == ["post_id", "label"] and got["label"].dtype == np.float32
    assert got["post_id"].tolist() == expected["post_id"].tolist()
    np.testing.assert_array_equal(got["label"].to_numpy(), np.log1p(expected["score"].clip(lower=0)).astype(np.float32))
    np.testing.assert_array_equal(label_of_score([None, -3, 0, 9]), np.array([np.nan, 0, 0, np.log1p(9)], np.float32))
