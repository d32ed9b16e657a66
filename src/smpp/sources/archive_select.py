"""Reading real dumps fast: subreddit selection, raw-bytes prefilter, file picking, zstd streaming.

Real dumps hold all of Reddit (Arctic Shift `RS_YYYY-MM.zst`: ~40 M posts a month, 2-10 KB lines,
zstd with a 2 GiB window), and a user wants a few subreddits. Parsing every line costs ~10x the
decompression, so a line is parsed only when its raw bytes hold a configured name as a whole JSON
string (`"pics"` or `"r/pics"`, any case, any spacing around the colon): a superset of the lines
selected, confirmed by a real parse, so a title "pics" or a subreddit `pics2` is never selected.
Subreddit names are [A-Za-z0-9_], which JSON never escapes, so the prefilter drops no selected line.

Decompression runs in a `zstd` child process when the CLI is installed (python zstandard holds
the GIL, so a thread would not overlap it). With GNU grep installed, the prefilter runs in a grep
child fed by zstd's pipe (`zstd -dc | grep -E -i`): the two share the cores and this process only
parses the candidates, so a scan costs ~1.3x `zstd -dc | wc -l` instead of ~1.8x with the search
in Python. A sentinel line after the dump gives grep's line count, so the counts stay exact.
Without the CLIs, python zstandard decompresses in-process and Python searches.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Skippable frames (0x184D2A50-0x184D2A5F, little-endian): pzstd puts one before every frame.
SKIPPABLE_MAGIC_TAIL = b"\x2a\x4d\x18"
COMPRESSED_READ = 1 << 20  # compressed bytes per decompress call (~10 MB out on real dumps)
PLAIN_READ = 8 << 20
SUBREDDIT_KEY = b'"subreddit":"'  # as real dumps write it (keys sorted, no spaces)
PROGRESS_EVERY_S = 30.0
# Decompress with this CLI when it is installed (in a child process: twice the speed of python
# zstandard in-process, which holds the GIL); None or absent: python zstandard.
ZSTD_CLI: str | None = "zstd"
# Prefilter with this grep (POSIX ERE, -i in the C locale: ASCII case folding, as bytes.lower()).
GREP_CLI: str | None = "grep"
GREPPABLE_NAME = re.compile(r"[a-z0-9_]+")  # subreddit names; anything else takes the Python search
DUMP_SUFFIXES = (".zst", ".ndjson", ".jsonl", ".json", ".ndjson.zst", ".jsonl.zst")
MONTHLY = re.compile(r"^RS_(\d{4})-(\d{2})(\.ndjson|\.jsonl)?(\.zst)?$")
PER_SUBREDDIT = re.compile(r"^([A-Za-z0-9_]+)_submissions(\.ndjson|\.jsonl)?(\.zst)?$")
ALL = "*"


class ArchiveReadError(ValueError):
    """A dump that cannot be read: not zstd, truncated or corrupt; names the file and byte offset."""


# ---------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """The subreddits to keep, lower-cased; names=None is everything (`["*"]`, an explicit opt-in)."""

    names: frozenset[str] | None

    @classmethod
    def of(cls, subreddits: Iterable[str] | str | None) -> Selection:
        if subreddits is None:
            return cls(None)
        if isinstance(subreddits, str):
            subreddits = [subreddits]
        names = set()
        for raw in subreddits:
            name = str(raw).strip().lower().removeprefix("r/")
            if name == ALL:
                return cls(None)
            if name:
                names.add(name)
        if not names:
            raise ValueError('no subreddits selected: list some, or ["*"] for every subreddit of the dump')
        return cls(frozenset(names))

    @property
    def everything(self) -> bool:
        return self.names is None

    @property
    def key(self) -> str:
        return ALL if self.names is None else ",".join(sorted(self.names))

    def keeps(self, subreddit: str | None) -> bool:
        return self.names is None or (subreddit is not None and subreddit.lower() in self.names)

    def narrowed(self, other: Selection) -> Selection | None:
        """The intersection (None when empty): a per-subreddit file under this selection."""
        if self.names is None:
            return other
        if other.names is None:
            return self
        both = self.names & other.names
        return Selection(frozenset(both)) if both else None

    def needles(self) -> list[bytes]:
        """The names, lower-cased, as bytes: what _candidate_spans finds in a lower-cased chunk."""
        return [n.encode() for n in sorted(self.names or ())]

    def pattern(self) -> re.Pattern[bytes] | None:
        """The raw-bytes prefilter: a name as a whole JSON string, optionally r/ (or r\\/) first."""
        if self.names is None:
            return None
        names = b"|".join(re.escape(n.encode()) for n in sorted(self.names, key=len, reverse=True))
        return re.compile(rb'"(?:r\\?/)?(?:' + names + rb')"', re.IGNORECASE)


def subreddit_of(data: dict) -> str | None:
    """subreddit, else subreddit_name_prefixed without "r/" (some dumps carry only that)."""
    name = data.get("subreddit")
    if isinstance(name, str) and name:
        return name
    prefixed = data.get("subreddit_name_prefixed")
    if isinstance(prefixed, str) and prefixed[:2].lower() == "r/":
        return prefixed[2:]
    return None


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class DumpFile:
    path: Path
    kind: str  # "monthly" | "subreddit" | "other"
    month: tuple[int, int] | None = None  # monthly: (year, month)
    subreddit: str | None = None  # per-subreddit file: its name, lower-cased

    def month_span(self) -> tuple[int, int]:
        year, month = self.month  # type: ignore[misc]
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        return int(start.timestamp()), int(end.timestamp())

    def selection_for(self, selection: Selection) -> Selection | None:
        """What to read from this file for `selection`; None when it holds nothing of it."""
        if self.kind != "subreddit":
            return selection
        return selection.narrowed(Selection(frozenset({self.subreddit})))  # type: ignore[arg-type]

    def can_hold(self, start_utc: int, end_utc: int) -> bool:
        if self.kind != "monthly":
            return True  # per-subreddit and other files: their days are known after the first scan
        first, last = self.month_span()
        return first < end_utc and start_utc < last


def classify(path: Path) -> DumpFile:
    name = path.name
    monthly = MONTHLY.match(name)
    if monthly:
        return DumpFile(path, "monthly", month=(int(monthly.group(1)), int(monthly.group(2))))
    per_sub = PER_SUBREDDIT.match(name)
    if per_sub:
        return DumpFile(path, "subreddit", subreddit=per_sub.group(1).lower())
    return DumpFile(path, "other")


def list_dump_files(archive_path: Path | str) -> list[DumpFile]:
    """The dump files `archive_path` names: a file, a directory (its dump files) or a glob."""
    text = str(archive_path)
    path = Path(text).expanduser()
    if path.is_file():
        return [classify(path.resolve())]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DUMP_SUFFIXES))
    elif glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
    else:
        raise FileNotFoundError(f"archive dump not found: {path} (set the archive_path param)")
    return [classify(p.resolve()) for p in found]


def pick_files(
    archive_path: Path | str, start_utc: int, end_utc: int, selection: Selection
) -> list[tuple[DumpFile, Selection]]:
    """The files that can hold [start_utc, end_utc) for `selection`, with what to read from each.

    A single named file is always read (whatever its name); from a directory or glob: the months
    overlapping the interval, the configured subreddits' files, and files of other names.
    """
    files = list_dump_files(archive_path)
    single = Path(str(archive_path)).expanduser().is_file()
    picked = []
    for dump in files:
        wanted = dump.selection_for(selection)
        if wanted is None or not (single or dump.can_hold(start_utc, end_utc)):
            continue
        picked.append((dump, wanted))
    if not picked:
        day = datetime.fromtimestamp(start_utc, UTC).date().isoformat()
        seen = ", ".join(f"{f.path.name} ({f.kind})" for f in files) or "no dump files"
        raise FileNotFoundError(
            f"no archive file in {archive_path} can hold {day} for subreddits {selection.key}: found {seen}. "
            "Expected RS_YYYY-MM.zst monthly files, <subreddit>_submissions.zst files or other .zst/.ndjson dumps"
        )
    return picked


# ---------------------------------------------------------------- streaming


@dataclass
class ScanProgress:
    """Counters of one streaming pass, logged every `every_s` seconds."""

    path: Path
    total_bytes: int
    every_s: float = PROGRESS_EVERY_S
    compressed_read: int = 0  # bytes of the file read so far (percent and ETA)
    decompressed: int = 0
    lines: int = 0
    candidates: int = 0  # lines that passed the prefilter
    started: float = field(default_factory=time.monotonic)
    last_log: float = field(default_factory=time.monotonic)
    # the chunk being split into lines and the dump's line count before it (set by
    # decompressed_chunks): what line_number needs, at no cost per line
    chunk: bytes | None = field(default=None, repr=False)
    lines_before_chunk: int = 0
    # the line last yielded by the grep prefilter and its number in the dump (grep -n counts them)
    numbered_line: bytes | None = field(default=None, repr=False)
    numbered: int = 0

    def line_number(self, line: bytes) -> int:
        """The dump's 1-based line number of `line`, a line of the chunk being read (for messages:
        it searches the chunk). A line equal to an earlier one of the chunk gets that one's number."""
        if line is self.numbered_line:
            return self.numbered
        chunk = self.chunk
        if chunk is None:  # the dump's last line, without a newline: read after the last chunk
            return self.lines
        at = chunk.find(line)
        while at > 0 and chunk[at - 1] != 10:  # a match inside a longer line
            at = chunk.find(line, at + 1)
        if at < 0:  # began in an earlier chunk: it ends at this one's first newline
            return self.lines_before_chunk + 1
        return self.lines_before_chunk + chunk.count(b"\n", 0, at) + 1

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_log >= self.every_s:
            self.last_log = now
            log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = self.compressed_read / self.total_bytes if self.total_bytes else 1.0
        eta = elapsed * (1 - done) / done if done > 0 else float("nan")
        return (
            f"archive {self.path.name}: {100 * done:.1f}% of {self.total_bytes / 1e6:.0f} MB, "
            f"{self.decompressed / 1e6 / elapsed:.0f} MB/s decompressed, {self.lines / elapsed:,.0f} lines/s, "
            f"{self.lines:,} lines, {self.candidates:,} candidates, ETA {eta:.0f} s"
        )

    def summary(self) -> dict:
        elapsed = time.monotonic() - self.started
        return {
            "file": str(self.path),
            "compressed_bytes": self.total_bytes,
            "decompressed_bytes": self.decompressed,
            "lines": self.lines,
            "candidates": self.candidates,
            "seconds": round(elapsed, 3),
        }


