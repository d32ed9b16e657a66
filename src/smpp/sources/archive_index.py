"""Day index of an archive dump: one streaming pass splits it into per-day files.

Dumps are sorted by time at best (Arctic-Shift) and by subreddit at worst, so selecting a day
means reading the whole file; backfilling a month from a monthly dump would read it 31 times.
The first reader instead splits the dump once into

    <root>/<key>/ds=YYYY-MM-DD.ndjson   the lines created that UTC day (dump order)
    <root>/<key>/manifest.json          source, size, mtime, line and per-day counts, bad lines

and every later read opens only the days it needs. key = sha256(absolute path, size, mtime,
index format), so a replaced or modified dump gets a fresh index. The index is built in a temp
directory and renamed into place (readers never see a partial one), under an flock so that
parallel Airflow tasks build it once: the others wait and reuse it. Memory is bounded by
buffering lines per day and flushing all days (one file open at a time) past `flush_bytes`.

Lines longer than SLIM_ABOVE_BYTES (real dumps: 2-10 KB of awards, media and flair metadata)
are stored with only the fields PostRecord reads, which keeps the index a fraction of the
decompressed dump; short lines are stored byte for byte.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from smpp.sources.archive import (
    LOGGED_PER_REASON,
    SECONDS_PER_DAY,
    ArchiveScan,
    created_of,
    load_line,
    open_binary,
    post_id_of,
    select_interval,
)
from smpp.sources.records import DELETED_MARKERS, PostRecord

log = logging.getLogger(__name__)

# Bump when what a day file holds changes (parsing or slimming rules): old indexes are ignored.
INDEX_FORMAT = 1
MANIFEST = "manifest.json"
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SLIM_ABOVE_BYTES = 1024
# What PostRecord.from_reddit_json and smpp.sources.archive read; everything else is dropped
# from long lines. tests/sources/test_archive.py checks a full Arctic-Shift post parses the same.
KEEP_FIELDS = frozenset({
    "id", "name", "created_utc", "subreddit", "subreddit_name_prefixed", "title", "author",
    "author_fullname", "selftext", "selftext_len", "removed_by_category", "url", "domain",
    "permalink", "is_self", "over_18", "is_gallery", "post_hint", "preview", "gallery_data",
    "media_metadata", "link_flair_text", "subreddit_subscribers", "score", "num_comments",
    "upvote_ratio", "retrieved_on", "retrieved_utc", "_meta", "crosspost_parent",
})
KEEP_META = ("retrieved_2nd_on", "was_deleted_later", "removal_type")
NOT_BAD = frozenset({"crosspost"})


@dataclass(frozen=True)
class DayIndex:
    dump: Path
    directory: Path
    manifest: dict[str, Any]
    built: bool  # True when this call built it (False: reused)
    day_table: tuple[list[int], list[str]]  # the days with lines or skips, as day numbers and names

    @property
    def key(self) -> str:
        return self.directory.name

    def day_path(self, day: str) -> Path:
        return self.directory / f"ds={day}.ndjson"

    def days_overlapping(self, start_utc: int, end_utc: int) -> list[str]:
        """Indexed days (YYYY-MM-DD, ascending) that overlap [start_utc, end_utc)."""
        if end_utc <= start_utc:
            return []
        numbers, names = self.day_table
        first = bisect_left(numbers, start_utc // SECONDS_PER_DAY)
        return names[first : bisect_right(numbers, (end_utc - 1) // SECONDS_PER_DAY)]

    def summary(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "built": self.built,
            "directory": str(self.directory),
            "dump_lines": self.manifest["lines"],
            "dump_bad_lines": self.manifest["bad_lines"],
            "days": len(self.manifest["days"]),
        }


@lru_cache(maxsize=65536)
def day_name(day: int) -> str:
    return date.fromordinal(EPOCH_ORDINAL + day).isoformat()


def day_number(name: str) -> int:
    return date.fromisoformat(name).toordinal() - EPOCH_ORDINAL


def index_key(dump: Path) -> str:
    dump = Path(dump).resolve()
    stat = dump.stat()
    ident = f"{dump}\0{stat.st_size}\0{stat.st_mtime_ns}\0{INDEX_FORMAT}"
    return hashlib.sha256(ident.encode()).hexdigest()


# A finished index never changes, so one process (a benchmark, a worker) parses it once.
_finished: dict[Path, tuple[tuple[int, int], dict[str, Any], tuple[list[int], list[str]]]] = {}


def read_finished_index(directory: Path) -> tuple[dict[str, Any], tuple[list[int], list[str]]] | None:
    """(manifest, day table) of the finished index in `directory`; None when there is none."""
    path = directory / MANIFEST
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    signature = (stat.st_ino, stat.st_mtime_ns)  # a rebuilt index has a new manifest file
    cached = _finished.get(path)
    if cached is None or cached[0] != signature:
        manifest = json.loads(path.read_text())
        names = sorted(set(manifest["days"]) | set(manifest["day_skips"]))
        cached = _finished[path] = (signature, manifest, ([day_number(d) for d in names], names))
    return cached[1], cached[2]


def ensure_day_index(dump: Path, root: Path, flush_bytes: int = 64 << 20) -> DayIndex:
    """The dump's day index under `root`, built by this call if no finished one exists."""
    dump = Path(dump).resolve()
    if not dump.is_file():
        raise FileNotFoundError(f"archive dump not found: {dump} (set the archive_path param)")
    key = index_key(dump)
    directory = root / key
    finished = read_finished_index(directory)
    if finished is not None:
        return DayIndex(dump, directory, finished[0], built=False, day_table=finished[1])
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "a+b") as lock:
        if not _try_lock(lock):
            log.info("archive index %s is being built by another task: waiting", directory)
            fcntl.flock(lock, fcntl.LOCK_EX)
        finished = read_finished_index(directory)
        if finished is not None:  # built by another task while this one waited
            return DayIndex(dump, directory, finished[0], built=False, day_table=finished[1])
        for stale in root.glob(f".{key}.building-*"):  # left by a builder that died
            shutil.rmtree(stale, ignore_errors=True)
        building = root / f".{key}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        building.mkdir()
        try:
            build_day_index(dump, building, flush_bytes)
            if index_key(dump) != key:
                raise RuntimeError(f"archive dump {dump} changed while it was being indexed: retry")
            if directory.exists():  # a finished index has a manifest; this is debris
                shutil.rmtree(directory)
            os.rename(building, directory)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        prune_stale_indexes(root, dump, keep=key)
    manifest, day_table = read_finished_index(directory)  # type: ignore[misc]
    return DayIndex(dump, directory, manifest, built=True, day_table=day_table)


