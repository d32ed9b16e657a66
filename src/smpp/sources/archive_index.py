"""Day index of an archive dump, per subreddit: one streaming pass splits it into per-day files.

Dumps are sorted by time at best (Arctic-Shift) and by subreddit at worst, so selecting a day
means reading the whole file; backfilling a month from a monthly dump would read it 31 times.
The first reader instead splits the dump once into shards, one per selected subreddit (or one
`all` shard for `subreddits: ["*"]`):

    <root>/<key>/dump.json                        source, size, mtime of the dump
    <root>/<key>/r-<subreddit>/ds=YYYY-MM-DD.ndjson   that subreddit's lines created that UTC day
    <root>/<key>/r-<subreddit>/manifest.json      line and per-day counts, bad lines, the scan's costs

Lines are validated while indexing (as a scan would validate them), so a bad line is logged once,
with the dump's path and line number, and counted in the manifest (per day, or `undated_skips`
when it has no usable created_utc) instead of being stored; every read counts them as a scan does.

and every later read opens only the days it needs, so the index's disk is proportional to the
selection, not to all of Reddit. Adding a subreddit later scans the dump once more for only the
missing shards (one scan fills all of them). key = sha256(absolute path, size, mtime, index
format), so a replaced or modified dump gets a fresh index. Shards are built in a temp directory
and renamed into place (readers never see a partial one), under an flock per dump so that
parallel Airflow tasks build them once: the others wait and reuse them. Memory is bounded by
buffering lines per day and flushing all days (one file open at a time) past `flush_bytes`.

Lines longer than SLIM_ABOVE_BYTES (real dumps: 2-10 KB of awards, media and flair metadata)
are stored with only the fields PostRecord reads, which keeps the index a fraction of the
selected lines; short lines are stored byte for byte.
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
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from smpp.sources.archive import (
    LOGGED_PER_REASON,
    SECONDS_PER_DAY,
    ArchiveScan,
    created_or_reason,
    load_line,
    normalize_archive_post,
    observed_at_of,
    post_id_of,
    select_interval,
)
from smpp.sources.archive_select import PROGRESS_EVERY_S, ScanProgress, Selection, iter_candidate_lines, subreddit_of
from smpp.sources.records import DELETED_MARKERS, PostRecord

log = logging.getLogger(__name__)

# Bump when what a day file holds changes (parsing or slimming rules): old indexes are ignored.
INDEX_FORMAT = 3  # 2: per-subreddit shards; 3: lines validated when indexed, undated_skips
MANIFEST = "manifest.json"
DUMP_INFO = "dump.json"
ALL_SHARD = "all"
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SLIM_ABOVE_BYTES = 1024
# What PostRecord.from_reddit_json and smpp.sources.archive read; everything else is dropped
# from long lines. tests/sources/test_archive.py checks a full Arctic-Shift post parses the same.
KEEP_FIELDS = frozenset(
    {
        "id",
        "name",
        "created_utc",
        "subreddit",
        "subreddit_name_prefixed",
        "title",
        "author",
        "author_fullname",
        "selftext",
        "selftext_len",
        "removed_by_category",
        "url",
        "domain",
        "permalink",
        "is_self",
        "over_18",
        "is_gallery",
        "post_hint",
        "preview",
        "gallery_data",
        "media_metadata",
        "link_flair_text",
        "subreddit_subscribers",
        "score",
        "num_comments",
        "upvote_ratio",
        "retrieved_on",
        "retrieved_utc",
        "_meta",
        "crosspost_parent",
    }
)
KEEP_META = ("retrieved_2nd_on", "was_deleted_later", "removal_type")
NOT_BAD = frozenset({"crosspost"})


@dataclass(frozen=True)
class Shard:
    name: str  # "all" or "r-<subreddit>"
    directory: Path
    manifest: dict[str, Any]

    def day_path(self, day: str) -> Path:
        return self.directory / f"ds={day}.ndjson"


def shard_name(subreddit: str | None) -> str:
    return ALL_SHARD if subreddit is None else f"r-{subreddit.lower()}"


def shard_names(selection: Selection) -> list[str]:
    return [ALL_SHARD] if selection.everything else [shard_name(n) for n in sorted(selection.names)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class DayIndex:
    dump: Path
    directory: Path  # <root>/<key>: the dump's shards
    shards: tuple[Shard, ...]  # the selection's shards, by name
    built: bool  # True when this call built some shard (False: all reused)
    day_table: tuple[list[int], list[str]]  # the days with lines or skips, as day numbers and names
    built_shards: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.directory.name

    @property
    def manifest(self) -> dict[str, Any]:
        """The one shard's manifest, or the shards' day counts summed (lines: the dump's)."""
        if len(self.shards) == 1:
            return self.shards[0].manifest
        days: dict[str, int] = {}
        for shard in self.shards:
            for day, count in shard.manifest["days"].items():
                days[day] = days.get(day, 0) + count
        first = self.shards[0].manifest
        return {
            "lines": first["lines"],
            "bad_lines": first["bad_lines"],
            "days": dict(sorted(days.items())),
            "indexed": sum(s.manifest["indexed"] for s in self.shards),
        }

    def day_path(self, day: str) -> Path:
        [shard] = self.shards
        return shard.day_path(day)

    def days_overlapping(self, start_utc: int, end_utc: int) -> list[str]:
        """Indexed days (YYYY-MM-DD, ascending) that overlap [start_utc, end_utc)."""
        if end_utc <= start_utc:
            return []
        numbers, names = self.day_table
        first = bisect_left(numbers, start_utc // SECONDS_PER_DAY)
        return names[first : bisect_right(numbers, (end_utc - 1) // SECONDS_PER_DAY)]

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for s in self.shards for p in s.directory.iterdir())

    def summary(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "key": self.key,
            "source": str(self.dump),
            "built": self.built,
            "built_shards": list(self.built_shards),
            "shards": [s.name for s in self.shards],
            "directory": str(self.shards[0].directory if len(self.shards) == 1 else self.directory),
            "dump_lines": manifest["lines"],
            "dump_bad_lines": manifest["bad_lines"],
            "days": len(manifest["days"]),
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


def ensure_day_index(
    dump: Path,
    root: Path,
    flush_bytes: int = 64 << 20,
    subreddits: Any = None,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> DayIndex:
    """The dump's day index for `subreddits` (None or ["*"]: all) under `root`.

    Shards that do not exist yet are built by this call, all in one scan of the dump.
    """
    dump = Path(dump).resolve()
    if not dump.is_file():
        raise FileNotFoundError(f"archive dump not found: {dump} (set the archive_path param)")
    selection = Selection.of(subreddits)
    wanted = shard_names(selection)
    key = index_key(dump)
    directory = root / key
    built: list[str] = []
    if missing_shards(directory, wanted):
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f".{key}.lock", "a+b") as lock:
            if not _try_lock(lock):
                log.info("archive index %s is being built by another task: waiting", directory)
                fcntl.flock(lock, fcntl.LOCK_EX)
            missing = missing_shards(directory, wanted)  # others may have built some while this one waited
            if missing:
                built = build_missing(dump, root, key, missing, flush_bytes, progress_every_s)
    return load_index(dump, directory, wanted, tuple(built))


def missing_for(dump: Path, root: Path, selection: Selection) -> list[str]:
    """The shards of `selection` the dump's index lacks (what a scan would build)."""
    return missing_shards(root / index_key(Path(dump).resolve()), shard_names(selection))


def missing_shards(directory: Path, wanted: list[str]) -> list[str]:
    return [name for name in wanted if read_finished_index(directory / name) is None]


def build_missing(
    dump: Path, root: Path, key: str, missing: list[str], flush_bytes: int, progress_every_s: float
) -> list[str]:
    """Build the `missing` shards of `dump` in one scan (the caller holds the dump's lock)."""
    directory = root / key
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".building-*"):  # left by a builder that died
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(f".{key}.building-*"):  # format 1 debris
        shutil.rmtree(stale, ignore_errors=True)
    building = directory / f".building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    try:
        build_day_index(dump, building, flush_bytes, shards=missing, progress_every_s=progress_every_s)
        if index_key(dump) != key:
            raise RuntimeError(f"archive dump {dump} changed while it was being indexed: retry")
        info = directory / DUMP_INFO
        if not info.exists():
            stat = dump.stat()
            info.write_text(
                json.dumps(
                    {"format": INDEX_FORMAT, "source": str(dump), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                )
            )
        for name in missing:
            target = directory / name
            if target.exists():  # a finished shard has a manifest; this is debris
                shutil.rmtree(target)
            os.rename(building / name, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    prune_stale_indexes(root, dump, keep=key)
    return missing


def load_index(dump: Path, directory: Path, wanted: list[str], built: tuple[str, ...]) -> DayIndex:
    shards, numbers = [], set()
    for name in wanted:
        finished = read_finished_index(directory / name)
        if finished is None:
            raise RuntimeError(f"archive index shard {directory / name} vanished while being read: retry")
        shards.append(Shard(name, directory / name, finished[0]))
        numbers.update(zip(*finished[1]))
    table = sorted(numbers)
    day_table = ([n for n, _ in table], [d for _, d in table])
    return DayIndex(dump, directory, tuple(shards), built=bool(built), day_table=day_table, built_shards=built)


def prune_stale_indexes(root: Path, dump: Path, keep: str) -> list[str]:
    """Delete the indexes of earlier versions of `dump` (same path, other size/mtime)."""
    removed = []
    for directory in root.iterdir():
        if directory.name == keep or directory.name.startswith(".") or not directory.is_dir():
            continue
        try:
            source = json.loads((directory / DUMP_INFO).read_text()).get("source")
        except (OSError, ValueError):
            try:  # an index of format 1 (one manifest for the whole dump)
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


def build_day_index(
    dump: Path,
    directory: Path,
    flush_bytes: int = 64 << 20,
    shards: list[str] | None = None,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> dict[str, dict[str, Any]]:
    """Split `dump` into the `shards` (default: all) under `directory`, in one pass.

    Each shard gets directory/<shard>/ds=*.ndjson and a manifest; returns the manifests by shard.
    Lines whose raw bytes name none of the shards' subreddits are not parsed (not_selected).
    """
    started = time.monotonic()
    shards = shards or [ALL_SHARD]
    everything = ALL_SHARD in shards
    if everything and len(shards) > 1:
        raise ValueError(f"the {ALL_SHARD} shard is built alone, not with {shards}")
    selection = Selection(None) if everything else Selection(frozenset(n.removeprefix("r-") for n in shards))
    stat = dump.stat()
    log.info("indexing archive %s (%.1f MB) for %s into %s", dump, stat.st_size / 1e6, selection.key, directory)
    files: dict[str, DayFiles] = {}
    budget = max(flush_bytes // len(shards), 1 << 16)
    for name in shards:
        (directory / name).mkdir(parents=True, exist_ok=True)
        files[name] = DayFiles(directory / name, budget)
    bad: dict[str, int] = {}
    scan_skips: dict[str, int] = {}
    day_skips: dict[str, dict[str, dict[str, int]]] = {name: {} for name in shards}
    # bad lines without a usable day: a plain scan counts them on every read, so reads add them
    undated: dict[str, dict[str, int]] = {name: {} for name in shards}
    # a line that does not parse names no subreddit: it is each shard's whose name its bytes hold,
    # as a scan of that selection counts the prefilter's candidates that do not parse
    patterns = {name: Selection(frozenset({name.removeprefix("r-")})).pattern() for name in shards}
    slimmed = dict.fromkeys(shards, 0)
    progress = ScanProgress(dump, stat.st_size, every_s=progress_every_s)
    for line in iter_candidate_lines(dump, selection, progress):
        if not line.strip():
            continue
        day, reason, post_id, stored, subreddit = place_line(line)
        if everything:
            owners = [ALL_SHARD]
        elif reason in ("malformed_json", "not_an_object"):
            owners = [name for name, pattern in patterns.items() if pattern.search(line)]  # type: ignore[union-attr]
        elif selection.keeps(subreddit):
            owners = [shard_name(subreddit)]
        else:  # the prefilter's near misses: pics2, a title "pics", a decoy field
            scan_skips["other_subreddit"] = scan_skips.get("other_subreddit", 0) + 1
            continue
        if reason is None:
            [shard] = owners
            slimmed[shard] += stored is not line
            files[shard].add(day, stored if stored.endswith(b"\n") else stored + b"\n")  # type: ignore[arg-type]
            continue
        if reason not in NOT_BAD:
            bad[reason] = bad.get(reason, 0) + 1
            if bad[reason] <= LOGGED_PER_REASON:
                log.warning(
                    "archive %s:%d: skipped post %s: %s",
                    dump,
                    progress.line_number(line),
                    post_id or "(unknown id)",
                    reason,
                )
        for shard in owners:
            skips = undated[shard] if day is None else day_skips[shard].setdefault(day, {})
            skips[reason] = skips.get(reason, 0) + 1
    scan_skips["not_selected"] = progress.lines - progress.candidates
    seconds = round(time.monotonic() - started, 3)
    log.info("%s: done", progress.line())
    manifests = {}
    for name in shards:
        files[name].flush()
        counts = files[name].counts
        manifest = {
            "format": INDEX_FORMAT,
            "source": str(dump),
            "shard": name,
            "selection": selection.key,  # what the scan that built this shard selected
            "size": stat.st_size,
            "mtime": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            "mtime_ns": stat.st_mtime_ns,
            "lines": progress.lines,
            "parsed": progress.candidates,
            "scan_skips": dict(sorted(scan_skips.items())),
            "indexed": sum(counts.values()),
            "slimmed": slimmed[name],
            "crossposts": sum(s.get("crosspost", 0) for s in day_skips[name].values()),
            "bad_lines": dict(sorted(bad.items())),
            "days": dict(sorted(counts.items())),
            "day_skips": dict(sorted(day_skips[name].items())),
            "undated_skips": dict(sorted(undated[name].items())),
            "created_at": datetime.now(UTC).isoformat(),
            "build_seconds": seconds,
            "decompressed_bytes": progress.decompressed,
        }
        with open(directory / name / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        manifests[name] = manifest
    log.info(
        "indexed %s for %s: %d lines, %d parsed, %d kept, bad lines %s, %.1f s",
        dump,
        selection.key,
        progress.lines,
        progress.candidates,
        sum(m["indexed"] for m in manifests.values()),
        bad,
        seconds,
    )
    return manifests


def place_line(line: bytes) -> tuple[str | None, str | None, str | None, bytes, str | None]:
    """(day, skip reason or None, post id, line to store, subreddit) for one dump line.

    The line is validated as a plain scan validates it (archive.record_from_line), so the day files
    hold only usable lines and the reasons are the scan's; the day is None when it has no usable time.
    """
    try:
        data = load_line(line)
    except ValueError:
        return None, "malformed_json", None, line, None
    if not isinstance(data, dict):
        return None, "not_an_object", None, line, None
    subreddit = subreddit_of(data)
    post_id = post_id_of(data)
    created, reason = created_or_reason(data.get("created_utc"))
    if created is None:
        return None, reason, post_id, line, subreddit
    day = day_name(created // SECONDS_PER_DAY)
    if data.get("crosspost_parent"):
        return day, "crosspost", post_id, line, subreddit
    try:  # normalized in place: the stored line (or its slim form) parses to the same record
        PostRecord.from_reddit_json(normalize_archive_post(data), observed_at=observed_at_of(data), source="archive")
    except (ValueError, TypeError) as exc:
        return day, getattr(exc, "reason", "bad_record"), post_id, line, subreddit
    if len(line) > SLIM_ABOVE_BYTES:
        line = json.dumps(slim_archive_post(data), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    return day, None, post_id, line, subreddit


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
            if isinstance(entry, Mapping)
            and isinstance(entry.get("s"), Mapping)
            and isinstance(entry["s"].get("u"), str)
        }
    meta = slim.get("_meta")
    if isinstance(meta, Mapping):
        slim["_meta"] = {k: meta[k] for k in KEEP_META if k in meta}
    return slim


def iter_indexed_posts(
    index: DayIndex, start_utc: int, end_utc: int, scan: ArchiveScan | None = None
) -> Iterator[PostRecord]:
    """Yield the posts created in [start_utc, end_utc) from the index's day files (every shard).

    scan gets the lines of the days read and, from the manifests, the index-time skips of those
    days (bad lines, crossposts) and the bad lines without a usable day (as a plain scan counts them).
    """
    scan = scan if scan is not None else ArchiveScan()
    scan.index = index.summary()
    scan.indexes.append(scan.index)
    for shard in index.shards:
        for reason, count in shard.manifest.get("undated_skips", {}).items():
            scan.skip_reasons[reason] = scan.skip_reasons.get(reason, 0) + count
            scan.bad_lines += count
    seen: set[str] = set()
    for day in index.days_overlapping(start_utc, end_utc):
        read = False
        for shard in index.shards:
            for reason, count in shard.manifest["day_skips"].get(day, {}).items():
                scan.skip_reasons[reason] = scan.skip_reasons.get(reason, 0) + count
                scan.bad_lines += 0 if reason in NOT_BAD else count
            expected = shard.manifest["days"].get(day, 0)
            if not expected:
                continue
            path = shard.day_path(day)
            before = scan.lines
            with path.open("rb") as fh:
                yield from select_interval(fh, start_utc, end_utc, scan, f"{shard.name}/{path.name}", seen)
            if scan.lines - before != expected:
                raise RuntimeError(
                    f"archive index day file {path} has {scan.lines - before} lines, its manifest says "
                    f"{expected}: delete {index.directory} to rebuild the index"
                )
            read = True
        scan.days_read += read
