"""Reddit archive dumps (Pushshift / Arctic-Shift submissions, NDJSON, plain or .zst), streamed.

History cannot be re-scraped from the API (listings stop at ~1000 items), so backfilled
days come from dumps. Memory stays constant: one line at a time, never the whole file.

This module parses and streams one dump; `smpp.sources.dumps.iter_archive_posts` picks the files
of an interval and reads each through its per-day index (smpp.sources.archive_index), built by one
streaming pass on first use. `scan_archive_posts` is the plain streaming scan.

Field names differ between dumps; what this module accepts:
- created_utc: int, float or numeric string (Arctic-Shift has both).
- id with or without name ("t3_..."); author_fullname present, null or absent.
- subreddit, or only subreddit_name_prefixed ("r/pics").
- when the counters were seen: _meta.retrieved_2nd_on (Arctic-Shift 2023-11+ re-reads score,
  num_comments and upvote_ratio ~36 h later), else retrieved_on, else retrieved_utc.
- removals: removed_by_category set, "[removed]"/"[deleted]" title or selftext, or
  _meta.was_deleted_later (Arctic-Shift: gone at the second read) -> record.removed, so
  ingestion tombstones it. An author "[deleted]" alone is NOT a removal in a dump: the
  account was deleted but the post stays up on Reddit, so it is kept with author None.
- crossposts (crosspost_parent) are skipped and counted: their content belongs to the parent.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from smpp.sources.archive_select import ScanProgress, Selection, decompressed_chunks, iter_candidate_lines, subreddit_of
from smpp.sources.records import CREATED_RANGE, PostRecord

log = logging.getLogger(__name__)

# After _meta.retrieved_2nd_on (the later read), in the order dumps name the first read.
RETRIEVED_KEYS = ("retrieved_on", "retrieved_utc")
LOGGED_PER_REASON = 10  # a bad dump can have millions of bad lines: log a few, count all
SECONDS_PER_DAY = 86_400


@dataclass
class ArchiveScan:
    """What one read of an archive saw.

    lines: lines read (the whole dump for a scan; the selected day files for an indexed read).
    skip_reasons: reason -> count; bad_lines counts the malformed ones among them (not
    crossposts or duplicates). index: the day index used (key, built, dump totals) or None.
    """

    lines: int = 0
    selected: int = 0
    bad_lines: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    days_read: int = 0
    index: dict[str, Any] | None = None  # the last file's index (kept for one-file callers)
    indexes: list[dict[str, Any]] = field(default_factory=list)  # every file's index read
    files: list[dict[str, Any]] = field(default_factory=list)  # plain scans: what each read

    def skip(
        self, reason: str, post_id: str | None = None, where: str | Callable[[], str] = "", bad: bool = True
    ) -> None:
        """Count a skipped line; where (the dump and line, or a callable giving it) is logged for a few."""
        count = self.skip_reasons.get(reason, 0) + 1
        self.skip_reasons[reason] = count
        if bad:
            self.bad_lines += 1
            if count <= LOGGED_PER_REASON:
                where = where() if callable(where) else where
                log.warning("archive %s: skipped post %s: %s", where, post_id or "(unknown id)", reason)


class _ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._chunk:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._chunk = memoryview(chunk)
        size = min(len(buffer), len(self._chunk))
        buffer[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size

    def close(self) -> None:
        self._chunks.close()  # type: ignore[attr-defined]
        super().close()


def open_binary(path: Path) -> IO[bytes]:
    """The dump's decompressed bytes (zstd detected by its magic), buffered for fast line iteration.

    Read through archive_select.decompressed_chunks, so a truncated, corrupt or misnamed .zst raises
    ArchiveReadError naming the file and byte offset (a bare stream_reader read a cut file as short).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive dump not found: {path} (set the archive_path param)")
    chunks = decompressed_chunks(path, ScanProgress(path, path.stat().st_size))
    return io.BufferedReader(_ChunkStream(chunks), buffer_size=1 << 20)


try:  # 5x faster than json.loads on dump lines; pinned in requirements.lock (via Airflow)
    from msgspec.json import Decoder as _MsgspecDecoder

    _decode_json = _MsgspecDecoder().decode
except ImportError:  # pragma: no cover - same results, slower
    _decode_json = json.loads


def load_line(line: bytes | str) -> Any:
    """Parse one JSON line (ValueError when malformed); invalid UTF-8 is replaced, not fatal."""
    try:
        return _decode_json(line)
    except UnicodeDecodeError:
        return _decode_json(line.decode("utf-8", errors="replace"))  # type: ignore[union-attr]


def post_id_of(data: Mapping[str, Any]) -> str | None:
    raw = data.get("id") or data.get("name")
    return str(raw).removeprefix("t3_") if raw else None


def created_of(value: Any) -> int | None:
    """created_utc as whole seconds (as PostRecord truncates it); None when not a number."""
    if type(value) is int:  # the common case (bool is not int here: True is no timestamp)
        return value
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def created_or_reason(value: Any) -> tuple[int | None, str | None]:
    """(created_utc in whole seconds, None), or (None, skip reason) when it names no day.

    A plain scan and the day index (archive_index.place_line) both decide with this, so both
    count the lines without a usable time alike.
    """
    created = created_of(value)
    if created is None:
        return None, "missing_created_utc" if value is None or value == "" else "bad_created_utc"
    if not CREATED_RANGE[0] <= created <= CREATED_RANGE[1]:  # no date can name its day
        return None, "bad_created_utc"
    return created, None


