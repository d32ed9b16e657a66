"""Tuning harness for the Keras model (issue 5): score candidate TrainingSettings on VALIDATION only.

Builds the dev dump's feature frame once (cached as a pickle), splits it exactly like
train_and_evaluate (chronological, test = newest 20 %, train_window_days = None), and for each
candidate fits the model on train, early-stops on val and prints the mean within-subreddit Spearman
on the val slice: of the whole dump and of each half of its subreddits (zlib.crc32(name.lower()) % 2).
Test slices are never scored here.

    PYTHONPATH=src .venv/bin/python benchmarks/tune_model.py --build-frame
    PYTHONPATH=src .venv/bin/python benchmarks/tune_model.py --scope half0 half1 \
        --candidate base '{}' --candidate ens3 '{"ensemble_size": 3}'
    # an ablation (issue 17): without the title-form columns, with the GBM's validation score beside
    PYTHONPATH=src .venv/bin/python benchmarks/tune_model.py --proxy-text --scope half0 half1 \
        --candidate with '{"gbm": true}' --candidate without '{"gbm": true, "drop_columns": ["title_caps_ratio"]}'
    # a rolling training window against all history, on the same validation slice (issue 13)
    PYTHONPATH=src .venv/bin/python benchmarks/tune_model.py --proxy-text --scope all \
        --candidate all '{}' --candidate rows150k '{"train_window_rows": 150000}'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

DUMP = Path(__file__).resolve().parents[2] / "shared" / "data" / "reddit_top_dev.ndjson.zst"
CACHE = Path("/work/evals/frame_cache/dev_frame_proxy.pkl")


def subreddit_half(name: str) -> int:
    """The stable half of a subreddit (also used by benchmarks/heldout_subreddits.py)."""
    return zlib.crc32(str(name).lower().encode("utf-8")) % 2


def evaluation_settings(**training):
    from smpp.settings import Settings

    base = Settings()
    merged = {
        **base.training.model_dump(),
        "test_fraction": 0.2,
        "train_window_days": None,
        "train_window_rows": None,
        **training,
    }
    return base.with_overrides(training=merged)


PROXY_DIM = 384


def proxy_title_vectors(titles: pd.Series, seed: int = 0) -> list[np.ndarray]:
    """Unit-norm TF-IDF -> truncated SVD title vectors: a cheap stand-in for the MiniLM vectors.

    Used only to screen model settings when the sentence-encoder cache is cold (embedding the dump
    costs hours on a loaded 2-core machine); label-free, so fitting it on every title leaks nothing.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(min_df=3, max_features=200_000, ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
    matrix = tfidf.fit_transform(titles.fillna("").astype(str))
    vectors = TruncatedSVD(PROXY_DIM, n_iter=3, random_state=seed).fit_transform(matrix).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    return list(vectors)


def build_frame(dump: Path, cache: Path, proxy_text: bool = False, max_posts: int | None = None) -> pd.DataFrame:
    """The archive feature frame; `max_posts` keeps the dump's oldest posts (it is in time order)."""
    from smpp.lifecycle.evaluate import archive_feature_frame, read_archive

    started = time.perf_counter()
    posts, scan = read_archive(dump)
    if max_posts:
        posts = posts.sort_values("created_utc", kind="stable").head(max_posts).reset_index(drop=True)
    frame = archive_feature_frame(evaluation_settings(), posts, embed_titles=not proxy_text)
    if proxy_text:
        order = dict(zip(posts["id"].astype(str), proxy_title_vectors(posts["title"])))
        frame["title_emb"] = frame["post_id"].map(order)
    cache.parent.mkdir(parents=True, exist_ok=True)
    frame.to_pickle(cache)
    print(f"frame {frame.shape} in {time.perf_counter() - started:.0f}s; scan {scan}", flush=True)
    return frame


CONTEXT_COLUMNS = ["ctx_sub_hour_from_peak"]


def posting_context(frame: pd.DataFrame) -> pd.DataFrame:
    """An experiment (issue 17), not a pipeline feature: how far each post's UTC hour is from its
    subreddit's peak posting hour so far (strictly earlier posts; NaN for the first). The pipeline's
    own context columns (posts in the last hour and day, gap since the previous) are history columns.
    """
    distance = np.full(len(frame), np.nan, np.float32)
    created = pd.to_numeric(frame["created_utc"]).to_numpy(np.int64)
    hours = (created // 3600) % 24
    for _, rows in pd.Series(np.arange(len(frame))).groupby(frame["subreddit"].astype(str).to_numpy()):
        at = rows.to_numpy()
        at = at[np.argsort(created[at], kind="stable")]
        earlier = np.searchsorted(created[at], created[at], "left")  # posts strictly before each one
        onehot = np.zeros((len(at) + 1, 24), np.int32)
        onehot[np.arange(1, len(at) + 1), hours[at]] = 1
        before = np.cumsum(onehot, axis=0)[earlier]  # hour histogram of the strictly earlier posts
        off = np.abs(hours[at] - before.argmax(axis=1))
        distance[at] = np.where(earlier > 0, np.minimum(off, 24 - off), np.nan)
    return pd.DataFrame({"ctx_sub_hour_from_peak": distance}, index=frame.index)


def scope_frame(frame: pd.DataFrame, scope: str) -> pd.DataFrame:
    if scope == "all":
        return frame
    half = int(scope.removeprefix("half"))
    keep = frame["subreddit"].map(subreddit_half) == half
    return frame.loc[keep].reset_index(drop=True)


def score_candidate(frame: pd.DataFrame, overrides: dict) -> dict:
    """Fit on train, early-stop on val, return validation metrics (model + subreddit-mean + GBM baselines)."""
    from smpp.training.metrics import regression_metrics
    from smpp.training.model import (
        InputSpec,
        build_model,
        embedding_dims,
        fit_model,
        keras_module,
        model_inputs,
        predict_frame,
    )
    from smpp.training.split import labelled_rows
    from smpp.training.train import split_for_training

    # a training window (train_window_rows) is scored on the same validation slice as all history:
    # the split is cut on all rows, then train keeps its newest rows, as many as the window's train
    # share (1 - val - test) of N would be
    window_rows = overrides.pop("train_window_rows", None)
    # an ablation: these feature columns as if the partitions never had them (optional inputs);
    # history columns are blanked, not dropped: a frame without them gets them all recomputed
    from smpp.features.author_history import HISTORY_COLUMNS

    dropped = [c for c in overrides.pop("drop_columns", []) if c in frame]
    blanked = [c for c in dropped if c in HISTORY_COLUMNS]
    frame = frame.drop(columns=[c for c in dropped if c not in blanked]).assign(**dict.fromkeys(blanked, np.nan))
    with_gbm = overrides.pop("gbm", False)
    if overrides.pop("context", False):
        from smpp.training import model as model_module

        frame = pd.concat([frame, posting_context(frame)], axis=1)
        # optional tabular inputs are picked from this list when the frame has them
        model_module.OPTIONAL_TABULAR_COLUMNS = [
            *[c for c in model_module.OPTIONAL_TABULAR_COLUMNS if c not in CONTEXT_COLUMNS],
            *CONTEXT_COLUMNS,
        ]
    settings = evaluation_settings(**overrides)
    training = settings.training
    split = split_for_training(settings, labelled_rows(frame))
    if window_rows is not None:
        from smpp.training.split import within_window

        share = 1 - training.val_fraction - training.test_fraction
        split.train = within_window(split.train, None, int(round(window_rows * share)))
    spec = InputSpec.for_frame(split.train, embedding_dims(split.train), level_offset=training.level_offset)
    y_train = split.train["label"].to_numpy(np.float32)
    y_val = split.val["label"].to_numpy(np.float32)
    keras = keras_module()
    keras.utils.set_random_seed(training.seed)
    started = time.perf_counter()
    train_inputs = model_inputs(split.train, spec)
    model = build_model(train_inputs, y_train, spec, training=training)
    fit = fit_model(model, train_inputs, y_train, model_inputs(split.val, spec), y_val, training)
    predictions = predict_frame(model, split.val)
    metrics = regression_metrics(
        y_val.astype(float), predictions, split.val["subreddit"].to_numpy(), training.within_subreddit_min_posts
    )
    gbm = {}
    if with_gbm:  # the metadata LightGBM on the same columns, early-stopped on this val slice (optimistic)
        from smpp.training.baselines import fit_metadata_gbm

        gbm_val = regression_metrics(
            y_val.astype(float),
            fit_metadata_gbm(split.train, split.val, training.seed, spec.tabular_columns)(split.val),
            split.val["subreddit"].to_numpy(),
            training.within_subreddit_min_posts,
        )
        gbm = {"gbm_val_within": gbm_val["spearman_within_subreddit"], "gbm_val_spearman": gbm_val["spearman"]}
    return {
        **gbm,
        "dropped": dropped,
        "tabular_columns": len(spec.tabular_columns),
        "val_within": metrics["spearman_within_subreddit"],
        "val_spearman": metrics["spearman"],
        "val_mae": metrics["mae"],
        "epochs": fit["epochs_run"],
        "best_epoch": fit["best_epoch"],
        "params": int(model.count_params()),
        "fit_s": round(time.perf_counter() - started, 1),
        "train_rows": len(split.train),
        "val_rows": len(split.val),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-frame", action="store_true")
    parser.add_argument("--dump", type=Path, default=DUMP)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--scope", nargs="+", default=["half0", "half1"], help="all, half0, half1")
    parser.add_argument("--candidate", nargs=2, action="append", metavar=("NAME", "JSON"), default=[])
    parser.add_argument("--proxy-text", action="store_true", help="TF-IDF/SVD title vectors instead of the encoder")
    parser.add_argument("--max-posts", type=int, default=None, help="oldest N posts only (encoder cache warm for them)")
    parser.add_argument("--log", type=Path, default=Path("/work/evals/tune.jsonl"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.build_frame or not args.cache.is_file():
        frame = build_frame(args.dump, args.cache, args.proxy_text, args.max_posts)
    else:
        frame = pd.read_pickle(args.cache)
    for name, raw in args.candidate:
        overrides = json.loads(raw)
        for scope in args.scope:
            result = {
                "name": name,
                "frame": args.cache.name,
                "scope": scope,
                "overrides": overrides,
                **score_candidate(scope_frame(frame, scope), dict(overrides)),
            }
            print(json.dumps(result), flush=True)
            with args.log.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
