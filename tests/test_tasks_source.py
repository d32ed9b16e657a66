"""source=auto through smpp.tasks (no Airflow): an old day with no conf reads the configured archive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import SAMPLE_ARCHIVE
from smpp import storage, tasks
from smpp.settings import get_settings

START = datetime(2013, 7, 30, tzinfo=UTC)
END = START + timedelta(days=1)


@pytest.fixture
def auto(settings, monkeypatch):
    """Settings with source left at its default (auto) and two subreddits of the sample dump."""
    monkeypatch.delenv("SMPP_SOURCE", raising=False)
    monkeypatch.delenv("SMPP_ARCHIVE_PATH", raising=False)
    monkeypatch.setenv("SMPP_SUBREDDITS", '["AmIFreeToGo", "Calligraphy"]')
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_an_old_day_without_conf_reads_the_configured_archive(auto):
    auto.setenv("SMPP_ARCHIVE_PATH", str(SAMPLE_ARCHIVE))
    get_settings.cache_clear()
    planned = tasks.plan_archive_files(START, END)  # conf null, as a UI backfill sends it
    assert planned == [str(SAMPLE_ARCHIVE)]
    assert tasks.index_archive_file(planned[0], START, END)["built"]
    scraped = tasks.scrape_posts(START, END)
    assert (scraped["source"], scraped["source_requested"]) == ("archive", "auto")
    assert scraped["archive_files"] == [str(SAMPLE_ARCHIVE)] and scraped["new_posts"] == scraped["posts_in_day"] > 0
    assert tasks.refresh_scores(START, END)["skipped"].startswith("archive source")
    recorded = storage.read_run_metrics(get_settings(), START.date())["scrape_posts"]
    assert (recorded["source"], recorded["source_requested"]) == ("archive", "auto")


def test_an_old_auto_day_without_an_archive_fails_naming_the_setting_and_the_day(auto):
    for stage in (tasks.plan_archive_files, tasks.scrape_posts):
        with pytest.raises(ValueError, match=r"SMPP_ARCHIVE_PATH") as error:
            stage(START, END)
        assert "2013-07-30" in str(error.value)
    assert not storage.has_partition(get_settings(), "posts", START.date())


def test_the_day_age_is_judged_by_the_clock(auto):
    """Outside the reach a day needs the archive; inside it, it goes live (plan_archive_files then plans
    nothing and touches no Reddit)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    recent = today - timedelta(days=2)
    assert tasks.plan_archive_files(recent, recent + timedelta(days=1)) == []
    old = today - timedelta(days=5)
    with pytest.raises(ValueError, match=r"SMPP_ARCHIVE_PATH"):
        tasks.plan_archive_files(old, old + timedelta(days=1))
    auto.setenv("SMPP_LIVE_REACH_DAYS", "10")
    get_settings.cache_clear()
    assert tasks.plan_archive_files(old, old + timedelta(days=1)) == []


def test_explicit_params_still_win(auto):
    assert tasks.plan_archive_files(START, END, {"source": "reddit"}) == []
    # explicit archive: from a dump even for a day the live API could reach (here none is configured)
    yesterday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    with pytest.raises(ValueError, match=r"source=archive needs archive_path"):
        tasks.plan_archive_files(yesterday, yesterday + timedelta(days=1), {"source": "archive"})
