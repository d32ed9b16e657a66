"""ingest_posts' driver-level bulk path (SQLite) writes exactly what the SQLAlchemy Core upserts write."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from smpp.sources.archive import ArchiveScan, scan_archive_posts
from smpp.sources.records import PostRecord
from smpp.warehouse import db, session_for
from smpp.warehouse.ingest import ingest_posts
from smpp.warehouse.models import Base

SAMPLE_ARCHIVE = Path(__file__).parents[1] / "data" / "sample_archive.ndjson.zst"
DAY = 1375142400  # 2013-07-30 00:00 UTC, the sample's first day
D = 86400
TABLES = {t.name: [c.name for c in t.primary_key.columns] for t in Base.metadata.sorted_tables}


def live(pid: str, observed: int, score: int, **extra) -> PostRecord:
    data = {
        "id": pid,
        "title": f"live {pid}",
        "subreddit": "pics",
        "author": "alice",
        "author_fullname": "t2_al",
        "created_utc": DAY + 60,
        "score": score,
        "num_comments": 2,
        "upvote_ratio": 0.75,
        **extra,
    }
    return PostRecord.from_reddit_json(data, observed_at=observed, source="reddit")


def ingest_sequence(url: str, settings) -> list[dict]:  # the settings fixture
    """First sight, re-ingest, changed scores, removals, tombstoned re-ingest, live snapshots."""
    day = list(scan_archive_posts(SAMPLE_ARCHIVE, DAY, DAY + D, ArchiveScan()))
    assert len(day) == 671
    # the sample has no retrieval times: give some a time seen, so snapshots and label ages are written too
    day = [replace(r, observed_at=r.created_utc + 7200) if i % 3 == 0 else r for i, r in enumerate(day)]
    rescored = [replace(r, score=r.score + 5) for r in day[:200]]
    removed = [replace(r, removed=True, title="[deleted]", author=None) for r in day[10:14]]
    removed.append(replace(day[20], removed=True, id="neverstored"))
    images = {"m1": {"s": {"u": "https://i/a.jpg"}}, "m2": {"s": {"u": "https://i/b.jpg"}}}
    gallery = live(
        "gal1",
        DAY + 3600,
        3,
        is_gallery=True,
        media_metadata=images,
        preview={"images": [{"source": {"url": "https://p/a.jpg"}}]},
        subreddit_subscribers=99,
    )
    steps = [
        (day, {}),
        (day, {}),  # a re-run of the day changes nothing
        (rescored, {}),  # a newer dump: archive labels take its scores; posts keep their first sight
        (removed, {}),  # tombstoned and purged, labels deleted
        (day, {}),  # tombstoned posts are never re-ingested
        ([gallery, live("lv1", DAY + 3600, 1)], {}),
        ([live("lv1", DAY + 7200, 4), live("lv2", DAY + 7200, 2)], {"first_sight_only": True}),
        ([live("lv1", DAY + 9000, 6)], {}),
    ]
    stats = []
    with session_for(url) as session:
        for i, (records, options) in enumerate(steps):
            result = ingest_posts(session, settings, records, now=DAY + D + i, **options)
            stats.append(vars(result))
    return stats


def sqlite_tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table as stored (types included: 1 vs True vs 1.0 differ in repr)."""
    with sqlite3.connect(path) as conn:
        return {
            name: [
                tuple(repr(v) for v in row) for row in conn.execute(f"SELECT * FROM {name} ORDER BY {', '.join(keys)}")
            ]
            for name, keys in TABLES.items()
        }


def test_bulk_path_writes_the_same_rows_as_core_upserts(settings, tmp_path, monkeypatch):
    driver_db, core_db = tmp_path / "driver.sqlite", tmp_path / "core.sqlite"
    driver_stats = ingest_sequence(f"sqlite:///{driver_db}", settings)
    monkeypatch.setattr(db, "DRIVER_DIALECTS", frozenset())  # every write and lookup through SQLAlchemy Core
    core_stats = ingest_sequence(f"sqlite:///{core_db}", settings)
    assert driver_stats == core_stats
    driver, core = sqlite_tables(driver_db), sqlite_tables(core_db)
    assert driver == core
    # the sequence did what it says, so the comparison covered each case
    assert [s["new_posts"] for s in driver_stats] == [671, 0, 0, 0, 0, 2, 1, 0]
    assert [s["tombstoned_skipped"] for s in driver_stats] == [0, 0, 0, 0, 4, 0, 0, 0]
    assert driver_stats[3]["newly_removed"] == 4 and len(driver["tombstones"]) == 5
    assert len(driver["posts"]) == 674 and len(driver["labels"]) == 667
    assert len(driver["post_snapshots"]) == 224 + 2 + 1 + 1  # archive (once), gal1 + lv1, lv2 first sight, lv1 refresh
    gal = next(r for r in driver["posts"] if r[0] == "'gal1'")
    assert repr('["https://i/a.jpg", "https://i/b.jpg"]') in gal  # the JSON text SQLAlchemy writes
    assert repr("https://p/a.jpg") in gal and gal[9:12] == ("0", "0", "1")  # is_self, over_18, is_gallery


def test_postgres_gets_the_same_rows(settings, tmp_path, postgres_url):
    from sqlalchemy import create_engine, text

    sqlite_stats = ingest_sequence(f"sqlite:///{tmp_path / 'wh.sqlite'}", settings)
    assert ingest_sequence(postgres_url, settings) == sqlite_stats
    expected = sqlite_tables(tmp_path / "wh.sqlite")
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        for name, keys in TABLES.items():
            rows = conn.execute(text(f"SELECT * FROM {name} ORDER BY {', '.join(keys)}")).all()
            # Postgres has real booleans and JSON: compare as SQLite stores them
            stored = [tuple(repr(_as_sqlite(v)) for v in row) for row in rows]
            assert stored == expected[name], name
    engine.dispose()


def _as_sqlite(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list):
        return json.dumps(value)
    return value


def test_batched_writes_give_the_same_rows_and_log_progress(settings, tmp_path, monkeypatch, caplog):
    """A day is written in INGEST_BATCH-row batches with a progress line between them, same rows."""
    import logging

    from smpp.warehouse import ingest

    whole_db, batched_db = tmp_path / "whole.sqlite", tmp_path / "batched.sqlite"
    whole_stats = ingest_sequence(f"sqlite:///{whole_db}", settings)
    monkeypatch.setattr(ingest, "INGEST_BATCH", 7)  # batch edges inside every table's rows
    caplog.set_level(logging.INFO, logger="smpp.progress")
    batched_stats = ingest_sequence(f"sqlite:///{batched_db}", settings.model_copy(update={"progress_every_s": 1e-9}))
    assert batched_stats == whole_stats
    assert sqlite_tables(batched_db) == sqlite_tables(whole_db)
    lines = [m for m in caplog.messages if m.startswith("ingest: writing")]
    assert any("rows (" in m and "ETA" in m for m in lines)  # done/total, rate and ETA between batches
    assert any("done in" in m for m in lines) and any(m.startswith("ingest: reading posts") for m in caplog.messages)
