"""Long backfill, training side (issue 13): does the daily train/evaluate step stay flat as history grows?

    PYTHONPATH=src .venv/bin/python benchmarks/long_backfill_training.py [--days-total 365] [--posts-per-day 5000]
        [--measure 30,180,365] [--epochs 1] [--title-dim 384] [--work-dir DIR] [--keep [--reuse]]

A synthetic high-volume history (default 5,000 posts a day over 365 days in 3 subreddits) is built in
bulk, not day by day: feature partitions written straight in the pipeline's schema (partitions/
features/ds=YYYY-MM-DD/part-0.parquet, as benchmarks/training.py writes them) and the posts with their
matured archive labels inserted into a SQLite warehouse (benchmarks/training.write_warehouse). Then,
for each measured day, a fresh process runs the DAG's `tasks.train_model` and `tasks.evaluate_and_publish`
for that day with the default settings (training window, cadence), except --epochs (patience above it,
so each day fits exactly that many epochs), and reports wall time, peak RSS (ru_maxrss, first-pass
child excluded) and the rows it trained on. Days are measured in order on one registry, so later days
re-score the champion as the DAG would. The backfill total is estimated from the measured days (see
`estimate_total`). Nothing is asserted.
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SUBREDDITS = ["pics", "aww", "EarthPorn"]
DOMAINS = ["i.imgur.com", "self", "youtube.com", "imgur.com", "flickr.com"]
FIRST_DAY = date(2024, 1, 1)


def write_history(root: Path, days: int, posts_per_day: int, title_dim: int, seed: int = 0) -> list[Path]:
    """One feature partition per day, `posts_per_day` rows over the 3 subreddits, a planted title signal."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smpp.features import schema
    from smpp.features.author_history import HISTORY_COLUMNS
    from training import _day_start

    rng = np.random.default_rng(seed)
    w = rng.normal(size=title_dim).astype(np.float32) / np.sqrt(title_dim)
    effects = np.array([1.0, 0.5, 0.0])
    paths = []
    for offset in range(days):
        day = FIRST_DAY + timedelta(days=offset)
        n = posts_per_day
        subs = rng.integers(0, len(SUBREDDITS), n)
        titles = rng.normal(size=(n, title_dim)).astype(np.float32)
        table = {
            "post_id": pa.array([f"d{offset}p{i}" for i in range(n)]),
            "subreddit": pa.array([SUBREDDITS[s] for s in subs]),
            "domain": pa.array([DOMAINS[d] for d in rng.integers(0, len(DOMAINS), n)]),
            "created_utc": pa.array(np.sort(_day_start(day) + rng.integers(0, 86400, n)).astype(np.int64)),
        }
        for column in [*schema.META_COLUMNS, "selftext_len_log", *HISTORY_COLUMNS]:
            table[column] = pa.array(rng.normal(size=n).astype(np.float32))
        for column in schema.IMAGE_FEATURE_COLUMNS:
            table[column] = pa.array(np.where(rng.random(n) < 0.5, rng.normal(size=n), np.nan).astype(np.float32))
        table["title_emb"] = pa.FixedSizeListArray.from_arrays(pa.array(titles.reshape(-1)), title_dim)
        label = np.log1p(np.round(np.expm1(np.clip(3 + effects[subs] + titles @ w + 0.5 * rng.normal(size=n), 0, 12))))
        table["label"] = pa.array(label.astype(np.float32))
        table["author"] = pa.array([f"u{a}" for a in rng.integers(0, 20_000, n)])
        path = root / "partitions" / "features" / f"ds={day.isoformat()}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), path)
        paths.append(path)
    return paths


