"""Archive dumps with known faults, built at test time: good posts plus the lines that broke days.

Every builder returns what a correct reader must report: the good post ids (all stored), the bad
lines by skip reason (all counted, in both read modes) and the dump line number of each bad line.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

DAY = 1_375_142_400  # 2013-07-30 00:00 UTC
D = 86_400
SUBREDDIT = "pics"
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
BIG_LINE_BYTES = 20 << 20
# reasons a reader reports that are not bad lines (the selection's and the dedup's)
NOT_BAD = frozenset({"not_selected", "other_subreddit", "crosspost", "duplicate_id"})


def good_post(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"g{n:04d}",
        "title": f"good post {n}",
        "subreddit": SUBREDDIT,
        "author": f"user{n % 7}",
        "created_utc": DAY + 60 * n,
        "score": n,
        "num_comments": n % 5,
        "retrieved_on": DAY + 2 * D,
        "subreddit_subscribers": 1000,
        **extra,
    }


def bad_post(pid: str, n: int, **extra: Any) -> dict[str, Any]:
    return {**good_post(n), "id": pid, **extra}


def line_of(row: dict[str, Any] | bytes) -> bytes:
    return row if isinstance(row, bytes) else json.dumps(row).encode() + b"\n"


@dataclass
class Corpus:
    path: Path
    good_ids: list[str] = field(default_factory=list)
    bad: dict[str, int] = field(default_factory=dict)  # reason -> lines
    bad_line_numbers: dict[str, int] = field(default_factory=dict)  # bad post id (as logged) -> dump line
    lines: int = 0
    big_id: str | None = None

    @property
    def bad_lines(self) -> int:
        return sum(self.bad.values())


class CorpusBuilder:
    """Lines in dump order, with what each one must come out as."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.corpus = Corpus(Path())

    def good(self, row: dict[str, Any] | bytes, post_id: str) -> None:
        self.lines.append(line_of(row))
        self.corpus.good_ids.append(post_id)

    def bad(self, row: dict[str, Any] | bytes, reason: str, post_id: str | None = None) -> None:
        self.lines.append(line_of(row))
        self.corpus.bad[reason] = self.corpus.bad.get(reason, 0) + 1
        if post_id is not None:
            self.corpus.bad_line_numbers[post_id] = len(self.lines)

    def other(self, row: bytes) -> None:
        """A line no reader selects (not a bad line of the selection)."""
        self.lines.append(line_of(row))

    def write(self, path: Path, compress: bool) -> Corpus:
        data = b"".join(self.lines)
        if compress:
            data = zstandard.ZstdCompressor(level=1).compress(data)
        path.write_bytes(data)
        self.corpus.path, self.corpus.lines = path, len(self.lines)
        return self.corpus


def huge_int_rows() -> list[tuple[dict[str, Any], str]]:
    """(line, reason): integers outside the warehouse column types (INTEGER 32-bit, BIGINT 64-bit)."""
    return [
        (bad_post("hscore", 900, score=10**30), "out_of_range"),
        (bad_post("hneg", 901, score=-(10**30)), "out_of_range"),
        (bad_post("hflt", 902, score=1e30), "out_of_range"),
        (bad_post("hstr", 903, score="1e30"), "out_of_range"),
        (bad_post("hcom", 904, num_comments=INT32_MAX + 1), "out_of_range"),  # fits SQLite, not Postgres
        (bad_post("hsubs", 905, subreddit_subscribers=INT64_MAX + 1), "out_of_range"),
        (bad_post("hlen", 906, selftext_len=2**40), "out_of_range"),
        (bad_post("hret", 907, retrieved_on=10**30), "out_of_range"),
        (bad_post("hcre", 908, created_utc=10**30), "bad_created_utc"),  # no day: counted on every read
        (bad_post("hcrf", 909, created_utc=1e300), "bad_created_utc"),
    ]