def _starts_frame(data: bytes) -> bool:
    """Whether data starts with a zstd frame magic, or a cut-off start of one (a truncated file)."""
    head = data[:4]
    if not head or ZSTD_MAGIC.startswith(head):
        return bool(head)
    return 0x50 <= head[0] <= 0x5F and SKIPPABLE_MAGIC_TAIL.startswith(head[1:])


def _is_zstd(raw: IO[bytes]) -> bool:
    head = raw.read(4)
    raw.seek(0)
    return _starts_frame(head)  # 1-3 bytes of a magic: a cut-off zstd file, reported as truncated


def _zstd_chunks(raw: IO[bytes], path: Path, progress: ScanProgress) -> Iterator[bytes]:
    """Decompressed chunks; every frame must end (a truncated file raises, naming the offset)."""
    import zstandard

    decompressor = zstandard.ZstdDecompressor(max_window_size=2**31)
    frame, frame_start, offset = decompressor.decompressobj(), 0, 0
    fed = False  # bytes of the current frame were fed
    while True:
        data = raw.read(COMPRESSED_READ)
        if not data:
            break
        while data:
            try:
                out = frame.decompress(data)
            except zstandard.ZstdError as exc:
                raise ArchiveReadError(
                    f"archive {path}: not a valid zstd stream in the {len(data)} bytes from byte offset {offset} "
                    f"(frame starting at byte {frame_start}): {exc}"
                ) from None
            fed = True
            if out:
                yield out
            if frame.eof:  # a frame ended; dumps may hold several (pzstd, concatenated files)
                rest = frame.unused_data
                offset += len(data) - len(rest)
                frame_start, frame, fed, data = offset, decompressor.decompressobj(), False, rest
                if rest and not _starts_frame(rest):
                    raise ArchiveReadError(f"archive {path}: trailing bytes at byte offset {offset} are not zstd")
            else:
                offset += len(data)
                data = b""
        progress.compressed_read = offset
    if fed:
        raise ArchiveReadError(
            f"archive {path} is truncated: the zstd frame starting at byte {frame_start} is incomplete "
            f"at the end of the file (byte {offset}); download it again"
        )


