"""Training input streamed from day partitions: tf.data over Parquet, so memory stays flat as history grows.

Only one record batch per file is in memory at a time (plus tf.data's shuffle buffer); the
normalisers and vocabularies are adapted on a bounded sample of the training slice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.training.model import (
    DOMAIN_INPUT,
    STRING_INPUTS,
    SUBREDDIT_INPUT,
    TABULAR_INPUT,
    InputSpec,
    model_inputs,
)

READ_BATCH_ROWS = 8192
SHUFFLE_BUFFER = 16384
ADAPT_SAMPLE_ROWS = 50_000


def _columns(spec: InputSpec, label: str | None) -> list[str]:
    columns = [SUBREDDIT_INPUT, *spec.tabular_columns, *spec.embedding_dims]
    if spec.use_domain:
        columns.append(DOMAIN_INPUT)
    return columns + ([label] if label else [])


def iter_frames(paths: Sequence[Path], columns: list[str], batch_rows: int = READ_BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """Record batches of the partitions as small pandas frames (columns absent from a file are left out)."""
    import pyarrow.parquet as pq

    for path in paths:
        handle = pq.ParquetFile(path)
        present = [c for c in columns if c in handle.schema_arrow.names]
        for batch in handle.iter_batches(batch_size=batch_rows, columns=present):
            yield batch.to_pandas()


def _signature(spec: InputSpec, tf) -> dict[str, Any]:
    signature = {}
    for column, dim in spec.embedding_dims.items():
        signature[column] = tf.TensorSpec((None, dim), tf.float32)
        signature[f"{column}_mask"] = tf.TensorSpec((None, 1), tf.float32)
    n_tab = len(spec.tabular_columns)
    signature[TABULAR_INPUT] = tf.TensorSpec((None, n_tab), tf.float32)
    signature[f"{TABULAR_INPUT}_mask"] = tf.TensorSpec((None, n_tab), tf.float32)
    signature[SUBREDDIT_INPUT] = tf.TensorSpec((None, 1), tf.string)
    if spec.use_domain:
        signature[DOMAIN_INPUT] = tf.TensorSpec((None, 1), tf.string)
    return signature


def parquet_dataset(
    paths: Sequence[Path], spec: InputSpec, batch_size: int, label: str = "label", shuffle_seed: int | None = None
):
    """tf.data dataset of (inputs, label) batches read lazily from Parquet; unlabelled rows are skipped."""
    from smpp.compat import import_tensorflow

    tf = import_tensorflow()
    columns = _columns(spec, label)
    paths = [Path(p) for p in paths]

    def generate():
        for frame in iter_frames(paths, columns):
            labels = pd.to_numeric(frame[label], errors="coerce").to_numpy(np.float32)
            keep = np.isfinite(labels)
            if not keep.any():
                continue
            inputs = model_inputs(frame.loc[keep].reset_index(drop=True), spec)
            yield {k: (v.astype(str) if k in STRING_INPUTS else v) for k, v in inputs.items()}, labels[keep]

    signature = (_signature(spec, tf), tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(2)


def adapt_sample(paths: Sequence[Path], spec: InputSpec, label: str = "label", rows: int = ADAPT_SAMPLE_ROWS, seed: int = 0):
    """(inputs, labels) of a uniform random sample of at most `rows` labelled rows, for the preprocessing layers.

    Bottom-k sampling: every row draws a random key and the `rows` smallest keys are kept, so the
    sample is uniform over the whole stream while memory stays bounded. Rows are copied into dense
    arrays batch by batch: a kept pandas cell would pin its whole Arrow record batch in memory.
    """
    rng = np.random.default_rng(seed)
    kept: dict[str, np.ndarray] | None = None
    for frame in iter_frames([Path(p) for p in paths], _columns(spec, label)):
        labels = pd.to_numeric(frame[label], errors="coerce").to_numpy(np.float32)
        keep = np.isfinite(labels)
        if not keep.any():
            continue
        batch = model_inputs(frame.loc[keep].reset_index(drop=True), spec)
        batch["_label"], batch["_key"] = labels[keep], rng.random(int(keep.sum()))
        kept = batch if kept is None else {k: np.concatenate([kept[k], batch[k]]) for k in kept}
        if len(kept["_key"]) > 2 * rows:
            chosen = np.argpartition(kept["_key"], rows)[:rows]
            kept = {k: v[chosen] for k, v in kept.items()}
    if kept is None:
        raise ValueError("no labelled rows in the partitions")
    if len(kept["_key"]) > rows:
        chosen = np.argpartition(kept["_key"], rows)[:rows]
        kept = {k: v[chosen] for k, v in kept.items()}
    labels = kept.pop("_label")
    kept.pop("_key")
    return kept, labels
