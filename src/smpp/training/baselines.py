"""Baselines scored on the model's test slice: the bar a content model has to clear."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from smpp.training.model import TABULAR_COLUMNS, embedding_dims, embedding_matrix

log = logging.getLogger(__name__)

BASELINE_NAMES = ["baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge"]
GBM_ROUNDS = 2000
GBM_EARLY_STOPPING = 50
GBM_DOMAIN_MIN_COUNT = 5  # rarer domains are one "other" category (as in the model)
RIDGE_ALPHAS = np.logspace(-2, 3, 6)


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame["label"].to_numpy(dtype=float)


Predictor = Callable[[pd.DataFrame], np.ndarray]


def fit_subreddit_mean(train: pd.DataFrame) -> Predictor:
    """Train-slice mean label per subreddit; the global train mean for unseen subreddits."""
    means = train.groupby("subreddit")["label"].mean()
    global_mean = float(train["label"].mean())
    return lambda test: test["subreddit"].map(means).fillna(global_mean).to_numpy(dtype=float)


def baseline_subreddit_mean(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    return fit_subreddit_mean(train)(test)


def _gbm_frame(frame: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    out = pd.DataFrame(
        {c: pd.to_numeric(frame[c], errors="coerce") if c in frame else np.nan for c in columns},
        index=frame.index,
    ).astype("float32")
    # Unseen subreddits / rare domains become a missing category, which LightGBM routes like missing values.
    for name, values in categories.items():
        out[name] = pd.Categorical(frame[name].fillna("").astype(str), categories=values)
    return out


def fit_metadata_gbm(train: pd.DataFrame, val: pd.DataFrame, seed: int, columns: list[str] | None = None) -> Predictor:
    """LightGBM on the model's tabular metadata (posting time, title length, history...) + subreddit and
    domain as categories, early-stopped on the val slice. No text: the yardstick for content models."""
    import lightgbm

    columns = list(columns or TABULAR_COLUMNS)
    categories = {"subreddit": sorted(train["subreddit"].astype(str).unique())}
    if "domain" in train:
        counts = train["domain"].fillna("").astype(str).value_counts()
        categories["domain"] = sorted(counts[(counts >= GBM_DOMAIN_MIN_COUNT) & (counts.index != "")].index)
    model = lightgbm.LGBMRegressor(
        n_estimators=GBM_ROUNDS,
        learning_rate=0.05,
        num_leaves=63,
        min_child_samples=min(50, max(2, len(train) // 20)),
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    fit_kwargs = {}
    if len(val):
        fit_kwargs = {
            "eval_X": (_gbm_frame(val, columns, categories),),
            "eval_y": (_labels(val),),
            "callbacks": [lightgbm.early_stopping(GBM_EARLY_STOPPING, verbose=False)],
        }
    model.fit(
        _gbm_frame(train, columns, categories), _labels(train), categorical_feature=list(categories), **fit_kwargs
    )
    return lambda test: np.asarray(model.predict(_gbm_frame(test, columns, categories)), dtype=float)


def baseline_metadata_gbm(
    train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, seed: int, columns: list[str] | None = None
) -> np.ndarray:
    return fit_metadata_gbm(train, val, seed, columns)(test)


def _ridge_matrix(frame: pd.DataFrame, dim: int | None, encoder) -> np.ndarray:
    parts = []
    if dim is not None:
        vectors, mask = embedding_matrix(frame.get("title_emb"), len(frame), dim, "title_emb")
        parts += [vectors, mask]
    parts.append(encoder.transform(frame[["subreddit"]].astype(str)))
    return np.hstack(parts)


def fit_text_ridge(train: pd.DataFrame) -> Predictor:
    """Ridge (alpha by generalised cross-validation) on the title embedding + one-hot subreddit."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import OneHotEncoder

    dim = embedding_dims(train[["title_emb"]]).get("title_emb") if "title_emb" in train else None
    if dim is None:
        log.warning("text ridge baseline: no title embeddings in the train slice, one-hot subreddit only")
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    encoder.fit(train[["subreddit"]].astype(str))
    model = RidgeCV(alphas=RIDGE_ALPHAS)
    model.fit(_ridge_matrix(train, dim, encoder), _labels(train))
    return lambda test: np.asarray(model.predict(_ridge_matrix(test, dim, encoder)), dtype=float)


def baseline_text_ridge(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    return fit_text_ridge(train)(test)


def fit_baselines(train: pd.DataFrame, val: pd.DataFrame, seed: int, columns: list[str] | None = None) -> dict[str, Predictor]:
    """Every baseline fitted on (a sample of) the train slice, as predictors to run over the test slice in batches."""
    return {
        "baseline_subreddit_mean": fit_subreddit_mean(train),
        "baseline_metadata_gbm": fit_metadata_gbm(train, val, seed, columns),
        "baseline_text_ridge": fit_text_ridge(train),
    }


def run_baselines(
    train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, seed: int, columns: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Test-slice predictions of every baseline, by name."""
    fitted = fit_baselines(train, val, seed, columns)
    return {name: fitted[name](test) for name in BASELINE_NAMES}
