"""Reddit archive dumps (Pushshift / Arctic-Shift NDJSON, plain or .zst), streamed.

History cannot be re-scraped from the API (listings stop at ~1000 items), so backfilled
days come from dumps. Memory stays constant: one line at a time, never the whole file.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from smpp.sources.records import PostRecord

log = logging.getLogger(__name__)

# Archives name the moment a post was captured differently.
RETRIEVED_KEYS = ("retrieved_on", "retrieved_utc", "_meta_retrieved_2nd_on")


@dataclass
class ArchiveScan:
    lines: int = 0
    selected: int = 0
    bad_lines: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1


def open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise FileNotFoundError(f"archive dump not found: {path} (set the archive_path param)")
    raw = path.open("rb")
    if path.suffix == ".zst":
        import zstandard

        # Pushshift dumps use long windows; 2 GiB is what their readers use.
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw)
        return io.TextIOWrapper(reader, encoding="utf-8", errors="replace")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def iter_archive_posts(
    path: Path, start_utc: int, end_utc: int, scan: ArchiveScan | None = None
) -> Iterator[PostRecord]:
    """Yield the posts created in [start_utc, end_utc); bad lines are counted, not fatal."""
    scan = scan if scan is not None else ArchiveScan()
    with open_text(Path(path)) as stream:
        for line in stream:
            scan.lines += 1
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                created = int(float(data["created_utc"]))
            except (ValueError, KeyError, TypeError):
                scan.bad_lines += 1
                scan.skip("bad_line")
                continue
            if not (start_utc <= created < end_utc):
                continue
            if data.get("crosspost_parent"):
                scan.skip("crosspost")
                continue
            observed = next((data[k] for k in RETRIEVED_KEYS if data.get(k)), None)
            try:
                record = PostRecord.from_reddit_json(
                    data, observed_at=int(observed) if observed else None, source="archive"
                )
            except (ValueError, TypeError) as exc:
                scan.bad_lines += 1
                scan.skip("bad_record")
                log.warning("skipping archive line %d: %s", scan.lines, exc)
                continue
            scan.selected += 1
            yield record
    if scan.bad_lines:
        log.warning("archive %s: %d bad lines skipped", path, scan.bad_lines)
