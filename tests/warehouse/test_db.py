"""Upserts on SQLite and, when reachable, on the local Postgres."""

import pytest
from sqlalchemy import func, select

from smpp.warehouse import Label, Post, session_for, upsert


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wh.sqlite'}"
    return request.getfixturevalue("postgres_url")


def _post(pid: str, title: str = "t") -> dict:
    return {
        "id": pid,
        "subreddit": "pics",
        "title": title,
        "author": "a",
        "author_fullname": "t2_a",
        "created_utc": 1_700_000_000,
        "url": None,
        "domain": None,
        "permalink": None,
        "is_self": True,
        "over_18": False,
        "is_gallery": False,
        "post_hint": None,
        "preview_url": None,
        "gallery_urls": [],
        "flair_text": None,
        "subreddit_subscribers": 10,
        "selftext_len": 0,
        "source": "reddit",
        "first_seen_at": 1_700_000_100,
        "removed": False,
    }


def test_upsert_insert_only_keeps_first_sight(db_url):
    with session_for(db_url) as s:
        upsert(s, Post, [_post("p1", "first"), _post("p2")])
        upsert(s, Post, [_post("p1", "second")])
        s.commit()
        assert s.scalar(select(func.count()).select_from(Post)) == 2
        assert s.get(Post, "p1").title == "first"


def test_upsert_updates_named_columns(db_url):
    row = {
        "post_id": "p1",
        "score": 1,
        "age_hours": 24.0,
        "label_age_hours": 24.0,
        "observed_at": 1,
        "matured_utc": 2,
        "status": "ok",
    }
    with session_for(db_url) as s:
        upsert(s, Label, [row])
        upsert(s, Label, [{**row, "score": 5}], update=["score"])
        s.commit()
        assert s.get(Label, "p1").score == 5
        assert s.scalar(select(func.count()).select_from(Label)) == 1


def test_psycopg2_engines_batch_executemany(postgres_url):
    """psycopg2's executemany is a round trip per row and SQLAlchemy only batches INSERT ... ON CONFLICT
    in this mode: the archive ingest took 98.5 s instead of 40.9 s (benchmarks/README.md)."""
    from sqlalchemy.dialects.postgresql.psycopg2 import EXECUTEMANY_VALUES_PLUS_BATCH

    from smpp.warehouse.db import get_engine

    assert get_engine(postgres_url).dialect.executemany_mode == EXECUTEMANY_VALUES_PLUS_BATCH


def test_record_ranges_match_the_column_types():
    """sources.records refuses what the columns cannot hold; this keeps the two in step."""
    from smpp.sources.records import CREATED_RANGE, INT32, INT64
    from smpp.warehouse import PostSnapshot
    from smpp.warehouse.db import integer_range

    for column in (PostSnapshot.score, PostSnapshot.num_comments, Label.score, Post.selftext_len):
        assert integer_range(column.property.columns[0]) == INT32, column
    for column in (Post.subreddit_subscribers, PostSnapshot.observed_at, Post.first_seen_at):
        assert integer_range(column.property.columns[0]) == INT64, column
    low, high = integer_range(Label.matured_utc.property.columns[0])
    assert low <= CREATED_RANGE[0] and CREATED_RANGE[1] + 10**9 <= high  # created + a label age fits


def test_out_of_range_value_is_an_error_naming_the_column(db_url):
    """Records are validated before this; a row that is not says which column, not a bare OverflowError."""
    from smpp.warehouse.db import ColumnRangeError

    row = {
        "post_id": "p1",
        "score": 1,
        "age_hours": 24.0,
        "label_age_hours": 24.0,
        "observed_at": 1,
        "matured_utc": 2,
        "status": "ok",
    }
    for score in (2**31, 10**30):  # past INTEGER on Postgres; past every integer the SQLite driver binds
        with session_for(db_url) as s:
            try:
                upsert(s, Label, [row, {**row, "post_id": "p2", "score": score}])
            except ColumnRangeError as exc:
                assert f"labels.score = {score}" in str(exc) and "'post_id': 'p2'" in str(exc)
            else:
                assert db_url.startswith("sqlite") and score == 2**31  # SQLite's INTEGER is 64-bit
            s.rollback()