def run_day(root: Path, day_number: int, epochs: int) -> dict:
    """Runs in its own process: train_model then evaluate_and_publish for day `day_number` (1 = the first day)."""
    os.environ.update(
        {
            "SMPP_DATA_DIR": str(root),
            "SMPP_MODEL_PROFILE": "offline",
            "SMPP_TRAINING__EPOCHS": str(epochs),
            "SMPP_TRAINING__PATIENCE": str(epochs + 1),
        }
    )
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from smpp import tasks
    from smpp.settings import get_settings

    day = FIRST_DAY + timedelta(days=day_number - 1)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    params = {"source": "archive"}
    started = time.perf_counter()
    trained = tasks.train_model(start, start + timedelta(days=1), params)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    published = tasks.evaluate_and_publish(start, start + timedelta(days=1), trained["version"], params)
    publish_s = time.perf_counter() - started
    metrics = json.loads((Path(trained["version_dir"]) / "metrics.json").read_text())
    training = get_settings().training
    return {
        "day": day_number,
        "date": day.isoformat(),
        "train_window_rows": training.train_window_rows,
        "retrain_every_days": training.retrain_every_days,
        "partitions_read": trained["partitions_read"],
        "rows": trained["rows"],
        "epochs": (metrics.get("model") or {}).get("epochs_run"),
        "train_model_s": round(train_s, 1),
        "evaluate_and_publish_s": round(publish_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "within_spearman": (metrics.get("model") or {}).get("spearman_within_subreddit"),
        "promoted": published["promoted"],
        "decision": published.get("reason"),
        "champion_before": published["champion_before"],
    }


def estimate_total(measured: dict[int, float], days_total: int, saturated_day: int) -> float:
    """Seconds for a whole backfill, from the per-day times measured.

    Before the window fills (`saturated_day`: the first day whose matured rows reach train_window_rows)
    a day's cost grows with its rows: day d costs t(first measured) * d / that day's number. From there
    on, linear interpolation between the measured days (flat beyond the last one).
    """
    points = sorted(measured.items())
    total = 0.0
    for d in range(1, days_total + 1):
        if d <= points[0][0]:
            total += points[0][1] * min(d, saturated_day) / min(points[0][0], saturated_day)
            continue
        for (d0, t0), (d1, t1) in zip(points, points[1:]):
            if d0 <= d <= d1:
                total += t0 + (t1 - t0) * (d - d0) / (d1 - d0)
                break
        else:
            total += points[-1][1]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days-total", type=int, default=365)
    parser.add_argument("--posts-per-day", type=int, default=5000)
    parser.add_argument("--measure", default="30,180,365")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--title-dim", type=int, default=384)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="reuse the history a --keep run left in --work-dir")
    parser.add_argument("--run-day", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="smpp-long-backfill-"))
    if args.run_day:
        print(json.dumps(run_day(work, args.run_day, args.epochs)))
        return
    from training import write_warehouse

    started = time.perf_counter()
    if args.reuse and (work / "partitions").exists():
        shutil.rmtree(work / "models", ignore_errors=True)
        shutil.rmtree(work / "runs", ignore_errors=True)
    else:
        paths = write_history(work, args.days_total, args.posts_per_day, args.title_dim)
        print(
            f"features: {len(paths)} days x {args.posts_per_day} posts in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        write_warehouse(work, paths)
    print(f"history built in {time.perf_counter() - started:.0f}s under {work}", flush=True)
    results = []
    for day_number in (int(d) for d in args.measure.split(",")):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--run-day",
                str(day_number),
                "--work-dir",
                str(work),
                "--epochs",
                str(args.epochs),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"day {day_number} failed")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(json.dumps(result), flush=True)
    window = results[0]["train_window_rows"] or args.days_total * args.posts_per_day
    saturated = min(args.days_total, window // args.posts_per_day + 1)  # +1: the run day's labels have not matured
    print(
        f"\n{'day':>4} {'partitions':>10} {'train rows':>10} "
        f"{'train_model s':>13} {'evaluate s':>10} {'peak RSS MB':>11}"
    )
    for r in results:
        print(
            f"{r['day']:>4} {r['partitions_read']:>10} {r['rows']['train']:>10} {r['train_model_s']:>13} "
            f"{r['evaluate_and_publish_s']:>10} {r['peak_rss_mb']:>11}"
        )
    first, last = results[0], results[-1]
    for key in ("train_model_s", "evaluate_and_publish_s"):
        print(f"day {last['day']} / day {first['day']} {key}: {last[key] / max(first[key], 1e-9):.2f}x")
    per_day = {r["day"]: r["train_model_s"] + r["evaluate_and_publish_s"] for r in results}
    total = estimate_total(per_day, args.days_total, saturated)
    print(
        f"estimated {args.days_total}-day backfill, train_model + evaluate_and_publish at {args.epochs} epoch(s): "
        f"{total / 3600:.1f} h (window full from day {saturated})"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
