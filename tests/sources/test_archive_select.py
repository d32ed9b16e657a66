"""Real-dump reading: subreddit selection (prefilter + parse), file picking, per-subreddit index shards, bad input."""

from __future__ import annotations

import json
import logging
import shutil
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from smpp import tasks
from smpp.sources import archive_index, archive_select
from smpp.sources.archive import ArchiveScan, scan_archive_posts
from smpp.sources.archive_index import ensure_day_index
from smpp.sources.archive_select import ArchiveReadError, Selection, pick_files
from smpp.sources.dumps import iter_archive_posts

DAY = 1375142400  # 2013-07-30 00:00 UTC
D = 86400


def post(pid: str, subreddit: str | None, created: int = DAY + 100, **extra) -> dict:
    row = {"id": pid, "title": f"title {pid}", "author": "alice", "created_utc": created, "score": 3, **extra}
    if subreddit is not None:
        row["subreddit"] = subreddit
    return row


def dump_text(rows: list) -> bytes:
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, sort_keys=True, separators=(",", ":"))) + "\n" for r in rows
    ).encode()


def write(path: Path, rows: list, zstd: bool | None = None) -> Path:
    data = dump_text(rows)
    if zstd if zstd is not None else path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data)
    path.write_bytes(data)
    return path


DECOYS = [
    post("ok1", "pics"),
    post("ok2", "Pics"),  # case
    post("ok3", None, subreddit_name_prefixed="r/PICS"),  # only the prefixed form
    '{"id": "ok4", "subreddit": "pics", "title": "spaced", "created_utc": %d}' % (DAY + 5),  # spacing
    '{ "created_utc" : %d , "id" : "ok5" , "subreddit_name_prefixed" : "r\\/pics" , "title" : "escaped" }' % (DAY + 6),
    post("ea1", "EarthPorn"),
    post("no1", "pics2"),
    post("no2", "EarthPornAlt"),
    post("no3", "funny", title="pics"),  # a title that is exactly a target name
    post("no4", "funny", title="my pics of r/pics"),
    post("no5", "funny", url="https://example.com/r/pics", link_flair_text="pics"),
    post("no6", "picsofdogs", subreddit_name_prefixed="r/picsofdogs"),
    post("rm1", "pics", removed_by_category="moderator"),
]
SELECTED = {"ok1", "ok2", "ok3", "ok4", "ok5", "ea1", "rm1"}


def test_selection_by_bytes_then_parse(settings, tmp_path, decompressor):
    dump = write(tmp_path / "RS_2013-07.zst", DECOYS)
    subs = ["PICS", "earthporn"]
    scanned = ArchiveScan()
    by_scan = {r.id: r for r in scan_archive_posts(dump, DAY, DAY + D, scanned, subreddits=subs)}
    indexed = ArchiveScan()
    by_index = {r.id: r for r in iter_archive_posts(dump, DAY, DAY + D, indexed, settings=settings, subreddits=subs)}
    assert set(by_scan) == set(by_index) == SELECTED
    assert by_scan == by_index and by_scan["ok3"].subreddit == "PICS" and by_scan["ok5"].subreddit == "pics"
    assert by_index["rm1"].removed and not by_index["ok1"].removed  # tombstoned by ingestion
    # compact "subreddit":"<name>" keys decide without parsing: no decoy is parsed
    assert scanned.skip_reasons == {"not_selected": 6} and scanned.bad_lines == 0
    manifest = json.loads((Path(indexed.index["directory"]) / "r-pics" / "manifest.json").read_text())
    assert manifest["scan_skips"] == {"not_selected": 6} and manifest["lines"] == len(DECOYS)
    assert indexed.index["shards"] == ["r-earthporn", "r-pics"]
    everything = {r.id for r in iter_archive_posts(dump, DAY, DAY + D, settings=settings, subreddits=["*"])}
    assert everything == {r["id"] if isinstance(r, dict) else json.loads(r)["id"] for r in DECOYS}
    with pytest.raises(ValueError, match="no subreddits selected"):
        Selection.of([])