def _widen_pipe(fd: int) -> None:
    """1 MiB pipe instead of 64 KiB: 16x fewer wake-ups of zstd and this process (Linux only)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass  # another OS, or a lower pipe-max-size: the default pipe works, a little slower


def _cli_chunks(raw: IO[bytes], path: Path, progress: ScanProgress, cli: str) -> Iterator[bytes]:
    """Decompressed by the zstd CLI in a child process, fed by a thread: it runs on another core
    (python zstandard holds the GIL), as in `zstd -dc | wc -l`, and the feeder knows the offset."""
    proc = subprocess.Popen(
        [cli, "-dcq", "--long=31", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _widen_pipe(proc.stdout.fileno())  # type: ignore[union-attr]
    fed = [0]

    def feed() -> None:
        try:
            while data := raw.read(COMPRESSED_READ):
                proc.stdin.write(data)  # type: ignore[union-attr]
                fed[0] += len(data)
                progress.compressed_read = fed[0]
        except (BrokenPipeError, ValueError):
            pass  # zstd stopped (an error, or the reader closed it): its exit status tells
        finally:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed, name="archive-feed", daemon=True)
    feeder.start()
    finished = False
    try:
        while chunk := proc.stdout.read(PLAIN_READ):  # type: ignore[union-attr]
            yield chunk
        finished = True
    finally:
        if not finished:  # the reader stopped early: stop zstd
            proc.kill()
        feeder.join()
        proc.stdout.close()  # type: ignore[union-attr]
        code, error = _reap(proc)
    if code != 0:
        what = "is truncated" if "premature" in error.lower() or "truncated" in error.lower() else "is not valid zstd"
        raise ArchiveReadError(
            f"archive {path} {what}: zstd failed after reading byte offset {fed[0]} of {progress.total_bytes} "
            f"(within the last {COMPRESSED_READ + (1 << 16)} bytes): {error}"
        )


def decompressed_chunks(path: Path, progress: ScanProgress) -> Iterator[bytes]:
    """The file's bytes in chunks, decompressed when it is zstd (detected by its magic, not its name)."""
    path = Path(path)
    try:
        for chunk in _file_chunks(path, progress):
            # progress.lines counts the lines of the chunks before (ScanProgress.line_number)
            progress.chunk, progress.lines_before_chunk = chunk, progress.lines
            yield chunk
    finally:
        progress.chunk = None


