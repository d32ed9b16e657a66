"""Live path through smpp.tasks (no Airflow): first-sight labels, refresh, deletion purge."""

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from smpp import storage, tasks
from smpp.devtools.fake_reddit import FakeRedditServer
from smpp.settings import get_settings
from smpp.warehouse import Label, Tombstone, session_for


def post(pid: str, created: int, author: str = "alice") -> dict:
    return {
        "id": pid,
        "name": f"t3_{pid}",
        "title": f"A photo called {pid}",
        "author": author,
        "subreddit": "pics",
        "created_utc": created,
        "score": 42,
        "num_comments": 3,
        "over_18": False,
        "is_self": False,
        "url": f"https://example.com/{pid}",
        "domain": "example.com",
    }


@pytest.fixture
def live(settings, monkeypatch):
    now = int(time.time())
    # a daily interval holding one post already past the label age and one younger than it
    day_start = (now - 86400) // 86400 * 86400
    posts = [post("mature", day_start + 1), post("young", (now + day_start) // 2, author="bob")]
    with FakeRedditServer(posts, client_id="id", client_secret="secret", rate_limit_per_window=1_000_000) as fake:
        for key, value in {
            "CLIENT_ID": "id",
            "CLIENT_SECRET": "secret",
            "OAUTH_URL": fake.base_url,
            "REDDIT_URL": fake.base_url,
            "SHORT_URL": fake.base_url,
        }.items():
            monkeypatch.setenv(f"SMPP_REDDIT__{key}", value)
        monkeypatch.setenv("SMPP_SUBREDDITS", '["pics"]')
        get_settings.cache_clear()
        start = datetime.fromtimestamp(day_start, UTC)
        end = datetime.fromtimestamp(day_start + 86400, UTC)
        yield fake, start, end
    get_settings.cache_clear()


def test_labels_at_fixed_age_and_deletion_purge(live):
    fake, start, end = live
    settings = get_settings()
    scraped = tasks.scrape_posts(start, end, {"source": "reddit"})
    assert scraped["new_posts"] == 2 and scraped["labels"] == {"labelled_ok": 1, "labelled_late": 0, "pending": 1}
    with session_for(settings.database_url) as s:
        label = s.get(Label, "mature")
        assert label.status == "ok" and 24 <= label.age_hours <= 48  # the age actually used is kept
        # round, not int: age_hours is a float of whole seconds (int() of 118320.99999 lost a second)
        assert label.matured_utc == label.observed_at - round(label.age_hours * 3600) + 24 * 3600

    fake.mark_removed("young", kind="deleted")
    refreshed = tasks.refresh_scores(start, end, {"source": "reddit"})
    assert refreshed["due"] == 1 and refreshed["newly_removed"] == 1
    assert refreshed["purged"]["posts"] == 1 and refreshed["purged"]["partition_rows"] >= 1
    day_posts = storage.read_partition(settings, "posts", start.date())
    assert day_posts["id"].tolist() == ["mature"]
    with session_for(settings.database_url) as s:
        assert s.scalars(select(Tombstone.post_id)).all() == ["young"]

    again = tasks.scrape_posts(start, end, {"source": "reddit"})  # a re-run never brings it back
    assert again["new_posts"] == 0
    assert storage.read_partition(settings, "posts", start.date())["id"].tolist() == ["mature"]


def test_a_recent_day_without_conf_goes_live_under_source_auto(live, monkeypatch):
    fake, start, end = live
    monkeypatch.delenv("SMPP_SOURCE", raising=False)
    monkeypatch.delenv("SMPP_ARCHIVE_PATH", raising=False)  # a live day needs no archive
    get_settings.cache_clear()
    assert tasks.plan_archive_files(start, end) == []
    scraped = tasks.scrape_posts(start, end)  # conf null, as a UI backfill sends it
    assert (scraped["source"], scraped["source_requested"]) == ("reddit", "auto") and scraped["new_posts"] == 2
    assert "skipped" not in tasks.refresh_scores(start, end)
    recorded = storage.read_run_metrics(get_settings(), start.date())["scrape_posts"]
    assert (recorded["source"], recorded["source_requested"]) == ("reddit", "auto")


def test_frequent_scrape_fills_the_warehouse_and_the_daily_partition_uses_it(live, monkeypatch):
    fake, start, end = live
    monkeypatch.setenv("SMPP_FREQUENT_SUBREDDITS", '["pics"]')
    monkeypatch.setenv("SMPP_SUBREDDITS", "[]")  # the daily run scrapes nothing itself here
    get_settings.cache_clear()
    settings = get_settings()
    hourly = tasks.scrape_frequent(start, end, {"source": "reddit"})
    assert hourly["new_posts"] == 2
    assert not storage.has_partition(settings, "posts", start.date())  # warehouse only
    daily = tasks.scrape_posts(start, end, {"source": "reddit"})
    assert daily["posts_in_day"] == 2
    assert sorted(storage.read_partition(settings, "posts", start.date())["id"]) == ["mature", "young"]


def test_training_without_any_history_is_skipped_with_a_reason(settings):
    start = datetime(2013, 7, 29, tzinfo=UTC)
    report = tasks.train_model(start, datetime(2013, 7, 30, tzinfo=UTC), {"source": "archive"})
    assert report["rows"]["train"] == 0 and "too few labelled rows" in report["skipped_reason"]
