"""Dump corpus faults (issue 14): each bad line is a counted skip, each good post is stored, and an
unreadable dump is an error naming the file and byte offset, never a short day or a partial index.

scrape_posts is driven as the DAG runs it (smpp.tasks with DAG params), in both read modes: the day
index (archive_use_index, the default) and the plain scan.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from smpp import tasks
from smpp.settings import get_settings
from smpp.sources import archive_select
from smpp.sources.archive import open_binary
from smpp.sources.archive_select import ArchiveReadError
from smpp.warehouse import Post, PostSnapshot, session_for

_HERE = Path(__file__).parent


def _load_dumps():
    # --import-mode=importlib puts no test folder on sys.path: load the helper module by path.
    spec = importlib.util.spec_from_file_location("fault_dumps", _HERE / "dumps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


dumps = _load_dumps()
START = datetime(2013, 7, 30, tzinfo=UTC)
END = datetime(2013, 7, 31, tzinfo=UTC)


@pytest.fixture(params=["index", "scan"])
def mode(request, settings, monkeypatch):
    """Both ways scrape_posts reads a dump: its day index (the default) or a plain scan."""
    monkeypatch.setenv("SMPP_ARCHIVE_USE_INDEX", str(request.param == "index").lower())
    get_settings.cache_clear()
    return request.param


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, settings, monkeypatch):
    """The warehouse on SQLite and on the local Postgres (skipped when none is reachable)."""
    if request.param == "postgresql":
        monkeypatch.setenv("SMPP_DATABASE_URL", request.getfixturevalue("postgres_url"))
        get_settings.cache_clear()
    return request.param


@pytest.fixture(params=["zstd_grep", "zstd_cli", "python_zstandard"])
def decompressor(request, monkeypatch):
    """Every way a dump is read: zstd CLI | grep prefilter, the zstd CLI with the search in Python,
    python zstandard in-process."""
    if request.param == "zstd_grep" and not (shutil.which("zstd") and shutil.which("grep")):
        pytest.skip("no zstd or grep CLI")
    if request.param != "zstd_grep":
        monkeypatch.setattr(archive_select, "GREP_CLI", None)
    if request.param == "zstd_cli" and not shutil.which("zstd"):
        pytest.skip("no zstd CLI installed")
    if request.param == "python_zstandard":
        monkeypatch.setattr(archive_select, "ZSTD_CLI", None)
    return request.param


def scrape(path: Path) -> dict:
    params = {"source": "archive", "archive_path": str(path), "subreddits": [dumps.SUBREDDIT]}
    return tasks.scrape_posts(START, END, params)


def stored_ids() -> set[str]:
    with session_for(get_settings().database_url) as session:
        return set(session.scalars(select(Post.id)))


def bad_skips(metrics: dict) -> dict[str, int]:
    return {k: v for k, v in metrics["archive_skips"].items() if k not in dumps.NOT_BAD}


# ---------------------------------------------------------------- bad lines


def test_huge_ints_and_nul_are_counted_skips_and_every_good_post_is_stored(settings, tmp_path, mode, database):
    """Before: score 10**30 raised OverflowError at the insert (SQLite) and num_comments 2**31 'integer out
    of range' (Postgres): the day stored nothing, and every retry failed alike."""
    corpus = dumps.mixed_corpus(tmp_path)
    metrics = scrape(corpus.path)
    assert stored_ids() == set(corpus.good_ids)
    assert metrics["new_posts"] == len(corpus.good_ids)
    assert bad_skips(metrics) == corpus.bad and metrics["archive_bad_lines"] == corpus.bad_lines
    with session_for(get_settings().database_url) as session:
        assert "\ufffd" in session.get(Post, "utf1").title  # invalid UTF-8: replaced, kept
        edge = session.get(Post, "edge1")
        assert edge.subreddit_subscribers == dumps.INT64_MAX  # the type's edge fits
        [snapshot] = session.scalars(select(PostSnapshot).where(PostSnapshot.post_id == "edge1"))
        assert (snapshot.score, snapshot.num_comments) == (-(2**31), dumps.INT32_MAX)
    again = scrape(corpus.path)  # a retry of the day is the same day, not another failure
    assert bad_skips(again) == corpus.bad and again["new_posts"] == 0


