"""Baselines scored on the model's test slice: the bar a content model has to clear."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from smpp.training.model import TABULAR_COLUMNS, embedding_matrix

log = logging.getLogger(__name__)

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


class RidgeDesign:
    """Design matrix of the text ridge: title vector, its presence mask, one-hot subreddit (train-slice vocabulary)."""

    def __init__(self, subreddits: Iterable[str], dim: int | None):
        self.subreddits = pd.Index(sorted(set(subreddits)))
        self.dim = dim

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        if self.dim is not None:
            vectors, mask = embedding_matrix(frame.get("title_emb"), len(frame), self.dim, "title_emb")
            parts += [vectors.astype(np.float64), mask.astype(np.float64)]
        onehot = np.zeros((len(frame), len(self.subreddits)))
        codes = self.subreddits.get_indexer(frame["subreddit"].astype(str))
        seen = codes >= 0  # an unseen subreddit gets no indicator (OneHotEncoder's handle_unknown="ignore")
        onehot[np.flatnonzero(seen), codes[seen]] = 1.0
        parts.append(onehot)
        return np.hstack(parts)


Blocks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def ridge_gcv(blocks: Blocks, alphas: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Ridge with an intercept, alpha chosen by leave-one-out error (what RidgeCV's GCV computes), streamed.

    `blocks()` yields (design rows, labels) of the training rows and is called twice: sums and the
    Gram matrix, then each row's leave-one-out residual. Only p x p matrices and one block are in
    memory, whatever the number of rows. Returns (coefficients, intercept, alpha).
    """
    n, x_sum, y_sum, gram, xty = 0, None, 0.0, None, None
    for x, y in blocks():
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x_sum is None:
            x_sum, gram, xty = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1])), np.zeros(x.shape[1])
        n += len(y)
        x_sum += x.sum(axis=0)
        y_sum += float(y.sum())
        gram += x.T @ x
        xty += x.T @ y
    if not n:
        raise ValueError("ridge_gcv: no training rows")
    x_mean, y_mean = x_sum / n, y_sum / n
    # centre through the sums: the same centred Gram as a second pass would give, in one pass
    gram -= n * np.outer(x_mean, x_mean)
    xty -= n * x_mean * y_mean
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    projected = vectors.T @ xty
    inverse = np.stack([1.0 / (eigenvalues + alpha) for alpha in alphas])  # (alphas, p)
    squared = np.zeros(len(alphas))
    for x, y in blocks():
        z = (np.asarray(x, dtype=np.float64) - x_mean) @ vectors
        fitted = (z * projected) @ inverse.T  # (rows, alphas)
        leverage = 1.0 / n + (z * z) @ inverse.T  # the intercept's 1/n plus the penalised part
        residual = ((np.asarray(y, dtype=np.float64) - y_mean)[:, None] - fitted) / (1.0 - leverage)
        squared += (residual**2).sum(axis=0)
    best = int(np.argmin(squared))
    coef = vectors @ (inverse[best] * projected)
    return coef, y_mean - float(x_mean @ coef), float(alphas[best])


FrameBlocks = Callable[[], Iterable[tuple[pd.DataFrame, np.ndarray]]]


def fit_text_ridge(train_blocks: FrameBlocks, subreddits: Iterable[str], title_dim: int | None) -> Predictor:
    """Ridge (alpha by leave-one-out error, as RidgeCV's GCV) on the title embedding + one-hot subreddit.

    `train_blocks()` yields (frame with subreddit and title_emb, labels) over the whole train slice:
    streamed twice, never held, so memory does not grow with the slice.
    """
    if title_dim is None:
        log.warning("text ridge baseline: no title embeddings in the train slice, one-hot subreddit only")
    design = RidgeDesign(subreddits, title_dim)
    coef, intercept, _ = ridge_gcv(
        lambda: ((design.matrix(frame), labels) for frame, labels in train_blocks()), RIDGE_ALPHAS
    )
    return lambda test: design.matrix(test) @ coef + intercept


def fit_baselines(
    train: pd.DataFrame,
    gbm_train: pd.DataFrame,
    gbm_val: pd.DataFrame,
    train_blocks: FrameBlocks,
    title_dim: int | None,
    seed: int,
    columns: list[str] | None = None,
) -> dict[str, Predictor]:
    """Every baseline as a predictor to run over the test slice in batches.

    `train`: the whole train slice's (subreddit, label); `gbm_train`/`gbm_val`: the (bounded) samples
    LightGBM fits in memory; `train_blocks`: the train slice streamed for the ridge.
    """
    return {
        "baseline_subreddit_mean": fit_subreddit_mean(train),
        "baseline_metadata_gbm": fit_metadata_gbm(gbm_train, gbm_val, seed, columns),
        "baseline_text_ridge": fit_text_ridge(train_blocks, train["subreddit"].astype(str).unique(), title_dim),
    }