def _file_chunks(path: Path, progress: ScanProgress) -> Iterator[bytes]:
    with path.open("rb") as raw:
        if _is_zstd(raw):
            cli = ZSTD_CLI and shutil.which(ZSTD_CLI)
            yield from (_cli_chunks(raw, path, progress, cli) if cli else _zstd_chunks(raw, path, progress))
            return
        if path.name.endswith(".zst"):
            head = raw.read(8)
            if not head:
                raise ArchiveReadError(f"archive {path} is empty (0 bytes at byte offset 0): not a zstd file")
            raise ArchiveReadError(
                f"archive {path} is not a zstd file: it starts with {head!r} at byte offset 0 "
                f"(zstd magic: {ZSTD_MAGIC!r})"
            )
        while True:
            data = raw.read(PLAIN_READ)
            if not data:
                return
            progress.compressed_read += len(data)
            yield data


def iter_candidate_lines(path: Path, selection: Selection, progress: ScanProgress | None = None) -> Iterator[bytes]:
    """The lines of the dump that may belong to `selection` (every line for everything).

    Holds at most one chunk and one partial line (a 20 MB line is held once, as itself).
    """
    path = Path(path)
    if progress is None:
        progress = ScanProgress(path, path.stat().st_size)
    grep = _grep_command(path, selection)
    if grep is not None:
        yield from _grep_candidate_lines(path, selection, progress, grep)
        return
    pattern = selection.pattern()  # for the lines cut by chunk boundaries
    needles = selection.needles()
    names = frozenset(needles)
    pending = bytearray()  # the line cut by the chunk boundary
    for chunk in decompressed_chunks(path, progress):
        progress.decompressed += len(chunk)
        start = 0
        if pending:
            newline = chunk.find(b"\n")
            if newline < 0:
                pending += chunk
                continue
            pending += chunk[: newline + 1]
            line, pending = bytes(pending), bytearray()
            progress.lines += 1
            if pattern is None or pattern.search(line):
                progress.candidates += 1
                yield line
            start = newline + 1
        end = chunk.rfind(b"\n") + 1
        if end <= start:
            pending += chunk[start:]
            continue
        if pattern is None:
            progress.lines += chunk.count(b"\n", start, end)
            for line in chunk[start:end].splitlines(keepends=True):
                progress.candidates += 1
                yield line
        else:
            spans, lines = _keyed_spans(chunk, start, end, names, needles)
            progress.lines += lines
            for first, last in spans:
                progress.candidates += 1
                yield chunk[first:last]
        if end < len(chunk):
            pending += chunk[end:]
        progress.tick()
    if pending:  # a last line without a newline
        progress.lines += 1
        if pattern is None or pattern.search(pending):
            progress.candidates += 1
            yield bytes(pending)


