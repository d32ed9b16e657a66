"""Held-out subreddit check (issue 5): the `smpp evaluate` protocol on each half of a dump's subreddits.

A subreddit's half is zlib.crc32(name.lower().encode()) % 2 (stable across runs and machines).
Each half is evaluated on its own, as if it were the whole dump: its posts only (history features
from them alone), chronological split (oldest 80 % train + validation, newest 20 % test),
train_and_evaluate with the current settings. Prints model and baselines (overall Spearman,
mean within-subreddit Spearman, MAE, RMSE), the margin over the best baseline and the issue's bar;
asserts nothing. Tuning must never look at these numbers (benchmarks/tune_model.py reads
validation slices only).

    PYTHONPATH=src .venv/bin/python benchmarks/heldout_subreddits.py [--dump PATH] [--out DIR] [--scope half0 half1 all]
        [--max-posts N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import zlib
from pathlib import Path

DUMP = Path(__file__).resolve().parents[2] / "shared" / "data" / "reddit_top_dev.ndjson.zst"
NAMES = ["model", "baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge"]
WITHIN_BAR = 0.29
MARGIN_BAR = 0.03


def subreddit_half(name: str) -> int:
    return zlib.crc32(str(name).lower().encode("utf-8")) % 2


def evaluate_posts(posts, out_dir: Path) -> dict:
    """evaluate_archive's protocol on an in-memory post frame (the dump already read)."""
    from smpp.lifecycle.evaluate import archive_feature_frame
    from smpp.settings import Settings
    from smpp.training.train import train_and_evaluate

    settings = Settings()
    settings = settings.with_overrides(
        training={
            **settings.training.model_dump(),
            "test_fraction": 0.2,
            "train_window_days": None,
            "train_window_rows": None,
        }
    )
    frame = archive_feature_frame(settings, posts)
    return train_and_evaluate(settings, frame, out_dir).metrics


def summary(metrics: dict) -> dict:
    rows = {}
    for name in NAMES:
        m = metrics.get(name) or {}
        rows[name] = {k: m.get(k) for k in ("spearman", "spearman_within_subreddit", "mae", "rmse")}
    best = max(NAMES[1:], key=lambda n: rows[n]["spearman_within_subreddit"] or -1.0)
    within = rows["model"]["spearman_within_subreddit"] or 0.0
    margin = within - (rows[best]["spearman_within_subreddit"] or 0.0)
    overall_ok = (rows["model"]["spearman"] or 0.0) >= (rows["baseline_subreddit_mean"]["spearman"] or 0.0)
    return {
        "rows": rows,
        "best_baseline": best,
        "margin": margin,
        "validation_within": (metrics.get("model") or {}).get("validation", {}).get("spearman_within_subreddit"),
        "subreddits_scored": (metrics.get("model") or {}).get("subreddits_scored"),
        "split_rows": metrics.get("rows"),
        "bar_met": within >= WITHIN_BAR and margin >= MARGIN_BAR and overall_ok,
        "overall_not_below_subreddit_mean": overall_ok,
    }


def print_summary(scope: str, result: dict, seconds: float) -> None:
    print(f"\n== {scope} ({seconds:.0f}s) rows {result['split_rows']} subreddits scored {result['subreddits_scored']}")
    print(f"{'':26s} {'spearman':>9s} {'within':>8s} {'mae':>7s} {'rmse':>7s}")
    for name, m in result["rows"].items():
        cells = [
            f"{m[k]:.4f}" if m[k] is not None else "   n/a"
            for k in ("spearman", "spearman_within_subreddit", "mae", "rmse")
        ]
        print(f"{name:26s} {cells[0]:>9s} {cells[1]:>8s} {cells[2]:>7s} {cells[3]:>7s}")
    print(
        f"margin over {result['best_baseline']}: {result['margin']:+.4f}; "
        f"validation within {result['validation_within']}; "
        f"bar (within >= {WITHIN_BAR}, margin >= {MARGIN_BAR}, overall >= subreddit mean): {result['bar_met']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", type=Path, default=DUMP)
    parser.add_argument("--out", type=Path, default=None, help="version folders + summary.json (default: a temp dir)")
    parser.add_argument("--scope", nargs="+", default=["half0", "half1"], choices=["half0", "half1", "all"])
    parser.add_argument(
        "--max-posts",
        type=int,
        default=None,
        help="the dump's oldest N posts only (e.g. the part whose title vectors are cached)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from smpp.lifecycle.evaluate import read_archive

    out = args.out or Path(tempfile.mkdtemp(prefix="heldout-"))
    posts, scan = read_archive(args.dump)
    if args.max_posts:
        posts = posts.sort_values("created_utc", kind="stable").head(args.max_posts).reset_index(drop=True)
    halves = posts["subreddit"].map(subreddit_half)
    print(
        f"dump {args.dump}: {len(posts)} posts, {posts['subreddit'].nunique()} subreddits; "
        f"half sizes {halves.value_counts().sort_index().to_dict()} (posts); out {out}",
        flush=True,
    )
    results = {}
    for scope in args.scope:
        part = posts if scope == "all" else posts.loc[halves == int(scope[-1])].reset_index(drop=True)
        started = time.perf_counter()
        results[scope] = summary(evaluate_posts(part, out / scope))
        print_summary(scope, results[scope], time.perf_counter() - started)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