def test_undated_bad_lines_count_the_same_in_both_modes(settings, tmp_path, mode):
    """Before: the index omitted the bad lines without a usable created_utc (2 of 15 counted); the scan
    passed over a created_utc of 10**30 (no day) uncounted."""
    corpus = dumps.undated_corpus(tmp_path)
    metrics = scrape(corpus.path)
    assert stored_ids() == set(corpus.good_ids)
    assert bad_skips(metrics) == corpus.bad and metrics["archive_bad_lines"] == corpus.bad_lines == 15


def test_bad_lines_cite_the_dump_and_its_line_number(settings, tmp_path, mode, caplog):
    """A 20 MB line among the faults (the later bad lines are chunks away from the first ones).
    Before: index mode cited the day file (`r-pics/ds=2013-07-30.ndjson:12`), scan mode the count of
    lines that passed the subreddit prefilter, not the dump's line."""
    corpus = dumps.mixed_corpus(tmp_path, big_line=True)
    caplog.set_level(logging.WARNING, logger="smpp.sources")
    metrics = scrape(corpus.path)
    assert corpus.big_id in stored_ids() and len(stored_ids()) == len(corpus.good_ids)
    assert bad_skips(metrics) == corpus.bad
    for post_id, line in corpus.bad_line_numbers.items():
        cited = [f"{corpus.path}:{line}: skipped post {post_id}", f"{corpus.path}:{line} (post {post_id}"]
        assert any(c in caplog.text for c in cited), (post_id, line)
    assert "ds=2013-07-30.ndjson" not in caplog.text


# ---------------------------------------------------------------- unreadable files
# scrape_posts (both modes) already refused truncated, misnamed and empty .zst files when this work
# started (tests/sources/test_archive_select.py covers it, no partial index left); open_binary, what
# the benchmarks and one-off tools read dumps with, did not: it used a bare zstandard stream_reader.


def read_all(path: Path) -> int:
    with open_binary(path) as stream:
        return sum(1 for _ in stream)


def test_truncated_zst_is_an_error_naming_file_and_offset(tmp_path, decompressor):
    """Before: open_binary read the cut half of a 2000-post dump as 0 lines, without an error."""
    path, size = dumps.truncated_dump(tmp_path)
    with pytest.raises(ArchiveReadError, match="truncated") as info:
        read_all(path)
    assert str(path) in str(info.value) and f"byte {size}" in str(info.value).replace("offset ", "")


def test_not_zstd_named_zst_is_an_error_naming_the_file(tmp_path, decompressor):
    """Before: open_binary raised a bare zstandard.ZstdError ('Unknown frame descriptor'), no path."""
    path = dumps.wrong_magic_dump(tmp_path)
    with pytest.raises(ArchiveReadError, match="not a zstd file.*byte offset 0.*magic") as info:
        read_all(path)
    assert str(path) in str(info.value)


def test_empty_zst_is_an_error(tmp_path, decompressor):
    """Before: open_binary read an empty .zst as 0 lines."""
    path = dumps.empty_dump(tmp_path)
    with pytest.raises(ArchiveReadError, match=r"is empty \(0 bytes") as info:
        read_all(path)
    assert str(path) in str(info.value)


def test_pzstd_skippable_frames_are_read(settings, tmp_path, mode, decompressor):
    """Before: a dump written by pzstd (a skippable frame before each frame) was 'not a zstd file' in
    scrape_posts, both modes and both decompressors."""
    metrics = scrape(dumps.pzstd_style_dump(tmp_path, posts=300))
    assert metrics["new_posts"] == 300 and metrics["archive_bad_lines"] == 0
    assert read_all(dumps.pzstd_style_dump(tmp_path, posts=300)) == 300