def test_crosspost_parents_and_empty_names_never_hide_a_selected_post(tmp_path):
    """Every "subreddit" key of a line is checked (crosspost parents sort first), and a post whose
    subreddit is empty or null falls back to its prefixed name; a parent's name alone selects nothing."""
    parent = {"id": "p", "subreddit": "funny", "title": "t"}
    rows = [
        post("x1", "pics", crosspost_parent_list=[parent]),
        post("x2", "funny", crosspost_parent_list=[{**parent, "subreddit": "pics"}]),
        post("x3", "", subreddit_name_prefixed="r/pics"),
        '{"created_utc":%d,"id":"x4","subreddit":null,"subreddit_name_prefixed":"r/Pics"}' % (DAY + 4),
        post("x5", "funny", title='my "subreddit":"pics"'),
        '{"created_utc":%d,"id":"x6","subreddit":"pics' % (DAY + 7),  # cut inside the value
        post("x7", "PICS"),
    ]
    dump = write(tmp_path / "RS_2013-07.ndjson", rows)
    scan = ArchiveScan()
    ids = [r.id for r in scan_archive_posts(dump, DAY, DAY + D, scan, subreddits=["pics"])]
    assert ids == ["x1", "x3", "x4", "x7"]
    # x2 (a parent in pics) is parsed and dropped; x5 (escaped quotes) and x6 (no closing quote) never parsed
    assert scan.skip_reasons == {"other_subreddit": 1, "not_selected": 2} and scan.bad_lines == 0