def _keyed_spans(
    chunk: bytes, start: int, end: int, names: frozenset[bytes], needles: list[bytes]
) -> tuple[list[tuple[int, int]], int]:
    """(spans, lines): the (first, last) spans of the whole lines in chunk[start:end] whose
    `"subreddit":"<name>"` is selected, and how many lines the region holds.

    Real dumps write that key compactly, once per post (and once per crosspost parent, so every
    occurrence in a line is checked): one bytes.find pass for the key plus memchr for the line
    ends, a few calls per line, 3x less than lower() + a find per name. Lines without the key
    (other spacing, null or empty subreddit, subreddit_name_prefixed only) take the generic
    test, so the result is still a superset of the selected lines.
    """
    spans: list[tuple[int, int]] = []
    find, rfind = chunk.find, chunk.rfind
    size = len(SUBREDDIT_KEY)
    lines = 0
    line_end = start  # end of the line of the last key seen: everything before it is decided
    decided = True  # that line is a candidate already, or has no more keys to check
    at = find(SUBREDDIT_KEY, start, end)
    while at >= 0:
        if at >= line_end:  # a new line
            first = rfind(b"\n", line_end, at) + 1 or line_end
            if first > line_end:  # lines without the key
                lines += chunk.count(b"\n", line_end, first)
                spans.extend(_candidate_spans(chunk, line_end, first, needles))
            line_end = find(b"\n", at, end) + 1 or end
            lines += 1
            decided = False
        value_end = find(b'"', at + size, line_end)
        value = chunk[at + size : value_end] if value_end > 0 else b""
        if not value:  # "subreddit":"" or no closing quote: the prefixed name may still select it
            spans.extend(_candidate_spans(chunk, first, line_end, needles))
            decided = True
        elif value.lower() in names:
            spans.append((first, line_end))
            decided = True
        at = find(SUBREDDIT_KEY, line_end if decided else value_end, end)
    if line_end < end:
        lines += chunk.count(b"\n", line_end, end)
        spans.extend(_candidate_spans(chunk, line_end, end, needles))
    return spans, lines


