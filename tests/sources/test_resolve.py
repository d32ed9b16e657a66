"""source=auto: which source reads a day, by its age; explicit sources are left as set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smpp.settings import Settings
from smpp.sources.resolve import resolve_source

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def settings(tmp_path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)


def test_auto_is_the_default_with_a_three_day_reach(monkeypatch, tmp_path):
    monkeypatch.delenv("SMPP_SOURCE", raising=False)
    monkeypatch.delenv("SMPP_LIVE_REACH_DAYS", raising=False)
    s = settings(tmp_path)
    assert (s.source, s.live_reach_days) == ("auto", 3.0)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(hours=15), "reddit"),  # today's run: its day started this morning
        (timedelta(days=1), "reddit"),  # the scheduled daily run
        (timedelta(days=3), "reddit"),  # exactly at the reach: still live
        (timedelta(days=3, seconds=1), "archive"),  # one second past it
        (timedelta(days=4749), "archive"),  # 2013: a backfill
    ],
)
def test_auto_goes_live_within_reach_and_to_the_archive_beyond(tmp_path, age, expected):
    s = settings(tmp_path, source="auto", archive_path=tmp_path / "dumps", live_reach_days=3)
    assert resolve_source(s, NOW - age, NOW) == expected


def test_the_reach_is_a_setting(tmp_path):
    s = settings(tmp_path, source="auto", archive_path=tmp_path / "dumps", live_reach_days=0.5)
    assert resolve_source(s, NOW - timedelta(hours=12), NOW) == "reddit"
    assert resolve_source(s, NOW - timedelta(hours=13), NOW) == "archive"


def test_naive_datetimes_are_utc(tmp_path):
    s = settings(tmp_path, source="auto", archive_path=tmp_path / "dumps")
    naive_now = NOW.replace(tzinfo=None)
    assert resolve_source(s, naive_now - timedelta(days=2), naive_now) == "reddit"
    assert resolve_source(s, datetime(2013, 7, 24), NOW) == "archive"


def test_auto_archive_day_without_an_archive_is_a_clear_error(tmp_path):
    s = settings(tmp_path, source="auto", archive_path=None)
    with pytest.raises(ValueError, match=r"SMPP_ARCHIVE_PATH") as error:
        resolve_source(s, datetime(2013, 7, 24, tzinfo=UTC), NOW)
    assert "2013-07-24" in str(error.value) and "live_reach_days=3" in str(error.value)
    # a recent day needs no archive
    assert resolve_source(s, NOW - timedelta(days=1), NOW) == "reddit"


@pytest.mark.parametrize("source", ["reddit", "archive"])
def test_explicit_sources_are_unchanged_whatever_the_day(tmp_path, source):
    s = settings(tmp_path, source=source, archive_path=None)
    for start in (datetime(2013, 7, 24, tzinfo=UTC), NOW - timedelta(hours=1), NOW - timedelta(days=30)):
        assert resolve_source(s, start, NOW) == source


def test_unknown_source_and_bad_reach_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        settings(tmp_path, source="pushshift")
    with pytest.raises(ValueError):
        settings(tmp_path, live_reach_days=0)
