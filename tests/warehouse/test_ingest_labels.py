"""Ingestion is idempotent, deletions are tombstoned and purged, labels use the fixed age."""

from dataclasses import replace

from sqlalchemy import func, select

from smpp.sources.records import AuthorRecord, PostRecord
from smpp.warehouse import Author, Label, Post, PostSnapshot, Tombstone, session_for
from smpp.warehouse.ingest import ingest_authors, ingest_posts, unknown_author_fullnames
from smpp.warehouse.labels import assign_labels, day_label_status, posts_due_for_refresh

T0 = 1_700_000_000
H = 3600


def record(pid: str, observed_h: float | None, score: int = 10, source: str = "reddit", **kw) -> PostRecord:
    data = {
        "id": pid,
        "title": f"title {pid}",
        "subreddit": "pics",
        "author": "alice",
        "author_fullname": "t2_alice",
        "created_utc": T0,
        "score": score,
        "num_comments": 1,
        "upvote_ratio": 0.9,
        **kw,
    }
    observed = None if observed_h is None else T0 + int(observed_h * H)
    return PostRecord.from_reddit_json(data, observed_at=observed, source=source)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_reingesting_changes_nothing(settings):
    with session_for(settings.database_url) as s:
        first = ingest_posts(s, settings, [record("a", 1), record("b", 1)], now=T0 + H)
        again = ingest_posts(s, settings, [record("a", 1), record("b", 1)], now=T0 + H)
        assert (first.new_posts, again.new_posts) == (2, 0)
        assert count(s, Post) == 2 and count(s, PostSnapshot) == 2


def test_rescrape_records_first_sight_only(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("a", 1)], first_sight_only=True)
        ingest_posts(s, settings, [record("a", 3), record("b", 3)], first_sight_only=True)
        assert count(s, PostSnapshot) == 2  # a@1h and b@3h; the re-scrape of a adds nothing
        ingest_posts(s, settings, [record("a", 5)])  # a refresh does record a new observation
        assert count(s, PostSnapshot) == 3


def test_label_is_first_snapshot_at_or_after_label_age(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("a", 2, score=5)])
        assert assign_labels(s, settings).pending == 1 and count(s, Label) == 0
        ingest_posts(s, settings, [record("a", 25, score=50), record("a", 30, score=70)])
        stats = assign_labels(s, settings)
        label = s.get(Label, "a")
        assert stats.labelled_ok == 1 and label.score == 50 and label.age_hours == 25
        assert label.matured_utc == T0 + 24 * H and label.status == "ok"


def test_refresh_too_late_gives_late_label(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("a", 24 + 24 + 5)])
        assert assign_labels(s, settings).labelled_late == 1
        assert s.get(Label, "a").status == "late"


def test_day_label_status_puts_every_post_in_one_status(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("ok", 25), record("late", 24 + 24 + 5), record("young", 1)])
        ingest_posts(s, settings, [record("unrefreshed", -99, created_utc=T0 - 100 * H)])
        ingest_posts(s, settings, [record("dump", None, source="archive")])
        assign_labels(s, settings)
        ids = ["ok", "late", "young", "unrefreshed", "dump", "purged", "ok"]  # a repeated id counts once
        counts = day_label_status(s, settings, ids, now=T0 + 10 * H)
        assert counts == {"ok": 1, "archive": 1, "late": 1, "not_matured": 1, "missing": 2}


def test_due_for_refresh_window(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("young", 1), record("old", 1, created_utc=T0 - 100 * H)])
        assert posts_due_for_refresh(s, settings, now=T0 + 10 * H) == ["young"]


def test_archive_label_and_maturity(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("a", None, score=99, source="archive")])
        label = s.get(Label, "a")
        assert (label.status, label.score, label.age_hours) == ("archive", 99, None)
        assert label.matured_utc == T0 + 24 * H
        assert count(s, PostSnapshot) == 0  # no observation time: no snapshot invented


def test_removed_post_is_tombstoned_purged_and_never_reingested(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("a", 1)])
        removed = record("a", 5, title="[removed]", removed_by_category="moderator")
        assert ingest_posts(s, settings, [removed]).newly_removed == 1
        post = s.get(Post, "a")
        assert post.removed and post.title is None and post.url is None
        assert s.get(Tombstone, "a").reason == "removed"
        again = ingest_posts(s, settings, [record("a", 6)])
        assert again.tombstoned_skipped == 1 and s.get(Post, "a").title is None


def test_authors_snapshotted_once_and_unknown_listed(settings):
    with session_for(settings.database_url) as s:
        ingest_posts(s, settings, [record("a", 1)])
        assert unknown_author_fullnames(s, ["a"]) == ["t2_alice"]
        author = AuthorRecord("alice", "t2_alice", T0 - 1000 * H, 10, 20, T0 + H)
        ingest_authors(s, [author])
        ingest_authors(s, [author])
        assert count(s, Author) == 1 and unknown_author_fullnames(s, ["a"]) == []


def test_deleted_author_record():
    rec = record("a", 1, author="[deleted]")
    assert rec.author is None and rec.removed
    assert replace(rec, removed=False).author is None