def test_picks_files_for_the_interval_and_selection(settings, tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    write(folder / "RS_2013-07.zst", [post("m1", "pics"), post("m2", "aww"), post("m3", "funny")])
    write(folder / "RS_2013-08.ndjson", [post("m4", "pics", DAY + 3 * D)])
    write(folder / "RS_2013-06.jsonl", [post("m0", "pics", DAY - 40 * D)], zstd=True)  # zstd despite the name
    write(folder / "pics_submissions.zst", [post("m1", "pics"), post("s1", "pics", DAY + 200)])
    write(folder / "aww_submissions.ndjson", [post("s2", "aww")])
    write(folder / "my_export.ndjson", [post("o1", "pics", DAY + 300), post("o2", "pics", DAY - 5 * D)])
    (folder / "README.txt").write_text("not a dump")
    picked = pick_files(folder, DAY, DAY + D, Selection.of(["pics"]))
    assert sorted((f.path.name, s.key) for f, s in picked) == [
        ("RS_2013-07.zst", "pics"),
        ("my_export.ndjson", "pics"),
        ("pics_submissions.zst", "pics"),
    ]
    params = {"source": "archive", "archive_path": str(folder), "subreddits": ["pics"]}
    start, end = datetime(2013, 7, 30, tzinfo=UTC), datetime(2013, 7, 31, tzinfo=UTC)
    planned = tasks.plan_archive_files(start, end, params)
    assert sorted(Path(p).name for p in planned) == ["RS_2013-07.zst", "my_export.ndjson", "pics_submissions.zst"]
    for path in planned:
        assert tasks.index_archive_file(path, start, end, params)["built"]
    assert tasks.plan_archive_files(start, end, params) == []  # each file is scanned once per backfill
    assert tasks.plan_archive_files(start, end, {"source": "reddit"}) == []
    metrics = tasks.scrape_posts(start, end, params)
    assert metrics["posts_in_day"] == 3 and metrics["new_posts"] == 3  # m1 (in two files, read once), s1, o1
    assert metrics["archive_skips"] == {"duplicate_id": 1}
    assert sorted(Path(f).name for f in metrics["archive_files"]) == sorted(Path(p).name for p in planned)
    assert not any(i["built"] for i in metrics["archive_indexes"])
    # a glob, and a single named file (read whatever its name)
    assert {r.id for r in iter_archive_posts(folder / "RS_*", DAY, DAY + D, settings=settings, subreddits=["aww"])} == {
        "m2"
    }
    assert {
        r.id
        for r in iter_archive_posts(
            folder / "my_export.ndjson", DAY - 5 * D, DAY + D, settings=settings, subreddits=["pics"]
        )
    } == {"o1", "o2"}


def test_no_file_for_the_interval_lists_what_was_found(tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    write(folder / "RS_2013-08.zst", [post("m4", "pics", DAY + 3 * D)])
    write(folder / "aww_submissions.zst", [post("s2", "aww")])
    with pytest.raises(FileNotFoundError, match=r"2013-07-30.*RS_2013-08.zst \(monthly\), aww_submissions.zst"):
        pick_files(folder, DAY, DAY + D, Selection.of(["pics"]))
    with pytest.raises(FileNotFoundError, match="archive dump not found"):
        pick_files(tmp_path / "missing", DAY, DAY + D, Selection.of(["pics"]))


def many_subreddits(n: int = 3000) -> list[dict]:
    return [post(f"p{i}", "pics" if i % 100 == 0 else f"sub{i % 97}", DAY + i, selftext="x" * 300) for i in range(n)]


def test_index_disk_is_proportional_to_the_selection(tmp_path):
    dump = write(tmp_path / "RS_2013-07.zst", many_subreddits())
    one = ensure_day_index(dump, tmp_path / "idx", subreddits=["pics"])
    everything = ensure_day_index(dump, tmp_path / "idx", subreddits=["*"])
    assert one.manifest["indexed"] == 30 and everything.manifest["indexed"] == 3000
    assert one.disk_bytes() * 20 < everything.disk_bytes()


def test_adding_a_subreddit_scans_only_for_the_missing(tmp_path, monkeypatch):
    dump = write(tmp_path / "RS_2013-07.zst", many_subreddits(500))
    scans = []
    real = archive_index.iter_candidate_lines
    monkeypatch.setattr(
        archive_index, "iter_candidate_lines", lambda p, sel, *a: scans.append(sel.key) or real(p, sel, *a)
    )
    root = tmp_path / "idx"
    assert ensure_day_index(dump, root, subreddits=["pics"]).built_shards == ("r-pics",)
    second = ensure_day_index(dump, root, subreddits=["Pics", "sub1"])
    assert second.built_shards == ("r-sub1",) and second.manifest["indexed"] == 5 + 6
    assert not ensure_day_index(dump, root, subreddits=["sub1", "pics"]).built
    both = ensure_day_index(dump, root, subreddits=["pics", "sub2", "sub3"])
    assert both.built_shards == ("r-sub2", "r-sub3")  # one scan fills both
    assert scans == ["pics", "sub1", "sub2,sub3"]
    ids = {r.id for r in archive_index.iter_indexed_posts(both, DAY, DAY + D)}
    assert len(ids) == 5 + 6 + 5 and "p0" in ids


@pytest.fixture(params=["zstd_grep", "zstd_cli", "python_zstandard"])
def decompressor(request, monkeypatch):
    """Every way a dump is read: zstd CLI | grep prefilter, the zstd CLI with the search in Python,
    python zstandard in-process."""
    if request.param == "zstd_grep" and not (shutil.which("zstd") and shutil.which("grep")):
        pytest.skip("no zstd or grep CLI")
    if request.param != "zstd_grep":
        monkeypatch.setattr(archive_select, "GREP_CLI", None)
    if request.param == "zstd_cli" and not shutil.which("zstd"):
        pytest.skip("no zstd CLI")
    if request.param == "python_zstandard":
        monkeypatch.setattr(archive_select, "ZSTD_CLI", None)
    return request.param


def test_not_zstd_truncated_and_corrupt_files_name_the_offset(settings, tmp_path, decompressor):
    plain = write(tmp_path / "RS_2013-07.zst", [post("a1", "pics")], zstd=False)
    with pytest.raises(ArchiveReadError, match=r"RS_2013-07.zst is not a zstd file.*byte offset 0"):
        list(scan_archive_posts(plain, DAY, DAY + D, subreddits=["pics"]))
    rows = [post(f"a{i}", "pics", DAY + i, selftext=f"{i}" * 500) for i in range(3000)]
    whole = zstandard.ZstdCompressor(level=3).compress(dump_text(rows))
    cut = tmp_path / "cut.zst"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ArchiveReadError, match=rf"cut.zst is truncated.*byte.* {len(whole) // 2}"):
        list(scan_archive_posts(cut, DAY, DAY + D, subreddits=["pics"]))
    with pytest.raises(ArchiveReadError, match="truncated"):
        ensure_day_index(cut, tmp_path / "idx", subreddits=["pics"])
    assert not any((tmp_path / "idx").rglob("manifest.json"))  # no partial index left behind
    damaged = bytearray(whole)
    damaged[len(whole) // 2 : len(whole) // 2 + 64] = b"\xff" * 64
    bad = tmp_path / "bad.zst"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(ArchiveReadError, match=r"bad.zst.* not (a )?valid zstd.* byte offset \d+"):
        list(scan_archive_posts(bad, DAY, DAY + D))


def test_twenty_megabyte_lines_in_bounded_memory(settings, tmp_path, decompressor):
    huge = 20 << 20
    rows = [
        post("s1", "pics"),
        post("big1", "pics", selftext="y" * huge),
        post("big2", "funny", selftext="z" * huge),
        post("s2", "pics", DAY + 200),
    ]
    dump = tmp_path / "RS_2013-07.zst"
    with dump.open("wb") as fh, zstandard.ZstdCompressor(level=1).stream_writer(fh) as writer:
        for row in rows:
            writer.write(json.dumps(row).encode() + b"\n")
    del rows
    tracemalloc.start()
    try:
        scan = ArchiveScan()
        ids = [r.id for r in scan_archive_posts(dump, DAY, DAY + D, scan, subreddits=["pics"])]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ids == ["s1", "big1", "s2"] and scan.skip_reasons == {"not_selected": 1}
    assert peak < 8 * huge  # a few copies of the one line in flight, never the file (4 x 20 MB)
    index = ensure_day_index(dump, tmp_path / "idx", subreddits=["pics"])
    assert index.manifest["indexed"] == 3 and index.manifest["slimmed"] == 1
    assert index.disk_bytes() < 1 << 20  # the 20 MB selftext is not kept, only its length


def test_long_scan_logs_progress(tmp_path, caplog):
    dump = write(tmp_path / "RS_2013-07.zst", many_subreddits(200))
    caplog.set_level(logging.INFO, logger="smpp.sources")
    ensure_day_index(dump, tmp_path / "idx", subreddits=["pics"], progress_every_s=0)
    assert any("% of" in m and "MB/s decompressed" in m and "lines/s" in m and "ETA" in m for m in caplog.messages)


@pytest.mark.parametrize("search", ["python", "grep"])
def test_chunk_boundaries_never_drop_a_selected_line(tmp_path, monkeypatch, search):
    if search == "python":
        monkeypatch.setattr(archive_select, "GREP_CLI", None)
    elif not shutil.which("grep"):
        pytest.skip("no grep CLI")
    rows = [
        post(
            f"c{i}",
            ("pics", "Pics", "pics2", "funny")[i % 4],
            DAY + i,
            title="pics" if i % 5 == 0 else "t",
            selftext="s" * (i % 37),
        )
        for i in range(400)
    ]
    dump = write(tmp_path / "RS_2013-07.ndjson", rows)
    monkeypatch.setattr(archive_select, "PLAIN_READ", 777)  # lines and names cut at every place
    ids = [r.id for r in scan_archive_posts(dump, DAY, DAY + D, subreddits=["pics"])]
    assert ids == [r["id"] for r in rows if r["subreddit"].lower() == "pics"]


@pytest.mark.parametrize("kind", ["plain", "python_zstandard", "grep_plain", "grep_zstd"])
def test_bad_lines_cite_the_dump_line_across_chunk_boundaries(tmp_path, monkeypatch, caplog, kind):
    """ScanProgress.line_number: the dump's own line, whatever chunk it lies in (every read mode)."""
    if kind.startswith("grep"):
        if not (shutil.which("grep") and shutil.which("zstd")):
            pytest.skip("no grep or zstd CLI")
    else:
        monkeypatch.setattr(archive_select, "GREP_CLI", None)
    rows, expected = [], {}
    for i in range(300):
        if i % 23 == 7:
            rows.append(post(f"b{i}", "pics", DAY + i, score="x" * (i % 50)))  # bad_score
            expected[f"b{i}"] = len(rows)
        else:
            rows.append(post(f"c{i}", ("pics", "funny")[i % 2], DAY + i, selftext="s" * (i % 41)))
    rows.append(post("last", "pics", DAY + 999, score="bad"))  # the last line, without a newline
    expected["last"] = len(rows)
    data = dump_text(rows)[:-1]
    if kind.endswith("plain"):
        dump = tmp_path / "RS_2013-07.ndjson"
        dump.write_bytes(data)
        monkeypatch.setattr(archive_select, "PLAIN_READ", 333)
    else:
        dump = tmp_path / "RS_2013-07.zst"
        dump.write_bytes(zstandard.ZstdCompressor(level=1).compress(data))
        if kind == "python_zstandard":
            monkeypatch.setattr(archive_select, "ZSTD_CLI", None)
        monkeypatch.setattr(archive_select, "COMPRESSED_READ", 64)
    monkeypatch.setattr("smpp.sources.archive.LOGGED_PER_REASON", 100)
    monkeypatch.setattr(archive_index, "LOGGED_PER_REASON", 100)
    caplog.set_level(logging.WARNING)
    list(scan_archive_posts(dump, DAY, DAY + D, subreddits=["pics"]))
    ensure_day_index(dump, tmp_path / "idx", subreddits=["pics"])
    for pid, line in expected.items():
        assert (
            caplog.text.count(f"{dump}:{line}: skipped post {pid}") + caplog.text.count(f"{dump}:{line} (post {pid}")
            == 2
        ), (pid, line)  # the scan's and the index's
