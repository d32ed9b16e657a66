"""Archive backfill cost on a real dump: parse baseline, day index build, ingest of every day.

    .venv/bin/python benchmarks/archive_ingest.py [--dump PATH] [--work-dir DIR] [--monthly] [--floor]
                                                  [--removed FRACTION] [--postgres ADMIN_URL]

Each phase runs in its own process and reports its wall time and peak RSS (ru_maxrss of that
process), so the numbers do not leak into each other:
  parse   decompress + JSON-parse every line (the floor: any reader pays this)
  index   build the day index (one streaming pass, day files + manifest)
  source  every indexed day's PostRecords, read as the DAG's scrape_posts reads them
          (iter_archive_posts per day), nothing stored: the archive source's own cost
  ingest  every indexed day into a fresh SQLite warehouse, one iter_archive_posts +
          smpp.warehouse.ingest.ingest_posts call per day, exactly as the DAG's scrape_posts does
  ingest_postgres (with --postgres) the ingest phase into a fresh Postgres database
  monthly (with --monthly) the same posts ingested one call per month: the per-post cost
          without the per-day fixed cost (queries + one commit per day)
  db_floor, db_floor_noidx (with --floor) the SQLite work alone: each day's rows are built
          untimed, then only the two key lookups, the posts + labels executemany and the
          commit are timed, on the sqlite3 driver; _noidx drops the posts author and
          subreddit indexes first (the random-page writes that dominate a day's commit)
--removed F first writes (untimed) a variant of the dump in which a seeded fraction F of the posts
is removed (a third each: by a moderator, deleted by the author, author and title "[deleted]");
the other lines stay byte for byte. Every phase then runs on that variant.
Nothing is asserted; the targets are peak RSS < 500 MB whatever the dump size, and
index + ingest within 3x of parse (index + source shows how much of that the warehouse writes take).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DUMP = REPO.parent / "shared" / "data" / "reddit_top_dev.ndjson.zst"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def phase_parse(dump: Path, work: Path, stdlib: bool) -> dict:
    import json as stdlib_json

    from smpp.sources.archive import load_line, open_binary

    parse = stdlib_json.loads if stdlib else load_line
    lines = 0
    started = time.perf_counter()
    with open_binary(dump) as stream:
        for line in stream:
            if line.strip():
                parse(line)
            lines += 1
    return {"seconds": time.perf_counter() - started, "items": lines, "unit": "lines"}


def phase_index(dump: Path, work: Path) -> dict:
    from smpp.settings import Settings
    from smpp.sources.archive_index import ensure_day_index

    settings = Settings(data_dir=work)
    started = time.perf_counter()
    index = ensure_day_index(dump, work / "archive_index", flush_bytes=settings.archive_index_flush_mb << 20)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in index.directory.iterdir())
    return {
        "seconds": seconds,
        "items": index.manifest["lines"],
        "unit": "lines",
        "built": index.built,
        "days": len(index.manifest["days"]),
        "index_mb": round(size / 1e6, 1),
    }


def phase_source(dump: Path, work: Path) -> dict:
    from smpp.settings import Settings
    from smpp.sources.archive import ArchiveScan
    from smpp.sources.archive_index import ensure_day_index
    from smpp.sources.dumps import iter_archive_posts

    settings = Settings(data_dir=work)
    days = sorted(ensure_day_index(dump, work / "archive_index").manifest["days"])
    posts = 0
    started = time.perf_counter()
    for day in days:
        start = _utc(day)
        for _ in iter_archive_posts(dump, start, start + 86_400, ArchiveScan(), settings=settings):
            posts += 1
    return {"seconds": time.perf_counter() - started, "items": posts, "unit": "posts", "calls": len(days)}


def phase_ingest(dump: Path, work: Path, monthly: bool, database_url: str | None = None) -> dict:
    from smpp.settings import Settings
    from smpp.sources.archive import ArchiveScan
    from smpp.sources.archive_index import ensure_day_index
    from smpp.sources.dumps import iter_archive_posts
    from smpp.warehouse import session_for
    from smpp.warehouse.ingest import ingest_posts

    database_url = database_url or f"sqlite:///{work / ('monthly' if monthly else 'daily')}.sqlite"
    settings = Settings(data_dir=work, database_url=database_url)
    days = sorted(ensure_day_index(dump, work / "archive_index").manifest["days"])
    intervals = [(_utc(d), _utc(d) + 86_400) for d in days]
    if monthly:
        months = sorted({d[:7] for d in days})
        intervals = [(_utc(f"{m}-01"), _utc(_next_month(m))) for m in months]
    posts = calls = 0
    started = time.perf_counter()
    with session_for(settings.database_url) as session:
        for start, end in intervals:
            scan = ArchiveScan()
            stats = ingest_posts(session, settings, iter_archive_posts(dump, start, end, scan, settings=settings))
            posts += stats.seen
            calls += 1
    return {"seconds": time.perf_counter() - started, "items": posts, "unit": "posts", "calls": calls}


def phase_db_floor(dump: Path, work: Path, drop_indexes: bool) -> dict:
    import sqlite3

    from smpp.settings import Settings
    from smpp.sources.archive import ArchiveScan
    from smpp.sources.archive_index import ensure_day_index
    from smpp.sources.dumps import iter_archive_posts
    from smpp.warehouse import get_engine
    from smpp.warehouse.ingest import LABEL_COLUMNS, POST_COLUMNS, archive_label_row

    name = "floor_noidx" if drop_indexes else "floor"
    for stale in work.glob(f"{name}.sqlite*"):  # a fresh warehouse, as the ingest phase gets
        stale.unlink()
    settings = Settings(data_dir=work, database_url=f"sqlite:///{work / name}.sqlite")
    get_engine(settings.database_url).dispose()  # creates the schema; the driver does the rest
    conn = sqlite3.connect(work / f"{name}.sqlite")
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=16384"):
        conn.execute(f"PRAGMA {pragma}")  # what smpp.warehouse.db sets
    if drop_indexes:
        conn.execute("DROP INDEX ix_posts_author")
        conn.execute("DROP INDEX ix_posts_subreddit")
    post_sql = (
        f"INSERT INTO posts ({', '.join(POST_COLUMNS)}) VALUES ({', '.join('?' * len(POST_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )
    label_sql = (
        f"INSERT INTO labels ({', '.join(LABEL_COLUMNS)}) VALUES ({', '.join('?' * len(LABEL_COLUMNS))}) "
        "ON CONFLICT (post_id) DO UPDATE SET score = excluded.score, age_hours = excluded.age_hours, "
        "observed_at = excluded.observed_at, status = excluded.status"
    )
    days = sorted(ensure_day_index(dump, work / "archive_index").manifest["days"])
    seconds = 0.0
    posts = 0
    for day in days:
        start = _utc(day)
        records = list(iter_archive_posts(dump, start, start + 86_400, ArchiveScan(), settings=settings))
        post_rows = [
            (
                r.id,
                r.subreddit,
                r.title,
                r.author,
                r.author_fullname,
                r.created_utc,
                r.url,
                r.domain,
                r.permalink,
                r.is_self,
                r.over_18,
                r.is_gallery,
                r.post_hint,
                r.preview_url,
                "[]",
                r.flair_text,
                r.subreddit_subscribers,
                r.selftext_len,
                r.source,
                start,
                r.removed,
            )
            for r in records
        ]
        label_rows = [
            archive_label_row(r, settings.label_age_hours, int(settings.label_age_hours * 3600)) for r in records
        ]
        ids = [r.id for r in records]
        marks = ", ".join("?" * len(ids))
        started = time.perf_counter()
        conn.execute(f"SELECT post_id FROM tombstones WHERE post_id IN ({marks})", ids).fetchall()
        conn.execute(f"SELECT id FROM posts WHERE id IN ({marks})", ids).fetchall()
        conn.executemany(post_sql, post_rows)
        conn.executemany(label_sql, label_rows)
        conn.commit()
        seconds += time.perf_counter() - started
        posts += len(records)
    conn.close()
    return {"seconds": seconds, "items": posts, "unit": "posts", "calls": len(days)}


def write_removed_variant(dump: Path, target: Path, fraction: float, seed: int = 0) -> int:
    """Copy `dump` to `target` (.zst) with a seeded `fraction` of its posts removed; returns how many."""
    import random

    import zstandard

    from smpp.sources.archive import open_binary

    rng = random.Random(seed)
    removed = 0
    with (
        open_binary(dump) as lines,
        target.open("wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw) as out,
    ):
        for line in lines:
            if line.strip() and rng.random() < fraction:
                post = json.loads(line)
                kind = rng.randrange(3)
                if kind == 0:
                    post["removed_by_category"] = "moderator"
                elif kind == 1:
                    post["removed_by_category"] = "deleted"
                else:
                    post.update(author="[deleted]", title="[deleted]", selftext="[deleted]")
                line = json.dumps(post).encode() + b"\n"
                removed += 1
            out.write(line)
    return removed


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the admin URL's server, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine

    name = f"smpp_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _utc(day: str) -> int:
    return (date.fromisoformat(day) - date(1970, 1, 1)).days * 86_400


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12}-{mon % 12 + 1:02d}-01"


PHASES = {
    "parse": lambda dump, work: phase_parse(dump, work, stdlib=False),
    "parse_stdlib": lambda dump, work: phase_parse(dump, work, stdlib=True),
    "index": phase_index,
    "source": phase_source,
    "ingest": lambda dump, work: phase_ingest(dump, work, monthly=False),
    "monthly": lambda dump, work: phase_ingest(dump, work, monthly=True),
    # --postgres: the same per-day ingest into a fresh Postgres database (SMPP_BENCH_DATABASE_URL)
    "ingest_postgres": lambda dump, work: phase_ingest(
        dump, work, monthly=False, database_url=os.environ["SMPP_BENCH_DATABASE_URL"]
    ),
    "db_floor": lambda dump, work: phase_db_floor(dump, work, drop_indexes=False),
    "db_floor_noidx": lambda dump, work: phase_db_floor(dump, work, drop_indexes=True),
}


def run_phase(name: str, dump: Path, work: Path, **env_extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **env_extra}
    done = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--dump", str(dump), "--work-dir", str(work)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", type=Path, default=DEFAULT_DUMP)
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temp dir, removed afterwards")
    parser.add_argument("--monthly", action="store_true", help="also ingest one call per month")
    parser.add_argument("--floor", action="store_true", help="also time the SQLite work alone (db_floor phases)")
    parser.add_argument(
        "--removed",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="run on a variant of the dump with this fraction of posts removed",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also ingest into a fresh database created (and dropped) on this Postgres, "
        "e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    dump = args.dump.resolve()
    if args.phase:
        result = PHASES[args.phase](dump, args.work_dir)
        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="smpp-archive-bench-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"--work-dir {work} is not empty: the index and warehouse must start fresh")
    work.mkdir(parents=True, exist_ok=True)
    if args.removed:
        variant = work / "variants" / f"removed-{args.removed:g}.ndjson.zst"
        variant.parent.mkdir()
        count = write_removed_variant(dump, variant, args.removed)
        print(f"variant of {dump.name}: {count} posts removed ({args.removed:.0%})")
        dump = variant
    print(f"dump {dump} ({dump.stat().st_size / 1e6:.1f} MB), work dir {work}, {os.cpu_count()} CPUs")
    names = ["parse_stdlib", "parse", "index", "source", "ingest"] + (["monthly"] if args.monthly else [])
    names += ["db_floor", "db_floor_noidx"] if args.floor else []
    results = {}
    try:
        for name in names:
            results[name] = result = run_phase(name, dump, work)
            rate = result["items"] / result["seconds"]
            extra = {k: v for k, v in result.items() if k not in {"seconds", "items", "unit", "peak_rss_mb"}}
            print(
                f"{name:13s} {result['seconds']:8.2f} s  {result['items']:>8d} {result['unit']:5s} "
                f"{rate:>10,.0f}/s  peak RSS {result['peak_rss_mb']:6.1f} MB  {extra or ''}"
            )
        if args.postgres:
            with fresh_postgres_database(args.postgres) as url:
                results["ingest_postgres"] = result = run_phase(
                    "ingest_postgres", dump, work, SMPP_BENCH_DATABASE_URL=url
                )
            print(
                f"{'ingest_postgres':13s} {result['seconds']:8.2f} s  {result['items']:>8d} posts "
                f"{result['items'] / result['seconds']:>10,.0f}/s  peak RSS {result['peak_rss_mb']:6.1f} MB"
            )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    floor, stdlib = results["parse"]["seconds"], results["parse_stdlib"]["seconds"]
    for what in ("source", "ingest"):
        total = results["index"]["seconds"] + results[what]["seconds"]
        print(
            f"index + {what} = {total:.2f} s = {total / floor:.1f}x decompress+parse ({floor:.2f} s, msgspec); "
            f"{total / stdlib:.1f}x with stdlib json ({stdlib:.2f} s)"
        )
    print(f"peak RSS max {max(r['peak_rss_mb'] for r in results.values()):.0f} MB")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
