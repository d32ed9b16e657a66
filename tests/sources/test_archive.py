"""Archive dumps: day index (built once, concurrency-safe, rebuilt on change), field variants, bad lines."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
import zstandard
from sqlalchemy import select

from smpp.sources import archive_index
from smpp.sources.archive import (
    ArchiveScan,
    normalize_archive_post,
    observed_at_of,
    scan_archive_posts,
)
from smpp.sources.archive_index import ensure_day_index, index_key, slim_archive_post
from smpp.sources.dumps import iter_archive_posts
from smpp.sources.records import PostRecord
from smpp.warehouse import Label, Post, Tombstone, session_for
from smpp.warehouse.ingest import ingest_posts

SAMPLE_ARCHIVE = Path(__file__).parents[1] / "data" / "sample_archive.ndjson.zst"
DAY = 1375142400  # 2013-07-30 00:00 UTC
D = 86400


def write_dump(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def post(pid: str, created: object, **extra) -> dict:
    return {
        "id": pid,
        "title": f"title {pid}",
        "subreddit": "pics",
        "author": "alice",
        "created_utc": created,
        "score": 3,
        **extra,
    }


def arctic_shift_post() -> dict:
    """A 2023-11+ Arctic-Shift submission: sorted keys, no name, _meta, long bulky fields."""
    return dict(
        sorted(
            {
                "_meta": {"retrieved_2nd_on": DAY + 40 * 3600, "was_deleted_later": False, "is_edited": False},
                "all_awardings": [{"name": "Silver", "icon_url": "https://example.com/" + "x" * 300}],
                "author": "bob",
                "author_fullname": None,
                "author_flair_richtext": [],
                "created_utc": f"{DAY + 100}.0",
                "domain": "i.redd.it",
                "gallery_data": {"items": [{"media_id": "m1", "id": 1, "caption": "c"}]},
                "id": "as1",
                "is_gallery": True,
                "is_self": False,
                "media_metadata": {
                    "m1": {
                        "e": "Image",
                        "m": "image/jpg",
                        "p": [{"u": "https://p/1", "x": 1, "y": 1}] * 5,
                        "s": {"u": "https://i.redd.it/a.jpg?x=1&amp;y=2", "x": 9, "y": 9},
                        "status": "valid",
                    },
                    "m2": {"status": "failed"},
                },
                "num_comments": "12",
                "over_18": False,
                "permalink": "/r/pics/comments/as1/t/",
                "post_hint": "image",
                "preview": {
                    "enabled": True,
                    "images": [
                        {
                            "id": "p",
                            "resolutions": [{"url": "https://r/1"}] * 4,
                            "source": {"url": "https://preview/a.jpg?a=1&amp;b=2"},
                        }
                    ],
                },
                "removed_by_category": None,
                "retrieved_on": DAY + 200,
                "score": 57,
                "selftext": "body " * 80,
                "sr_detail": {"description": "d" * 400},
                "subreddit_name_prefixed": "r/pics",
                "subreddit_subscribers": 1000,
                "title": "An Arctic-Shift post",
                "upvote_ratio": 0.97,
                "url": "https://www.reddit.com/gallery/as1",
            }.items()
        )
    )


def test_index_selects_exactly_what_a_scan_selects(settings):
    for start, end, count in [
        (DAY, DAY + D, 671),
        (DAY + D, DAY + 2 * D, 721),
        (DAY, DAY + 2 * D, 1392),
        (DAY + 3600, DAY + 7200, None),
        (DAY - D, DAY, 0),
    ]:
        indexed, scanned = ArchiveScan(), ArchiveScan()
        via_index = list(iter_archive_posts(SAMPLE_ARCHIVE, start, end, indexed, settings=settings))
        via_scan = list(scan_archive_posts(SAMPLE_ARCHIVE, start, end, scanned))
        assert sorted(via_index, key=lambda r: r.id) == sorted(via_scan, key=lambda r: r.id)
        assert count is None or len(via_index) == count
        assert all(start <= p.created_utc < end and p.source == "archive" for p in via_index)
        assert scanned.lines == 1392 and indexed.bad_lines == scanned.bad_lines == 0
    one_day = ArchiveScan()
    list(iter_archive_posts(SAMPLE_ARCHIVE, DAY, DAY + D, one_day, settings=settings))
    assert (one_day.lines, one_day.days_read, one_day.index["days"], one_day.index["dump_lines"]) == (671, 1, 2, 1392)
    manifest = json.loads((Path(one_day.index["directory"]) / "manifest.json").read_text())
    assert manifest["days"] == {"2013-07-30": 671, "2013-07-31": 721} and manifest["source"] == str(SAMPLE_ARCHIVE)
    assert {"size", "mtime", "lines", "bad_lines", "created_at"} <= manifest.keys()


def test_index_is_built_once_and_reused(settings, monkeypatch):
    opened = []
    real_open = archive_index.iter_candidate_lines
    monkeypatch.setattr(archive_index, "iter_candidate_lines", lambda p, *a: opened.append(p) or real_open(p, *a))
    first, second = ArchiveScan(), ArchiveScan()
    assert len(list(iter_archive_posts(SAMPLE_ARCHIVE, DAY, DAY + D, first, settings=settings))) == 671
    assert len(list(iter_archive_posts(SAMPLE_ARCHIVE, DAY + D, DAY + 2 * D, second, settings=settings))) == 721
    assert len(opened) == 1 and first.index["built"] and not second.index["built"]
    assert first.index["key"] == second.index["key"] == index_key(SAMPLE_ARCHIVE)


def _build_in_worker(dump: str, root: str, barrier, results) -> None:
    barrier.wait()
    index = ensure_day_index(Path(dump), Path(root))
    results.put((index.built, str(index.directory), index.manifest["days"]))


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_concurrent_builders_make_one_index(tmp_path, monkeypatch, kind):
    real_build = archive_index.build_day_index

    def slow_build(*args, **kwargs):  # holds the lock long enough for the others to queue on it
        time.sleep(0.3)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(archive_index, "build_day_index", slow_build)
    root, workers = tmp_path / "index", 4
    if kind == "threads":
        import queue

        barrier, results = threading.Barrier(workers), queue.Queue()
        runners = [
            threading.Thread(target=_build_in_worker, args=(str(SAMPLE_ARCHIVE), str(root), barrier, results))
            for _ in range(workers)
        ]
    else:
        ctx = multiprocessing.get_context("fork")  # children inherit the patched builder
        barrier, results = ctx.Barrier(workers), ctx.Queue()
        runners = [
            ctx.Process(target=_build_in_worker, args=(str(SAMPLE_ARCHIVE), str(root), barrier, results))
            for _ in range(workers)
        ]
    for runner in runners:
        runner.start()
    outcomes = [results.get(timeout=30) for _ in range(workers)]
    for runner in runners:
        runner.join(timeout=30)
    assert sorted(built for built, _, _ in outcomes) == [False] * (workers - 1) + [True]
    assert len({directory for _, directory, _ in outcomes}) == 1
    assert all(days == {"2013-07-30": 671, "2013-07-31": 721} for _, _, days in outcomes)
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == [index_key(SAMPLE_ARCHIVE)]


def test_changed_dump_is_reindexed(settings, tmp_path):
    dump = write_dump(tmp_path / "RS.ndjson", [post("a1", DAY + 10)])
    first = ArchiveScan()
    assert [p.id for p in iter_archive_posts(dump, DAY, DAY + D, first, settings=settings)] == ["a1"]
    write_dump(dump, [post("a1", DAY + 10), post("b2", DAY + 20)])  # new size
    second = ArchiveScan()
    assert [p.id for p in iter_archive_posts(dump, DAY, DAY + D, second, settings=settings)] == ["a1", "b2"]
    write_dump(dump, [post("a1", DAY + 10), post("c3", DAY + 20)])  # same size: mtime tells
    os.utime(dump, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    third = ArchiveScan()
    assert [p.id for p in iter_archive_posts(dump, DAY, DAY + D, third, settings=settings)] == ["a1", "c3"]
    assert first.index["built"] and second.index["built"] and third.index["built"]
    assert len({first.index["key"], second.index["key"], third.index["key"]}) == 3
    # the indexes of the dump's earlier versions are deleted; another dump's index is kept
    other = write_dump(tmp_path / "RS_other.ndjson", [post("d4", DAY + 30)])
    list(iter_archive_posts(other, DAY, DAY + D, settings=settings))
    root = settings.data_dir / "archive_index"
    indexes = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert indexes == sorted([third.index["key"], index_key(other)])


def test_pushshift_and_arctic_shift_field_variants(settings, tmp_path):
    rows = [
        arctic_shift_post(),
        # Pushshift: name only, float time, retrieved_utc; the account was deleted, the post was not
        {
            "name": "t3_ps2",
            "title": "kept",
            "subreddit": "pics",
            "author": "[deleted]",
            "created_utc": DAY + 200.5,
            "retrieved_utc": DAY + 9000,
            "score": 4,
            "selftext": "still here",
        },
        post("rm3", DAY + 300, removed_by_category="moderator"),
        post("rm4", DAY + 400, selftext="[removed]"),
        post("rm5", DAY + 500, _meta={"was_deleted_later": True, "removal_type": "deleted"}, retrieved_on=DAY + 600),
        post("rm6", DAY + 600, title="[deleted]", author="[deleted]", selftext="[deleted]"),
        post("xp7", DAY + 700, crosspost_parent="t3_as1"),
    ]
    dump = write_dump(tmp_path / "RS_2013-07.ndjson", rows)
    scan = ArchiveScan()
    records = {r.id: r for r in iter_archive_posts(dump, DAY, DAY + D, scan, settings=settings)}
    assert {r.id: r for r in scan_archive_posts(dump, DAY, DAY + D)} == records
    arctic, pushshift = records["as1"], records["ps2"]
    assert (arctic.subreddit, arctic.created_utc, arctic.author_fullname) == ("pics", DAY + 100, None)
    assert arctic.observed_at == DAY + 40 * 3600 and arctic.num_comments == 12 and arctic.selftext_len == 400
    assert arctic.preview_url == "https://preview/a.jpg?a=1&b=2"
    assert arctic.gallery_urls == ("https://i.redd.it/a.jpg?x=1&y=2",) and not arctic.removed
    assert (pushshift.author, pushshift.removed, pushshift.observed_at) == (None, False, DAY + 9000)
    assert pushshift.created_utc == DAY + 200
    assert {i for i, r in records.items() if r.removed} == {"rm3", "rm4", "rm5", "rm6"}
    assert "xp7" not in records and scan.skip_reasons == {"crosspost": 1} and scan.bad_lines == 0
    manifest = json.loads((Path(scan.index["directory"]) / "manifest.json").read_text())
    assert manifest["slimmed"] == 1 and manifest["crossposts"] == 1
    with session_for(settings.database_url) as s:
        stats = ingest_posts(s, settings, records.values(), now=DAY + D)
        assert set(s.scalars(select(Tombstone.post_id))) == {"rm3", "rm4", "rm5", "rm6"}
        assert set(s.scalars(select(Post.id))) == {"as1", "ps2"} and s.get(Post, "ps2").author is None
        assert set(s.scalars(select(Label.post_id))) == {"as1", "ps2"} and stats.snapshots == 2


def test_slimmed_line_gives_the_same_record():
    full = arctic_shift_post()
    slim = json.loads(json.dumps(slim_archive_post(full)))
    assert len(json.dumps(slim)) < len(json.dumps(full)) / 2 and "sr_detail" not in slim

    def parse(data: dict) -> PostRecord:
        return PostRecord.from_reddit_json(normalize_archive_post(data), observed_at_of(data), "archive")

    assert parse(slim) == parse(json.loads(json.dumps(full)))
    removed = {**full, "selftext": "[removed]", "_meta": {"was_deleted_later": True}}
    assert parse(slim_archive_post(removed)) == parse(dict(removed)) and parse(dict(removed)).removed


def test_bad_lines_are_counted_by_reason_and_logged_with_the_id(settings, tmp_path, caplog):
    rows = [
        post("ok1", DAY + 1),
        "{not json",
        "[1, 2]",
        json.dumps({"id": "nt2", "title": "no time"}),
        post("bt3", "yesterday"),
        post("bt4", True),
        json.dumps({"title": "no id", "subreddit": "pics", "created_utc": DAY + 5}),
        post("bs5", DAY + 6, score="lots"),
        post("../x", DAY + 7),
        {"id": "ns8", "title": "no subreddit", "created_utc": DAY + 8},
        "",
        post("ok9", DAY + 9),
    ]
    dump = write_dump(tmp_path / "bad.ndjson", rows)
    caplog.set_level(logging.WARNING)
    indexed, scanned = ArchiveScan(), ArchiveScan()
    assert [p.id for p in iter_archive_posts(dump, DAY, DAY + D, indexed, settings=settings)] == ["ok1", "ok9"]
    assert [p.id for p in scan_archive_posts(dump, DAY, DAY + D, scanned)] == ["ok1", "ok9"]
    per_day = {"missing_id": 1, "bad_score": 1, "bad_id": 1, "missing_subreddit": 1}
    undated = {"malformed_json": 1, "not_an_object": 1, "missing_created_utc": 1, "bad_created_utc": 2}
    # both modes count the lines without a usable day (the index: its manifest's undated_skips)
    assert indexed.skip_reasons == scanned.skip_reasons == {**per_day, **undated}
    assert indexed.bad_lines == scanned.bad_lines == 9
    manifest = json.loads((Path(indexed.index["directory"]) / "manifest.json").read_text())
    assert manifest["bad_lines"] == {**undated, **per_day} and manifest["lines"] == len(rows)
    assert manifest["undated_skips"] == undated and manifest["days"] == {"2013-07-30": 2}  # bad lines not stored
    assert "bs5" in caplog.text and "bad_score" in caplog.text and "bt3" in caplog.text
    assert f"{dump}:8: skipped post bs5" in caplog.text and f"{dump}:8 (post bs5" in caplog.text  # dump and line


def test_index_turned_off_scans_the_dump(settings):
    plain = settings.with_overrides(archive_use_index=False)
    scan = ArchiveScan()
    assert len(list(iter_archive_posts(SAMPLE_ARCHIVE, DAY, DAY + D, scan, settings=plain))) == 671
    assert scan.lines == 1392 and scan.index is None and not (settings.data_dir / "archive_index").exists()


def test_small_flush_buffer_and_duplicates(settings, tmp_path):
    rows = [post(f"p{i}", DAY + (i % 3) * D + i) for i in range(60)] + [post("p3", DAY + 3)]
    dump = write_dump(tmp_path / "dup.ndjson", rows)
    index = ensure_day_index(dump, tmp_path / "idx", flush_bytes=200)  # flushes every couple of lines
    assert index.manifest["days"] == {"2013-07-30": 21, "2013-07-31": 20, "2013-08-01": 20}
    scan = ArchiveScan()
    ids = [p.id for p in archive_index.iter_indexed_posts(index, DAY, DAY + 3 * D, scan)]
    assert sorted(ids) == sorted(p.id for p in scan_archive_posts(dump, DAY, DAY + 3 * D))  # day-major order
    assert len(ids) == 60 and scan.skip_reasons == {"duplicate_id": 1} and scan.days_read == 3


def test_damaged_day_file_is_reported(settings, tmp_path):
    dump = write_dump(tmp_path / "d.ndjson", [post("a1", DAY + 1), post("a2", DAY + 2)])
    index = ensure_day_index(dump, tmp_path / "idx")
    day_file = index.day_path("2013-07-30")
    day_file.write_text(day_file.read_text().splitlines()[0] + "\n")
    with pytest.raises(RuntimeError, match="delete .* to rebuild"):
        list(archive_index.iter_indexed_posts(index, DAY, DAY + D))


def test_streams_zst_written_by_another_tool(settings, tmp_path):
    path = tmp_path / "d.ndjson.zst"
    lines = "".join(
        json.dumps({"id": f"i{i}", "title": "t", "subreddit": "s", "created_utc": i}) + "\n" for i in range(50)
    )
    path.write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    assert len(list(iter_archive_posts(path, 10, 20, settings=settings))) == 10
    assert len(list(scan_archive_posts(path, 10, 20))) == 10