def _candidate_spans(chunk: bytes, start: int, end: int, needles: list[bytes]) -> list[tuple[int, int]]:
    """(first, last) byte spans of the whole lines in chunk[start:end] holding a needle as a JSON string.

    The same test as Selection.pattern, done with bytes.find on the lower-cased region (re runs at
    ~60 MB/s on JSON, where every other byte is a quote; lower() + find run at ~1 GB/s).
    """
    low = chunk[start:end].lower()
    size_low = len(low)
    hits = []
    find = low.find
    for needle in needles:
        size = len(needle)
        at = find(needle)
        while at >= 0:
            if (
                at > 0
                and low[at + size : at + size + 1] == b'"'
                and (low[at - 1] == 34 or low.endswith(b'"r/', 0, at) or low.endswith(b'"r\\/', 0, at))
            ):
                hits.append(at)
                at = find(b"\n", at)  # one hit per line is enough
                if at < 0:
                    break
            at = find(needle, at + 1)
    if not hits:
        return []
    hits.sort()
    spans, covered = [], 0
    for at in hits:
        if at < covered:
            continue  # the line is already a candidate (two names in one line)
        first = low.rfind(b"\n", 0, at) + 1  # -1 + 1: the line starts the region
        covered = low.find(b"\n", at) + 1 or size_low
        spans.append((start + first, start + covered))
    return spans


# ---------------------------------------------------------------- grep prefilter


def _grep_command(path: Path, selection: Selection) -> list[str] | None:
    """grep's argv for the selection's prefilter, or None where the Python search must run: no grep,
    everything selected, a name grep cannot take literally, or a zstd dump without the zstd CLI."""
    grep = GREP_CLI and shutil.which(GREP_CLI)
    if not grep or selection.names is None or not all(GREPPABLE_NAME.fullmatch(n) for n in selection.names):
        return None
    with path.open("rb") as raw:
        if _is_zstd(raw):
            if not (ZSTD_CLI and shutil.which(ZSTD_CLI)):
                return None
        elif path.name.endswith(".zst"):
            return None  # not zstd: _file_chunks names the file in its error
    names = "|".join(sorted(selection.names, key=len, reverse=True))
    # the same test as Selection.pattern: a name as a whole JSON string, optionally r/ or r\/ first
    return [grep, "-a", "-n", "-b", "-i", "-E", '"(r\\\\?/)?(' + names + ')"']


def _sentinel(selection: Selection) -> bytes:
    """A line grep selects, written after the dump: its number and offset give the dump's line
    count and size (a random token, so no dump line can pass for it)."""
    name = sorted(selection.names or ())[0]
    return b'{"smpp_end_of_dump":"%s","subreddit":"%s"}\n' % (uuid.uuid4().hex.encode(), name.encode())