def observed_at_of(data: Mapping[str, Any]) -> int | None:
    meta = data.get("_meta")
    if isinstance(meta, Mapping):
        seconds = created_of(meta.get("retrieved_2nd_on"))
        if seconds is not None and seconds > 0:
            return seconds
    for key in RETRIEVED_KEYS:
        value = data.get(key)
        if value is not None:
            seconds = created_of(value)
            if seconds is not None and seconds > 0:
                return seconds
    return None


def normalize_archive_post(data: dict[str, Any]) -> dict[str, Any]:
    """Map dump-specific field names onto the Reddit API names PostRecord reads (in place)."""
    if not data.get("subreddit"):
        name = subreddit_of(data)
        if name:
            data["subreddit"] = name
    meta = data.get("_meta")
    if meta is None:
        return data
    if isinstance(meta, Mapping) and meta.get("was_deleted_later") and not data.get("removed_by_category"):
        # deleted on Reddit after the first read: Reddit's terms require us to drop it too
        data["removed_by_category"] = meta.get("removal_type") or "deleted"
    return data


def record_from_line(
    line: bytes | str,
    scan: ArchiveScan,
    where: str | Callable[[], str],
    start_utc: int,
    end_utc: int,
    selection: Any = None,
) -> PostRecord | None:
    """The line's record if it was created in [start_utc, end_utc) (in `selection`, when given).

    Lines of other times are passed over unvalidated (a scan reads the whole dump); bad or
    skipped lines of the interval, and lines without a usable time, are counted on `scan`.
    where: the dump and line number for the log (a callable: only computed for a logged line).
    """
    try:
        data = load_line(line)
    except ValueError:
        scan.skip("malformed_json", where=where)
        return None
    if not isinstance(data, dict):
        scan.skip("not_an_object", where=where)
        return None
    created, reason = created_or_reason(data.get("created_utc"))
    if created is not None and not (start_utc <= created < end_utc):
        return None
    if selection is not None and not selection.everything and not selection.keeps(subreddit_of(data)):
        scan.skip("other_subreddit", bad=False)  # the prefilter's near misses: pics2, a title "pics"
        return None
    if reason is not None:  # no day: a bad line of every interval read (the index counts it so too)
        scan.skip(reason, post_id_of(data), where)
        return None
    if data.get("crosspost_parent"):
        scan.skip("crosspost", post_id_of(data), where, bad=False)
        return None
    try:
        return PostRecord.from_reddit_json(
            normalize_archive_post(data), observed_at=observed_at_of(data), source="archive"
        )
    except (ValueError, TypeError) as exc:
        scan.skip(
            getattr(exc, "reason", "bad_record"),
            post_id_of(data),
            lambda exc=exc: f"{where() if callable(where) else where} ({exc})",
        )
        return None


def select_interval(
    lines: Iterable[bytes],
    start_utc: int,
    end_utc: int,
    scan: ArchiveScan,
    where: str,
    seen: set[str],
    selection: Any = None,
    line_number: Callable[[bytes], int] | None = None,
) -> Iterator[PostRecord]:
    """The records of `lines` created in [start_utc, end_utc), each id once.

    line_number: a line's number in `where` (default: its position among `lines`), for the log.
    """
    line = b""
    # one closure, reading the loop's current line when a skip is logged (no cost per line)
    if line_number is None:
        first = scan.lines

        def locate() -> str:
            return f"{where}:{scan.lines - first}"
    else:

        def locate() -> str:
            return f"{where}:{line_number(line)}"

    for line in lines:
        scan.lines += 1
        if not line.strip():
            continue
        record = record_from_line(line, scan, locate, start_utc, end_utc, selection)
        if record is None:
            continue
        if record.id in seen:
            # some Pushshift months hold a post twice; one upsert batch must not hit a row twice
            scan.skip("duplicate_id", record.id, bad=False)
            continue
        seen.add(record.id)
        scan.selected += 1
        yield record


def scan_archive_posts(
    path: Path,
    start_utc: int,
    end_utc: int,
    scan: ArchiveScan | None = None,
    subreddits: Iterable[str] | None = None,
) -> Iterator[PostRecord]:
    """Yield the posts created in [start_utc, end_utc) by streaming the whole dump once.

    subreddits: only these (case-insensitive; None or ["*"]: all); other lines are rejected on
    their raw bytes and counted as not_selected, without being parsed.
    """
    scan = scan if scan is not None else ArchiveScan()
    selection = Selection.of(subreddits)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive dump not found: {path} (set the archive_path param)")
    progress = ScanProgress(path, path.stat().st_size)
    before = scan.lines
    yield from select_interval(
        iter_candidate_lines(path, selection, progress),
        start_utc,
        end_utc,
        scan,
        str(path),
        set(),
        selection,
        line_number=progress.line_number,
    )
    scan.lines = before + progress.lines  # every line of the dump, parsed or not
    if progress.lines > progress.candidates:
        scan.skip_reasons["not_selected"] = (
            scan.skip_reasons.get("not_selected", 0) + progress.lines - progress.candidates
        )
    scan.files.append(progress.summary())
    if scan.bad_lines:
        log.warning("archive %s: %d bad lines skipped %s", path, scan.bad_lines, scan.skip_reasons)