def prune_stale_indexes(root: Path, dump: Path, keep: str) -> list[str]:
    """Delete the indexes of earlier versions of `dump` (same path, other size/mtime)."""
    removed = []
    for directory in root.iterdir():
        if directory.name == keep or directory.name.startswith(".") or not directory.is_dir():
            continue
        try:
            source = json.loads((directory / MANIFEST).read_text()).get("source")
        except (OSError, ValueError):
            continue  # not a finished index: its builder cleans up
        if source == str(dump):
            shutil.rmtree(directory, ignore_errors=True)
            (root / f".{directory.name}.lock").unlink(missing_ok=True)
            removed.append(directory.name)
    if removed:
        log.info("archive %s changed: removed %d stale day index(es) %s", dump, len(removed), removed)
    return removed


def _try_lock(lock) -> bool:  # noqa: ANN001 - an open file
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class DayFiles:
    """Appends lines to per-day files, buffering at most ~flush_bytes in memory."""

    def __init__(self, directory: Path, flush_bytes: int):
        self.directory = directory
        self.flush_bytes = flush_bytes
        self.buffers: dict[str, list[bytes]] = {}
        self.buffered = 0
        self.counts: dict[str, int] = {}

    def add(self, day: str, line: bytes) -> None:
        buffer = self.buffers.get(day)
        if buffer is None:
            buffer = self.buffers[day] = []
            self.counts.setdefault(day, 0)
        buffer.append(line)
        self.counts[day] += 1
        self.buffered += len(line)
        if self.buffered >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        for day, lines in self.buffers.items():
            with open(self.directory / f"ds={day}.ndjson", "ab") as fh:
                fh.writelines(lines)
        self.buffers.clear()
        self.buffered = 0


