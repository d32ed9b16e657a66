"""The posts of an interval from a folder of dumps: the files that can hold it, each read by its day index.

Backfilling N days from one monthly file reads it once (the index build), not N times.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from smpp.settings import get_settings
from smpp.sources.archive import ArchiveScan, scan_archive_posts
from smpp.sources.archive_index import ensure_day_index, iter_indexed_posts
from smpp.sources.archive_select import Selection, pick_files
from smpp.sources.records import PostRecord


def iter_archive_posts(
    path: Path,
    start_utc: int,
    end_utc: int,
    scan: ArchiveScan | None = None,
    *,
    settings: Any = None,
    subreddits: Iterable[str] | None = None,
) -> Iterator[PostRecord]:
    """Yield the posts created in [start_utc, end_utc); bad lines are counted, not fatal.

    path: a dump file, a directory of dumps or a glob (smpp.sources.archive_select.pick_files
    picks the files that can hold the interval). subreddits: only these (None or ["*"]: all).
    Reads each file's day index for the selection (built once, on first use, under
    data_dir/archive_index) unless settings.archive_use_index is off; then it scans the files.
    """
    settings = settings if settings is not None else get_settings()
    scan = scan if scan is not None else ArchiveScan()
    selection = Selection.of(subreddits)
    seen: set[str] = set()  # across files: a month file and a subreddit file can hold the same post
    for dump, wanted in pick_files(path, start_utc, end_utc, selection):
        records = _file_posts(dump.path, start_utc, end_utc, scan, settings, wanted)
        for record in records:
            if record.id in seen:
                scan.skip("duplicate_id", record.id, bad=False)
                scan.selected -= 1
                continue
            seen.add(record.id)
            yield record


def _file_posts(path: Path, start_utc: int, end_utc: int, scan: ArchiveScan, settings: Any, selection: Any):
    if not settings.archive_use_index:
        yield from scan_archive_posts(path, start_utc, end_utc, scan, None if selection.everything else selection.names)
        return
    index = ensure_day_index(
        path,
        settings.data_dir / "archive_index",
        flush_bytes=settings.archive_index_flush_mb << 20,
        subreddits=None if selection.everything else sorted(selection.names),
        progress_every_s=settings.archive_progress_every_s,
    )
    yield from iter_indexed_posts(index, start_utc, end_utc, scan)