def _grep_candidate_lines(path: Path, selection: Selection, progress: ScanProgress, grep: list[str]) -> Iterator[bytes]:
    """Candidate lines from `[zstd -dc |] grep`, fed by a thread that knows the compressed offset.

    Memory: grep holds one line, this process one candidate (a 20 MB line is held as itself).
    """
    sentinel = _sentinel(selection)
    needles = selection.needles()
    names = frozenset(needles)

    def candidate(line: bytes) -> bool:
        # grep's hits, decided as the Python search decides them (a compact "subreddit":"pics2" key
        # with a title "pics" is not a candidate), so the skip counts do not depend on the mode
        return bool(_keyed_spans(line, 0, len(line), names, needles)[0])

    env = {**os.environ, "LC_ALL": "C"}  # byte semantics: no multibyte decoding, ASCII -i
    with tempfile.TemporaryDirectory(prefix="smpp-scan-") as tmp, path.open("rb") as raw:
        zstd = None
        if _is_zstd(raw):
            sentinel_file = Path(tmp) / "end.zst"
            sentinel_file.write_bytes(_compress(sentinel))
            zstd = subprocess.Popen(
                [ZSTD_CLI or "zstd", "-dcq", "--long=31", "-", str(sentinel_file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _widen_pipe(zstd.stdout.fileno())  # type: ignore[union-attr]
            proc = subprocess.Popen(grep, stdin=zstd.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            zstd.stdout.close()  # type: ignore[union-attr]  # grep holds it; zstd sees EPIPE if grep dies
            sink, tail = zstd.stdin, b""
        else:
            proc = subprocess.Popen(
                grep, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
            )
            sink, tail = proc.stdin, sentinel
        fed = [0]

        def feed() -> None:
            try:
                while data := raw.read(COMPRESSED_READ if zstd else PLAIN_READ):
                    sink.write(data)  # type: ignore[union-attr]
                    fed[0] += len(data)
                    progress.compressed_read = fed[0]
                    progress.tick()  # rare candidates must not silence the progress log
                if tail:
                    sink.write(tail)  # type: ignore[union-attr]
            except (BrokenPipeError, ValueError):
                pass  # a child stopped (an error, or the reader closed it): exit statuses tell
            finally:
                try:
                    sink.close()  # type: ignore[union-attr]
                except BrokenPipeError:
                    pass

        feeder = threading.Thread(target=feed, name="archive-feed", daemon=True)
        feeder.start()
        finished, ended = False, False
        try:
            for out in proc.stdout:  # type: ignore[union-attr]
                number, offset, line = out.split(b":", 2)
                progress.lines, progress.decompressed = int(number), int(offset)
                if line.endswith(sentinel):
                    ended = True
                    last = line[: -len(sentinel)]  # the dump's last line had no newline
                    progress.lines -= not last
                    progress.decompressed += len(last)
                    line = last
                if not line or not candidate(line):
                    continue
                progress.candidates += 1
                progress.numbered_line, progress.numbered = line, int(number)
                yield line
            finished = True
        finally:
            progress.numbered_line = None
            if not finished:  # the reader stopped early: stop the children
                for child in (proc, zstd):
                    if child is not None:
                        child.kill()
            feeder.join()
            proc.stdout.close()  # type: ignore[union-attr]
            grep_code, grep_error = _reap(proc)
            zstd_code, zstd_error = _reap(zstd) if zstd is not None else (0, "")
    if not finished:
        return
    if zstd_code != 0:
        low = zstd_error.lower()
        what = "is truncated" if "premature" in low or "truncated" in low else "is not valid zstd"
        raise ArchiveReadError(
            f"archive {path} {what}: zstd failed after reading byte offset {fed[0]} of {progress.total_bytes} "
            f"(within the last {COMPRESSED_READ + (1 << 16)} bytes): {zstd_error}"
        )
    if grep_code > 1 or not ended:
        raise RuntimeError(f"archive {path}: the grep prefilter failed (exit {grep_code}): {grep_error}")


def _reap(proc: subprocess.Popen) -> tuple[int, str]:
    """A finished child's exit status and what it wrote to stderr (its stdout already read)."""
    error = proc.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    return proc.wait(), error


def _compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=1).compress(data)
