"""History features over a long, high-volume backfill: does build_features' history cost stay flat?

    .venv/bin/python benchmarks/long_backfill.py [--days 30 180 365] [--posts-per-day 5000]

A synthetic history of 3 subreddits (50/30/20 % of the posts, 5k posts a day by default), authors
active for ~40 days each and posting across the subreddits, 5 % without author, 2 % removed,
90 % with an archive label matured a day after creation. It is built in bulk (triggers off; the
per-day counts and cached subreddit levels written directly, as the DAG would have left them).
For each measured day D the last 3 days up to D are ingested with the triggers on and built as the
DAG runs them, in order, in a fresh process: `history_store.history_columns` for the day's posts
(what build_features' `_with_history_columns` runs). Day D is timed with its peak RSS, and so is
the old path (warehouse_history of the subreddits and the authors' subreddits + history_features)
for the same day, in its own fresh process; the two are checked equal. Nothing is asserted on time.
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
START_UTC = 1_600_000_000 // DAY * DAY
SUBREDDITS = ("big", "mid", "small")
WARM_DAYS = 3  # days ingested and built as the DAG would just before the measured one


def day_rows(day: int, per_day: int) -> tuple[list[tuple], list[tuple]]:
    """Deterministic (posts, labels) of one day, as ingest.POST_COLUMNS / LABEL_COLUMNS tuples."""
    import numpy as np

    rng = np.random.default_rng(day)
    start = START_UTC + day * DAY
    created = np.sort(start + rng.integers(0, DAY, per_day))
    sub = rng.choice(3, per_day, p=[0.5, 0.3, 0.2])
    author = day * 150 + rng.integers(0, 6000, per_day)  # each author active ~40 days, ~30 posts
    no_author = rng.random(per_day) < 0.05
    removed = rng.random(per_day) < 0.02
    labelled = rng.random(per_day) < 0.9
    scores = rng.lognormal(2.0, 1.5, per_day).astype(int)
    posts, labels = [], []
    for i in range(per_day):
        pid, t = f"b{day:03d}{i:05d}", int(created[i])
        posts.append(
            (
                pid,
                SUBREDDITS[sub[i]],
                "t",
                None if no_author[i] else f"u{author[i]}",
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
                bool(removed[i]),
            )
        )
        if labelled[i]:
            labels.append((pid, int(scores[i]), None, 24.0, None, t + DAY, "archive"))
    return posts, labels


def bulk_build(url: str, first: int, last: int, per_day: int) -> None:
    """Days [first, last) in bulk, with what the triggers and history_store would have written."""
    import numpy as np
    from sqlalchemy import text

    from smpp.features.author_history import recent_level
    from smpp.warehouse import Label, Post, PostLevel, SubredditDay, get_engine, session_for
    from smpp.warehouse.db import insert_rows
    from smpp.warehouse.history_schema import create_sqlite_triggers
    from smpp.warehouse.ingest import LABEL_COLUMNS, POST_COLUMNS
    from smpp.warehouse.labels import label_of_score

    engine = get_engine(url)
    with engine.begin() as conn:
        for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
    # every day up to `last` (cheap to regenerate): labels of earlier days set the new posts' levels
    by_sub: dict[str, list] = {s: [] for s in SUBREDDITS}
    new_posts = {s: [] for s in SUBREDDITS}
    with session_for(url) as session:
        for day in range(last):
            posts, labels = day_rows(day, per_day)
            info = {p[0]: p for p in posts}
            for pid, score, *_rest, matured, _status in labels:
                p = info[pid]
                if not p[20]:
                    by_sub[p[1]].append((matured, p[5], pid, score))
            if day < first:
                continue
            insert_rows(session, Post, POST_COLUMNS, posts)
            insert_rows(session, Label, (*LABEL_COLUMNS, "subreddit"), [(*r, info[r[0]][1]) for r in labels])
            counts: dict[tuple, int] = {}
            label_of = {r[0]: (r[1], r[5]) for r in labels}
            for p in posts:
                if not p[20]:
                    counts[(p[1], p[5] // DAY)] = counts.get((p[1], p[5] // DAY), 0) + 1
                    new_posts[p[1]].append((p[0], p[5], *label_of.get(p[0], (None, None))))
            insert_rows(
                session,
                SubredditDay,
                ("subreddit", "day", "posts"),
                [(s, d, n) for (s, d), n in counts.items()],
                update=("posts",),
            )
        for name in SUBREDDITS:  # cached levels of every kept post (what history_store stores when needed)
            rows = sorted(by_sub[name])
            matured = np.array([r[0] for r in rows], dtype=np.int64)
            values = label_of_score([r[3] for r in rows]).astype(np.float64)
            cached = new_posts[name]
            times = np.array([r[1] for r in cached], dtype=np.int64)
            levels = recent_level(matured, values, times)
            own = label_of_score([r[2] for r in cached]).astype(np.float64)
            insert_rows(
                session,
                PostLevel,
                ("post_id", "subreddit", "created_utc", "label", "matured_utc", "level"),
                [
                    (
                        r[0],
                        name,
                        r[1],
                        None if np.isnan(v) else float(v),
                        r[3],
                        None if np.isnan(lv) or np.isnan(v) else float(lv),
                    )
                    for r, v, lv in zip(cached, own, levels)
                ],
            )
        session.commit()
    with engine.begin() as conn:
        create_sqlite_triggers(conn)
        conn.execute(text("ANALYZE"))


def day_posts(session, day: int):
    import pandas as pd
    from sqlalchemy import select

    from smpp.warehouse import Post

    start = START_UTC + day * DAY
    return pd.DataFrame(
        session.execute(
            select(Post.author, Post.subreddit, Post.created_utc)
            .where(Post.created_utc >= start, Post.created_utc < start + DAY, Post.removed.is_(False))
            .order_by(Post.id)
        ).all(),
        columns=["author", "subreddit", "created_utc"],
    )


def run_days(url: str, days: list[int], per_day: int, out: Path) -> dict:
    """Ingest and build `days` in order as the DAG would; time the last one."""
    from smpp.warehouse import Label, Post, session_for
    from smpp.warehouse.db import insert_rows
    from smpp.warehouse.history_store import history_columns
    from smpp.warehouse.ingest import LABEL_COLUMNS, POST_COLUMNS

    timings = []
    with session_for(url) as session:
        for day in days:
            posts, labels = day_rows(day, per_day)
            insert_rows(session, Post, POST_COLUMNS, posts)
            insert_rows(
                session,
                Label,
                LABEL_COLUMNS,
                labels,
                update=("score", "age_hours", "observed_at", "matured_utc", "status"),
            )
            session.commit()
            frame = day_posts(session, day)
            started = time.perf_counter()
            columns = history_columns(session, frame, START_UTC + (day + 1) * DAY, 24.0)
            timings.append(round(time.perf_counter() - started, 3))
    columns.to_parquet(out)
    return {"day": days[-1], "posts": len(frame), "seconds": timings[-1], "warm_seconds": timings[:-1]}


def run_old(url: str, day: int, out: Path) -> dict:
    """The code path before incremental history: every earlier post of the subreddits involved."""
    import pandas as pd

    from smpp.features.author_history import history_features
    from smpp.warehouse import session_for
    from smpp.warehouse.history_store import warehouse_history

    with session_for(url) as session:
        frame = day_posts(session, day)
        history_features(frame.head(1), warehouse_history(session, [], [], 0))  # imports and first query untimed
        started = time.perf_counter()
        history = warehouse_history(
            session, frame["author"].tolist(), frame["subreddit"].tolist(), START_UTC + (day + 1) * DAY
        )
        columns = history_features(frame, history, label_age_hours=24.0)
        seconds = round(time.perf_counter() - started, 3)
    new = pd.read_parquet(out)
    pd.testing.assert_frame_equal(new, columns, check_exact=True)
    return {"day": day, "seconds": seconds, "history_rows": len(history), "equal": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, nargs="+", default=[30, 180, 365])
    parser.add_argument("--posts-per-day", type=int, default=5000)
    parser.add_argument("--no-old", action="store_true", help="skip the old code path")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # a fresh process: its peak RSS is this step's
        a = json.loads(args.args)
        started = time.perf_counter()
        if args.step == "build":
            bulk_build(a["url"], a["first"], a["last"], args.posts_per_day)
            result = {"seconds": round(time.perf_counter() - started, 1)}
        elif args.step == "run":
            result = run_days(a["url"], a["days"], args.posts_per_day, Path(a["out"]))
        else:
            result = run_old(a["url"], a["day"], Path(a["out"]))
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    def step(name: str, **kwargs) -> dict:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--step",
                name,
                "--args",
                json.dumps(kwargs),
                "--posts-per-day",
                str(args.posts_per_day),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{name} {kwargs} failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    print(f"{os.cpu_count()} CPUs; {args.posts_per_day} posts a day over {len(SUBREDDITS)} subreddits")
    total_new = total_old = 0.0
    with tempfile.TemporaryDirectory(prefix="smpp-long-backfill-") as work:
        url = f"sqlite:///{Path(work) / 'warehouse.sqlite'}"
        built = 0
        for day in sorted(args.days):  # day D = the D-th day of the backfill (index D - 1)
            last = day - 1
            first_warm = max(last - WARM_DAYS + 1, built)
            b = step("build", url=url, first=built, last=first_warm)
            out = str(Path(work) / f"day{day}.parquet")
            r = step("run", url=url, days=list(range(first_warm, last + 1)), out=out)
            built = last + 1
            line = (
                f"day {day:>3}: {r['posts']} posts, history_columns {r['seconds']:6.3f} s "
                f"(previous days {r['warm_seconds']}), peak RSS {r['peak_rss_mb']:6.1f} MB"
            )
            total_new += r["seconds"]
            if not args.no_old:
                o = step("old", url=url, day=last, out=out)
                total_old += o["seconds"]
                line += (
                    f" | old path {o['seconds']:6.2f} s over {o['history_rows']:,} history rows, "
                    f"peak RSS {o['peak_rss_mb']:6.1f} MB, equal: {o['equal']}"
                )
            print(line + f"  [bulk build {b['seconds']} s]", flush=True)
    print(
        f"total over the measured days: {total_new:.3f} s" + ("" if args.no_old else f" (old path {total_old:.2f} s)")
    )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
