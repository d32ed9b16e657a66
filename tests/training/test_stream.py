"""tf.data over Parquet day partitions: every labelled row once per epoch, bounded adapt sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from smpp.training.model import InputSpec, TABULAR_COLUMNS, build_model, fit_datasets
from smpp.training.stream import adapt_sample, parquet_dataset


def _write(path, n, seed, dim=4):
    rng = np.random.default_rng(seed)
    table = {
        "subreddit": pa.array(rng.choice(["a", "b"], n)),
        "title_chars": pa.array(rng.normal(size=n).astype(np.float32)),
        "title_emb": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * dim).astype(np.float32)), dim),
        "label": pa.array(np.where(np.arange(n) % 10 == 0, np.nan, rng.normal(size=n)).astype(np.float32)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), path)
    return path


def test_stream_reads_every_labelled_row_and_trains(tmp_path, make_settings):
    paths = [_write(tmp_path / f"ds=2026-01-0{i}" / "part-0.parquet", 300, i) for i in (1, 2, 3)]
    spec = InputSpec(embedding_dims={"title_emb": 4}, tabular_columns=list(TABULAR_COLUMNS))
    batches = list(parquet_dataset(paths, spec, batch_size=64, shuffle_seed=1))
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert len(labels) == 3 * 270  # every 10th row is unlabelled and skipped
    assert np.isfinite(labels).all()
    first_inputs = batches[0][0]
    assert first_inputs["title_emb"].shape[1] == 4 and first_inputs["tabular"].shape[1] == len(TABULAR_COLUMNS)

    inputs, sample_labels = adapt_sample(paths, spec, rows=100, seed=0)
    assert len(sample_labels) == 100 and inputs["title_emb"].shape == (100, 4)

    settings = make_settings(tmp_path / "data", epochs=2, batch_size=64)
    model = build_model(inputs, sample_labels, spec)
    fit = fit_datasets(model, parquet_dataset(paths[:2], spec, 64, shuffle_seed=0), parquet_dataset(paths[2:], spec, 256), settings.training)
    assert fit["epochs_run"] == 2 and np.isfinite(fit["history"]["val_loss"]).all()
