"""Training throughput and peak memory when the model streams day partitions (tf.data over Parquet).

    .venv/bin/python benchmarks/training.py [--rows 100000,1000000] [--rows-per-day 20000]
        [--title-dim 384] [--epochs 1] [--work-dir DIR] [--keep [--reuse]] [--fit-only]

By default each size runs the DAG's real `smpp.tasks.train_model` (warehouse labels joined to the
streamed feature partitions, split, adapt sample, fit, baselines, test scoring, plots, card) against
a synthetic SQLite warehouse holding the posts and their labels; --fit-only times the model fit alone.

For each size, synthetic feature-table rows (the pipeline's schema: META + image features +
history columns + a title embedding + subreddit/domain) are written as day partitions
(partitions/features/ds=YYYY-MM-DD/part-0.parquet); then a fresh process builds the model
(preprocessing adapted on a bounded sample), and fits it for --epochs over a stream of those
partitions. The training process reports rows/s and its peak RSS (ru_maxrss), so writing the data
does not count. Nothing is asserted: the point is that peak memory does not grow with rows.
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

SUBREDDITS = [f"sub{i:03d}" for i in range(300)]
DOMAINS = ["i.imgur.com", "self", "youtube.com", "imgur.com", "flickr.com"]


def write_partitions(root: Path, rows: int, rows_per_day: int, title_dim: int, seed: int = 0) -> list[Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smpp.features import schema
    from smpp.features.author_history import HISTORY_COLUMNS

    rng = np.random.default_rng(seed)
    w = rng.normal(size=title_dim).astype(np.float32) / np.sqrt(title_dim)
    paths = []
    day = date(2024, 1, 1)
    written = 0
    while written < rows:
        n = min(rows_per_day, rows - written)
        subs = rng.choice(len(SUBREDDITS), n)
        titles = rng.normal(size=(n, title_dim)).astype(np.float32)
        table = {
            "post_id": pa.array([f"p{written + i}" for i in range(n)]),
            "subreddit": pa.array([SUBREDDITS[s] for s in subs]),
            "domain": pa.array([DOMAINS[d] for d in rng.integers(0, len(DOMAINS), n)]),
            "created_utc": pa.array(np.sort(_day_start(day) + rng.integers(0, 86400, n)).astype(np.int64)),
        }
        for column in [*schema.META_COLUMNS, "selftext_len_log", *HISTORY_COLUMNS]:
            table[column] = pa.array(rng.normal(size=n).astype(np.float32))
        for column in schema.IMAGE_FEATURE_COLUMNS:
            table[column] = pa.array(np.where(rng.random(n) < 0.5, rng.normal(size=n), np.nan).astype(np.float32))
        table["title_emb"] = pa.FixedSizeListArray.from_arrays(pa.array(titles.reshape(-1)), title_dim)
        label = np.log1p(np.round(np.expm1(np.clip(3 + subs / 100 + titles @ w + 0.3 * rng.normal(size=n), 0, 12))))
        table["label"] = pa.array(label.astype(np.float32))
        table["author"] = pa.array([f"u{a}" for a in rng.integers(0, max(1, n // 4), n)])
        path = root / "partitions" / "features" / f"ds={day.isoformat()}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), path)
        paths.append(path)
        written += n
        day += timedelta(days=1)
    return paths


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def write_warehouse(root: Path, paths: list[Path]) -> None:
    """Posts and matured archive labels for every row of the partitions (as the archive source stores them)."""
    import numpy as np
    import pyarrow.parquet as pq
    from sqlalchemy import insert

    from smpp.warehouse import Label, Post, session_for

    with session_for(f"sqlite:///{root / 'warehouse.sqlite'}") as session:
        for path in paths:
            table = pq.read_table(path, columns=["post_id", "subreddit", "author", "created_utc", "label"]).to_pandas()
            created = table["created_utc"].to_numpy(np.int64)
            score = np.round(np.expm1(table["label"].to_numpy(float))).astype(int)
            session.execute(
                insert(Post),
                [
                    {
                        "id": p,
                        "subreddit": s,
                        "author": a,
                        "created_utc": int(c),
                        "source": "archive",
                        "first_seen_at": int(c),
                        "title": "t",
                        "selftext_len": 0,
                    }
                    for p, s, a, c in zip(table["post_id"], table["subreddit"], table["author"], created)
                ],
            )
            session.execute(
                insert(Label),
                [
                    {
                        "post_id": p,
                        "score": int(v),
                        "age_hours": None,
                        "label_age_hours": 24.0,
                        "observed_at": None,
                        "matured_utc": int(c) + 3600,
                        "status": "archive",
                    }
                    for p, v, c in zip(table["post_id"], score, created)
                ],
            )
        session.commit()


def train_model_run(root: Path, epochs: int, batch_size: int) -> dict:
    """Runs in its own process: the DAG's train_model over the partitions and warehouse under `root`."""
    os.environ.update(
        {
            "SMPP_DATA_DIR": str(root),
            "SMPP_MODEL_PROFILE": "offline",
            "SMPP_TRAINING__EPOCHS": str(epochs),
            "SMPP_TRAINING__BATCH_SIZE": str(batch_size),
            "SMPP_TRAINING__PATIENCE": str(epochs + 1),
        }
    )
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from smpp import tasks

    days = sorted(p.parent.name[3:] for p in (root / "partitions" / "features").glob("ds=*/part-0.parquet"))
    last = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC)
    started = time.perf_counter()
    report = tasks.train_model(last, last + timedelta(days=1), {"source": "archive"})
    total_s = time.perf_counter() - started
    metrics = json.loads((Path(report["version_dir"]) / "metrics.json").read_text())
    rows = report["rows"]
    return {
        "train_rows": rows["train"],
        "input_rows": rows["input"],
        "epochs": metrics["model"]["epochs_run"],
        "train_model_s": round(total_s, 1),
        "rows_per_s": round(rows["input"] / total_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "within_spearman": round(metrics["model"]["spearman_within_subreddit"] or 0, 3),
    }


def train_only(root: Path, epochs: int, batch_size: int) -> dict:
    """Runs in its own process: stream the partitions, fit, report."""
    from smpp.settings import TrainingSettings
    from smpp.training.model import InputSpec, build_model, fit_datasets, keras_module
    from smpp.training.stream import adapt_sample, parquet_dataset

    paths = sorted((root / "partitions" / "features").glob("ds=*/part-0.parquet"))
    val_paths, train_paths = paths[-1:], paths[:-1]
    probe = _probe(train_paths[0])
    spec = InputSpec.for_frame(probe, {"title_emb": len(probe["title_emb"].iloc[0])})
    keras = keras_module()
    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    inputs, labels = adapt_sample(train_paths, spec)
    model = build_model(inputs, labels, spec)
    del inputs, labels
    build_s = time.perf_counter() - started
    training = TrainingSettings(epochs=epochs, batch_size=batch_size, patience=epochs + 1)
    train_rows = sum(_rows(p) for p in train_paths)
    started = time.perf_counter()
    fit = fit_datasets(
        model,
        parquet_dataset(train_paths, spec, batch_size, shuffle_seed=0),
        parquet_dataset(val_paths, spec, 4096),
        training,
    )
    fit_s = time.perf_counter() - started
    return {
        "train_rows": train_rows,
        "epochs": fit["epochs_run"],
        "adapt_and_build_s": round(build_s, 1),
        "fit_s": round(fit_s, 1),
        "rows_per_s": round(train_rows * fit["epochs_run"] / fit_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "final_val_loss": round(fit["history"]["val_loss"][-1], 4),
    }


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _probe(path: Path):
    import pyarrow.parquet as pq

    return next(pq.ParquetFile(path).iter_batches(batch_size=256)).to_pandas()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--title-dim", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="reuse the data a --keep run left in --work-dir")
    parser.add_argument("--fit-only", action="store_true", help="time the model fit alone, not train_model")
    parser.add_argument("--train-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_only:
        run = train_only if args.fit_only else train_model_run
        print(json.dumps(run(args.train_only, args.epochs, args.batch_size)))
        return
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="smpp-train-bench-"))
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        root = work / f"rows{rows}"
        started = time.perf_counter()
        if args.reuse and (root / "partitions").exists():
            shutil.rmtree(root / "models", ignore_errors=True)  # a fresh registry: no champion to re-score
        else:
            paths = write_partitions(root, rows, args.rows_per_day, args.title_dim)
            if not args.fit_only:
                write_warehouse(root, paths)
        write_s = time.perf_counter() - started
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--train-only",
                str(root),
                "--epochs",
                str(args.epochs),
                "--batch-size",
                str(args.batch_size),
                *(["--fit-only"] if args.fit_only else []),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"training run for {rows} rows failed")
        result = {"rows": rows, "write_s": round(write_s, 1), **json.loads(out.stdout.strip().splitlines()[-1])}
        phases = [line.split("training ", 1)[1] for line in out.stderr.splitlines() if "peak RSS so far" in line]
        if phases:
            result["peak_rss_by_phase"] = phases
        results.append(result)
        print(json.dumps(result), flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    seconds = "fit_s" if args.fit_only else "train_model_s"
    print(f"{'rows':>9} {'rows/s':>13} {'peak RSS MB':>12} {seconds:>14}")
    for r in results:
        print(f"{r['rows']:>9} {r['rows_per_s']:>13} {r['peak_rss_mb']:>12} {r[seconds]:>14}")


if __name__ == "__main__":
    main()
