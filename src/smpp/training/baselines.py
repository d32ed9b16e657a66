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


def _ridge_matrix(frame: pd.DataFrame, dim: int | None, encoder) -> np.ndarray:
    parts = []
    if dim is not None:
        vectors, mask = embedding_matrix(frame.get("title_emb"), len(frame), dim, "title_emb")
        parts += [vectors, mask]
    parts.append(encoder.transform(frame[["subreddit"]].astype(str)))
    return np.hstack(parts)


RIDGE_BLOCK_ROWS = 8192


def _blocks(n: int, size: int = RIDGE_BLOCK_ROWS):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def ridge_gcv(matrix: Callable[[slice], np.ndarray], y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Ridge with an intercept, alpha chosen by leave-one-out error (what RidgeCV's GCV computes), in row blocks.

    `matrix(rows)` builds the design matrix of those rows. Only the p x p Gram matrix and one block
    are in memory (RidgeCV's SVD holds several float64 copies of the whole matrix: ~4.5x its size).
    Returns (coefficients, intercept, alpha).
    """
    n = len(y)
    y = np.asarray(y, dtype=np.float64)
    x_sum = None
    for rows in _blocks(n):
        part = matrix(rows).astype(np.float64).sum(axis=0)
        x_sum = part if x_sum is None else x_sum + part
    x_mean, y_mean = x_sum / n, float(y.mean())
    gram = np.zeros((len(x_mean), len(x_mean)))
    xty = np.zeros(len(x_mean))
    for rows in _blocks(n):
        centred = matrix(rows).astype(np.float64) - x_mean
        gram += centred.T @ centred
        xty += centred.T @ (y[rows] - y_mean)
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    projected = vectors.T @ xty
    inverse = np.stack([1.0 / (eigenvalues + alpha) for alpha in alphas])  # (alphas, p)
    squared = np.zeros(len(alphas))
    for rows in _blocks(n):
        z = (matrix(rows).astype(np.float64) - x_mean) @ vectors
        fitted = (z * projected) @ inverse.T  # (rows, alphas)
        leverage = 1.0 / n + (z * z) @ inverse.T  # the intercept's 1/n plus the penalised part
        residual = ((y[rows] - y_mean)[:, None] - fitted) / (1.0 - leverage)
        squared += (residual**2).sum(axis=0)
    best = int(np.argmin(squared))
    coef = vectors @ (inverse[best] * projected)
    return coef, y_mean - float(x_mean @ coef), float(alphas[best])


def fit_text_ridge(train: pd.DataFrame) -> Predictor:
    """Ridge (alpha by leave-one-out error, as RidgeCV's GCV) on the title embedding + one-hot subreddit."""
    from sklearn.preprocessing import OneHotEncoder

    dim = embedding_dims(train[["title_emb"]]).get("title_emb") if "title_emb" in train else None
    if dim is None:
        log.warning("text ridge baseline: no title embeddings in the train slice, one-hot subreddit only")
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    encoder.fit(train[["subreddit"]].astype(str))
    coef, intercept, _ = ridge_gcv(lambda rows: _ridge_matrix(train.iloc[rows], dim, encoder), _labels(train), RIDGE_ALPHAS)

    def predict(test: pd.DataFrame) -> np.ndarray:
        return np.concatenate(
            [_ridge_matrix(test.iloc[rows], dim, encoder).astype(np.float64) @ coef + intercept for rows in _blocks(len(test))]
            or [np.zeros(0)]
        )

    return predict


def fit_baselines(train: pd.DataFrame, val: pd.DataFrame, seed: int, columns: list[str] | None = None) -> dict[str, Predictor]:
    """Every baseline fitted on (a sample of) the train slice, as predictors to run over the test slice in batches."""
    return {
        "baseline_subreddit_mean": fit_subreddit_mean(train),
        "baseline_metadata_gbm": fit_metadata_gbm(train, val, seed, columns),
        "baseline_text_ridge": fit_text_ridge(train),
    }