def mixed_corpus(directory: Path, *, compress: bool = True, big_line: bool = False, good: int = 40) -> Corpus:
    """Good posts, with huge ints, NUL bytes, invalid UTF-8 and (big_line) a 20 MB line among them."""
    builder = CorpusBuilder()
    faults: list[tuple[str, Any]] = [("bad", row) for row in huge_int_rows()]
    faults += [
        # at the edges of the column types: stored
        (
            "good",
            (
                good_post(950, id="edge1", score=-(2**31), num_comments=INT32_MAX, subreddit_subscribers=INT64_MAX),
                "edge1",
            ),
        ),
        # NUL: raw in a string is not JSON; escaped it is, and Postgres TEXT cannot hold it
        (
            "bad",
            (
                f'{{"id": "nul1", "subreddit": "{SUBREDDIT}", "title": "a\x00b", "created_utc": {DAY + 5}}}\n'.encode(),
                "malformed_json",
            ),
        ),
        ("bad", (bad_post("nul2", 951, title="nul \u0000 inside"), "nul_in_text")),
        ("other", b"\x00\x00\x00\x00\n"),  # names no subreddit: not selected, in both modes
        # invalid UTF-8: replaced, the post is kept
        (
            "good",
            (
                f'{{"id": "utf1", "subreddit": "{SUBREDDIT}", "title": "caf'.encode()
                + b"\xe9\xff"
                + f'", "created_utc": {DAY + 7}, "score": 1}}\n'.encode(),
                "utf1",
            ),
        ),
    ]
    if big_line:  # first: the bad lines after it are in later decompressed chunks
        faults.insert(0, ("good", (good_post(952, id="big1", selftext="y" * BIG_LINE_BYTES), "big1")))
        builder.corpus.big_id = "big1"
    step = max(good // (len(faults) + 1), 1)
    n = 0
    for kind, item in faults:
        for _ in range(step):
            builder.good(good_post(n), f"g{n:04d}")
            n += 1
        if kind == "bad":
            row, reason = item
            builder.bad(row, reason, row["id"] if isinstance(row, dict) else "(unknown id)")  # not JSON: no id
        elif kind == "good":
            builder.good(*item)
        else:
            builder.other(item)
    while n < good:
        builder.good(good_post(n), f"g{n:04d}")
        n += 1
    return builder.write(directory / ("RS_2013-07.zst" if compress else "RS_2013-07.ndjson"), compress)


def undated_corpus(directory: Path) -> Corpus:
    """Good posts and bad lines that have no usable created_utc (no day to file them under)."""
    builder = CorpusBuilder()
    for n in range(10):
        builder.good(good_post(n), f"g{n:04d}")
        builder.bad(f'{{"id": "mj{n}", "subreddit": "{SUBREDDIT}", "title": '.encode() + b"\n", "malformed_json")
    builder.bad(bad_post("nt1", 20, created_utc=None), "missing_created_utc", "nt1")
    builder.bad(bad_post("bt1", 21, created_utc="yesterday"), "bad_created_utc", "bt1")
    builder.bad(bad_post("bt2", 22, created_utc=True), "bad_created_utc", "bt2")
    builder.bad(bad_post("bt3", 23, created_utc=10**30), "bad_created_utc", "bt3")
    builder.bad(bad_post("bs1", 24, score="lots"), "bad_score", "bs1")  # dated: counted on its day
    return builder.write(directory / "RS_2013-07.zst", compress=True)


def good_dump_bytes(posts: int = 2000) -> bytes:
    return b"".join(line_of(good_post(n, title=f"good post {n} " + "z" * (n % 200))) for n in range(posts))


def truncated_dump(directory: Path, posts: int = 2000) -> tuple[Path, int]:
    """A one-frame .zst cut in half: (path, size); a reader must fail, not read a short dump."""
    whole = zstandard.ZstdCompressor(level=3).compress(good_dump_bytes(posts))
    path = directory / "RS_2013-07.zst"
    path.write_bytes(whole[: len(whole) // 2])
    return path, len(whole) // 2


def wrong_magic_dump(directory: Path) -> Path:
    """NDJSON named .zst."""
    path = directory / "RS_2013-07.zst"
    path.write_bytes(good_dump_bytes(50))
    return path


def empty_dump(directory: Path) -> Path:
    path = directory / "RS_2013-07.zst"
    path.write_bytes(b"")
    return path


def skippable_frame(payload: bytes, nibble: int = 0) -> bytes:
    """A zstd skippable frame (magic 0x184D2A50-5F): pzstd writes one before every frame."""
    return struct.pack("<II", 0x184D2A50 | nibble, len(payload)) + payload


def pzstd_style_dump(directory: Path, posts: int = 300, frames: int = 3) -> Path:
    """Frames each preceded by a skippable frame, as `pzstd` writes them."""
    data = good_dump_bytes(posts)
    cut = [len(data) * i // frames for i in range(frames + 1)]
    parts = []
    for i in range(frames):
        # split mid-line, as pzstd's input blocks are
        frame = zstandard.ZstdCompressor(level=1).compress(data[cut[i] : cut[i + 1]])
        parts.append(skippable_frame(struct.pack("<I", len(frame)), nibble=i % 16) + frame)
    path = directory / "RS_2013-07.zst"
    path.write_bytes(b"".join(parts))
    return path
