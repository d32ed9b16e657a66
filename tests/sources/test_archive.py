import json

import zstandard

from smpp.sources.archive import ArchiveScan, iter_archive_posts
from pathlib import Path

SAMPLE_ARCHIVE = Path(__file__).parents[1] / "data" / "sample_archive.ndjson.zst"

DAY = 1375142400  # 2013-07-30 00:00 UTC


def test_selects_the_interval_from_zst_sample():
    scan = ArchiveScan()
    posts = list(iter_archive_posts(SAMPLE_ARCHIVE, DAY, DAY + 86400, scan))
    assert len(posts) == 671 and scan.lines == 1392 and scan.bad_lines == 0
    assert all(DAY <= p.created_utc < DAY + 86400 for p in posts)
    assert all(p.source == "archive" and p.observed_at is None for p in posts)


def test_plain_ndjson_bad_lines_counted(tmp_path):
    path = tmp_path / "dump.ndjson"
    good = {"id": "abc", "title": "hello", "subreddit": "pics", "author": "[deleted]", "created_utc": "100",
            "score": 7, "retrieved_on": 200}
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"id": "x"}) + "\n\n")
    scan = ArchiveScan()
    posts = list(iter_archive_posts(path, 0, 1000, scan))
    assert [p.id for p in posts] == ["abc"] and posts[0].author is None and posts[0].observed_at == 200
    assert scan.bad_lines == 2 and scan.skip_reasons == {"bad_line": 2}


def test_streams_zst_written_by_another_tool(tmp_path):
    path = tmp_path / "d.ndjson.zst"
    lines = "".join(json.dumps({"id": f"i{i}", "title": "t", "subreddit": "s", "created_utc": i}) + "\n" for i in range(50))
    path.write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    assert len(list(iter_archive_posts(path, 10, 20))) == 10