def build_day_index(dump: Path, directory: Path, flush_bytes: int = 64 << 20) -> dict[str, Any]:
    """Split `dump` into day files in `directory` (one pass) and write its manifest there."""
    started = time.monotonic()
    stat = dump.stat()
    log.info("indexing archive %s (%.1f MB) into %s", dump, stat.st_size / 1e6, directory)
    files = DayFiles(directory, flush_bytes)
    bad: dict[str, int] = {}
    day_skips: dict[str, dict[str, int]] = {}
    lines = slimmed = 0
    with open_binary(dump) as stream:
        for line in stream:
            lines += 1
            if not line.strip():
                continue
            day, reason, post_id, stored = place_line(line)
            if reason is None:
                slimmed += stored is not line
                files.add(day, stored if stored.endswith(b"\n") else stored + b"\n")
                continue
            if reason not in NOT_BAD:
                bad[reason] = bad.get(reason, 0) + 1
                if bad[reason] <= LOGGED_PER_REASON:
                    log.warning("archive %s:%d: skipped post %s: %s", dump, lines, post_id or "(unknown id)", reason)
            if day is not None:
                skips = day_skips.setdefault(day, {})
                skips[reason] = skips.get(reason, 0) + 1
    files.flush()
    manifest = {
        "format": INDEX_FORMAT,
        "source": str(dump),
        "size": stat.st_size,
        "mtime": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(),
        "mtime_ns": stat.st_mtime_ns,
        "lines": lines,
        "indexed": sum(files.counts.values()),
        "slimmed": slimmed,
        "crossposts": sum(s.get("crosspost", 0) for s in day_skips.values()),
        "bad_lines": dict(sorted(bad.items())),
        "days": dict(sorted(files.counts.items())),
        "day_skips": dict(sorted(day_skips.items())),
        "created_at": datetime.now(timezone.utc).isoformat(),
        "build_seconds": round(time.monotonic() - started, 3),
    }
    manifest_path = directory / MANIFEST
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    log.info(
        "indexed %s: %d lines, %d days, bad lines %s, %.1f s",
        dump, lines, len(files.counts), manifest["bad_lines"], manifest["build_seconds"],
    )
    return manifest


def place_line(line: bytes) -> tuple[str | None, str | None, str | None, bytes]:
    """(day, skip reason or None, post id, line to store) for one dump line.

    Only what decides the day is checked here; the rest is validated when the day is read,
    exactly as a plain scan does.
    """
    try:
        data = load_line(line)
    except ValueError:
        return None, "malformed_json", None, line
    if not isinstance(data, dict):
        return None, "not_an_object", None, line
    post_id = post_id_of(data)
    value = data.get("created_utc")
    created = created_of(value)
    if created is None:
        return None, "missing_created_utc" if value is None or value == "" else "bad_created_utc", post_id, line
    try:
        day = day_name(created // SECONDS_PER_DAY)
    except (ValueError, OverflowError):
        return None, "bad_created_utc", post_id, line
    if post_id is None:
        return day, "missing_id", None, line
    if data.get("crosspost_parent"):
        return day, "crosspost", post_id, line
    if len(line) > SLIM_ABOVE_BYTES:
        line = json.dumps(slim_archive_post(data), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    return day, None, post_id, line


def slim_archive_post(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields PostRecord reads, with the bulky ones cut to what it uses (same record)."""
    slim = {k: v for k, v in data.items() if k in KEEP_FIELDS}
    selftext = slim.get("selftext")
    if isinstance(selftext, str) and selftext not in DELETED_MARKERS:
        del slim["selftext"]
        if slim.get("selftext_len") in (None, ""):
            slim["selftext_len"] = len(selftext)
    preview = slim.pop("preview", None)
    try:
        url = preview["images"][0]["source"]["url"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        url = None
    if isinstance(url, str) and url:
        slim["preview"] = {"images": [{"source": {"url": url}}]}
    metadata = slim.get("media_metadata")
    if isinstance(metadata, Mapping):
        slim["media_metadata"] = {
            key: {"s": {"u": entry["s"]["u"]}}
            for key, entry in metadata.items()
            if isinstance(entry, Mapping) and isinstance(entry.get("s"), Mapping) and isinstance(entry["s"].get("u"), str)
        }
    meta = slim.get("_meta")
    if isinstance(meta, Mapping):
        slim["_meta"] = {k: meta[k] for k in KEEP_META if k in meta}
    return slim


def iter_indexed_posts(
    index: DayIndex, start_utc: int, end_utc: int, scan: ArchiveScan | None = None
) -> Iterator[PostRecord]:
    """Yield the posts created in [start_utc, end_utc) from the index's day files.

    scan gets the lines of the days read, their bad lines, and the index-time skips
    (crossposts, lines without an id) of those days from the manifest.
    """
    scan = scan if scan is not None else ArchiveScan()
    scan.index = index.summary()
    seen: set[str] = set()
    for day in index.days_overlapping(start_utc, end_utc):
        for reason, count in index.manifest["day_skips"].get(day, {}).items():
            scan.skip_reasons[reason] = scan.skip_reasons.get(reason, 0) + count
            scan.bad_lines += 0 if reason in NOT_BAD else count
        expected = index.manifest["days"].get(day, 0)
        if not expected:
            continue
        path = index.day_path(day)
        before = scan.lines
        with path.open("rb") as fh:
            yield from select_interval(fh, start_utc, end_utc, scan, path.name, seen)
        if scan.lines - before != expected:
            raise RuntimeError(
                f"archive index day file {path} has {scan.lines - before} lines, its manifest says "
                f"{expected}: delete {index.directory} to rebuild the index"
            )
        scan.days_read += 1
