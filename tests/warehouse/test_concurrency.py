"""Two days ingested at the same moment by two processes: nothing lost, nothing corrupted."""

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from smpp.warehouse import Post, PostSnapshot, session_for

SRC = Path(__file__).resolve().parents[2] / "src"
WORKER = """
import sys
from smpp.warehouse.ingest import ingest_posts
from smpp.settings import Settings
from smpp.sources.records import PostRecord
from smpp.warehouse import session_for

url, day = sys.argv[1], int(sys.argv[2])
settings = Settings(database_url=url)
start = 1375142400 + day * 86400
for batch in range(10):  # many small transactions interleave with the other process
    records = [
        PostRecord.from_reddit_json(
            {"id": f"d{day}p{batch}x{i}", "title": "t", "subreddit": "pics", "author": "a",
             "author_fullname": "t2_a", "created_utc": start + batch * 60 + i, "score": i},
            observed_at=start + 3600 + batch * 60 + i, source="reddit")
        for i in range(50)
    ]
    with session_for(url) as session:
        ingest_posts(session, settings, records)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wh.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_two_days_at_once(db_url):
    with session_for(db_url):  # create the schema once, as the first task of a deployment does
        pass
    env = {"PYTHONPATH": str(SRC)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, db_url, str(day)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in (0, 1)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with session_for(db_url) as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 1000
        assert s.scalar(select(func.count()).select_from(PostSnapshot)) == 1000
