"""What build_features' history columns cost as the warehouse grows (one big subreddit).

    .venv/bin/python benchmarks/history_features.py [--sizes 100000 300000 1000000] [--day-posts 500]

For each size N: a fresh SQLite warehouse (built in a process of its own) gets N posts of one
subreddit, spread evenly over N / day_posts days and written by 5% as many authors, each with a
matured archive label. Then, timed in a fresh process (its peak RSS is the query's and the
features'), exactly what build_features runs for the last day's posts:
`history_store.history_columns` (the warehouse query of every
earlier post of the day's authors and subreddits, then author_history's vectorised features).
Nothing is asserted: the point is how time and memory grow with the subreddit's history.
Since the incremental history (issue 13) history_columns no longer reads the subreddit's history;
on this warehouse, built without build_features, its post_levels cache is cold, so the timed call
also computes every author post's level once. benchmarks/long_backfill.py measures the steady
state of a backfill, with the old path beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAY = 86_400
START_UTC = 1_400_000_000


def last_day_utc(size: int, day_posts: int) -> int:
    return START_UTC + (max(size // day_posts, 1) - 1) * DAY


def build_warehouse(url: str, size: int, day_posts: int) -> None:
    """N posts + labels of r/big, spread evenly over size // day_posts days."""
    import numpy as np

    from smpp.warehouse import Label, Post, session_for
    from smpp.warehouse.db import insert_rows
    from smpp.warehouse.ingest import LABEL_COLUMNS, POST_COLUMNS

    rng = np.random.default_rng(0)
    days = max(size // day_posts, 1)
    created = np.sort(START_UTC + rng.integers(0, days * DAY, size))
    authors = rng.integers(0, max(size // 20, 1), size)
    scores = rng.lognormal(2.0, 1.5, size).astype(int)
    posts, labels = [], []
    for i in range(size):
        post_id = np.base_repr(i + 10_000_000, 36).lower()
        t = int(created[i])
        posts.append(
            (
                post_id,
                "big",
                f"title {i}",
                f"u{authors[i]}",
                None,
                t,
                None,
                None,
                None,
                False,
                False,
                False,
                None,
                None,
                [],
                None,
                None,
                0,
                "archive",
                t,
                False,
            )
        )
        labels.append((post_id, int(scores[i]), None, 24.0, None, t + DAY, "archive"))
    with session_for(url) as session:
        for start in range(0, size, 100_000):  # bounded statement memory
            insert_rows(session, Post, POST_COLUMNS, posts[start : start + 100_000])
            insert_rows(session, Label, LABEL_COLUMNS, labels[start : start + 100_000])
        session.commit()


def run_size(size: int, day_posts: int, work: Path) -> dict:
    import pandas as pd
    from sqlalchemy import select

    from smpp.warehouse import Post, session_for
    from smpp.warehouse.history_store import history_columns

    url = f"sqlite:///{work / f'history-{size}.sqlite'}"
    last_day = last_day_utc(size, day_posts)
    until = last_day + DAY
    with session_for(url) as session:
        day = pd.DataFrame(
            session.execute(
                select(Post.id, Post.author, Post.subreddit, Post.created_utc).where(
                    Post.created_utc >= last_day, Post.created_utc < until
                )
            ).all(),
            columns=["id", "author", "subreddit", "created_utc"],
        )
        started = time.perf_counter()
        columns = history_columns(session, day, until, 24.0)
        seconds = time.perf_counter() - started
    return {
        "size": size,
        "day_posts": len(day),
        "seconds": round(seconds, 3),
        "filled": int(columns.notna().all(axis=1).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--day-posts", type=int, default=500)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:  # its own process: the rows built here must not count in the timed process's RSS
        build_warehouse(f"sqlite:///{args.work_dir / f'history-{args.build}.sqlite'}", args.build, args.day_posts)
        return
    if args.one:
        result = run_size(args.one, args.day_posts, args.work_dir)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    print(f"{os.cpu_count()} CPUs; one subreddit, {args.day_posts} posts a day")
    with tempfile.TemporaryDirectory(prefix="smpp-history-bench-") as work:
        for size in args.sizes:
            for step in ("--build", "--one"):
                done = subprocess.run(
                    [sys.executable, __file__, step, str(size), "--day-posts", str(args.day_posts), "--work-dir", work],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise SystemExit(f"size {size} {step} failed:\n{done.stderr[-4000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"history {r['size']:>9,d} posts: history_columns for {r['day_posts']} posts {r['seconds']:7.2f} s, "
                f"peak RSS {r['peak_rss_mb']:7.1f} MB"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
