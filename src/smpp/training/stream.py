"""Training input streamed from day partitions: tf.data over Parquet, so memory stays flat as history grows.

Only one record batch per file is in memory at a time (plus tf.data's shuffle buffer); the
normalisers and vocabularies are adapted on a bounded sample of the training slice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.features import schema
from smpp.features.author_history import HISTORY_COLUMNS
from smpp.training.model import (
    DOMAIN_INPUT,
    LEVEL_INPUT,
    OPTIONAL_TABULAR_COLUMNS,
    STRING_INPUTS,
    SUBREDDIT_INPUT,
    TABULAR_INPUT,
    InputSpec,
    model_inputs,
)

READ_BATCH_ROWS = 8192
SHUFFLE_BUFFER = 16384
ADAPT_SAMPLE_ROWS = 50_000
VECTOR_SCAN_ROWS = 1024


def _columns(spec: InputSpec, label: str | None) -> list[str]:
    columns = [SUBREDDIT_INPUT, *spec.tabular_columns, *spec.embedding_dims]
    if spec.use_domain:
        columns.append(DOMAIN_INPUT)
    return columns + ([label] if label else [])


def input_columns(spec: InputSpec) -> list[str]:
    """The feature columns the model reads (what the training passes load from each file)."""
    return _columns(spec, None)


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
    if spec.level_offset:
        signature[LEVEL_INPUT] = tf.TensorSpec((None, 1), tf.float32)
        signature[f"{LEVEL_INPUT}_mask"] = tf.TensorSpec((None, 1), tf.float32)
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


def adapt_sample(
    paths: Sequence[Path], spec: InputSpec, label: str = "label", rows: int = ADAPT_SAMPLE_ROWS, seed: int = 0
):
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


# ---------------------------------------------------------------- the streamed trainer's passes
#
# Pass 1 (scan_index) reads narrow columns of every partition and keeps one small row per labelled
# post (file, row, post id, subreddit, time, label, which modalities it has): enough to cut the
# chronological split and to fit offsets, vocabularies and tiers. Later passes re-read the files one
# record batch at a time and keep only the rows of one slice, located by (file, row position).

INDEX_COLUMNS = ["post_id", "subreddit", "created_utc", "domain"]
SLICE_CODES = {"train": 1, "val": 2, "test": 3}


@dataclass
class StreamIndex:
    """One row per labelled feature row of the partitions (narrow columns only)."""

    paths: list[Path]
    rows: pd.DataFrame  # file, row, post_id, subreddit, created_utc, domain, label, has_<emb>, optional tabular
    input_rows: int  # feature rows read (before dropping rows without a label)
    dims: dict[str, int]  # embedding column -> dimension, from the vectors present
    file_rows: list[int]
    without_history: list[Path] = field(default_factory=list)


def _vector_lengths(column) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(pc.list_value_length(column), -1).to_numpy(zero_copy_only=False)


def scan_index(
    paths: Sequence[Path], labels: pd.DataFrame | None = None, batch_rows: int = READ_BATCH_ROWS
) -> StreamIndex:
    """Pass 1: the narrow index of the partitions' rows joined with their labels.

    `labels` (post_id, label): labels from elsewhere (the warehouse), inner-joined; None: the files'
    own `label` column, rows without a finite label dropped.
    """
    import pyarrow.parquet as pq

    paths = [Path(p) for p in paths]
    wanted = [*INDEX_COLUMNS, *OPTIONAL_TABULAR_COLUMNS, *schema.EMBEDDING_COLUMNS] + (
        ["label"] if labels is None else []
    )
    parts: list[pd.DataFrame] = []
    input_rows = 0  # rows read; with `labels`: rows with a trainable label (as training reads them)
    label_ids, label_values = None, None
    if labels is not None:
        unique = labels.drop_duplicates("post_id", keep="last")
        label_ids = pd.Index(unique["post_id"].astype(str))
        label_values = pd.to_numeric(unique["label"], errors="coerce").to_numpy(float, na_value=np.nan)
    lengths: dict[str, set[int]] = {}
    file_rows: list[int] = []
    without_history: list[Path] = []
    for number, path in enumerate(paths):
        handle = pq.ParquetFile(path)
        names = handle.schema_arrow.names
        if not all(c in names for c in HISTORY_COLUMNS):
            without_history.append(path)
        present = [c for c in wanted if c in names and c not in schema.EMBEDDING_COLUMNS]
        vectors = [c for c in schema.EMBEDDING_COLUMNS if c in names]
        offset = 0
        file_parts: list[pd.DataFrame] = []
        for batch in handle.iter_batches(batch_size=batch_rows, columns=present):
            n = batch.num_rows
            part = {"file": np.full(n, number, np.int32), "row": np.arange(offset, offset + n, dtype=np.int32)}
            offset += n
            for column in present:
                array = batch.column(column)
                if column in OPTIONAL_TABULAR_COLUMNS:
                    # only "has a value" matters here (InputSpec.for_frame picks columns with any)
                    values = pd.to_numeric(array.to_pandas(), errors="coerce").to_numpy(np.float32, na_value=np.nan)
                    part[column] = np.where(np.isfinite(values), np.float32(1), np.float32(np.nan))
                else:
                    part[column] = array.to_pandas()
            file_parts.append(pd.DataFrame(part))
        # vectors one column and a few rows at a time: only whether each row has one is kept, and
        # decoding whole 384-float batches of every column at once set the pass's peak memory
        for column in vectors:
            flags = []
            for batch in handle.iter_batches(batch_size=VECTOR_SCAN_ROWS, columns=[column]):
                sizes = _vector_lengths(batch.column(0))
                flags.append(sizes >= 0)
                lengths.setdefault(column, set()).update(int(s) for s in np.unique(sizes[sizes >= 0]))
            has = np.concatenate(flags) if flags else np.zeros(0, bool)
            start = 0
            for part in file_parts:
                part[f"has_{column}"] = has[start : start + len(part)]
                start += len(part)
        for part in file_parts:  # keep only labelled rows as we go: unlabelled ones never pile up
            input_rows += len(part) if labels is None else 0
            part, found = _with_label(part, label_ids, label_values)
            input_rows += found
            parts.append(part)
        file_rows.append(offset)
    for column, sizes in lengths.items():
        if len(sizes) > 1:
            raise ValueError(f"embedding column {column} mixes dimensions {sorted(sizes)}")
    dims = {c: lengths[c].pop() for c in schema.EMBEDDING_COLUMNS if lengths.get(c)}
    rows = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["file", "row", *INDEX_COLUMNS, "label"])
    )
    del parts
    rows["label"] = pd.to_numeric(rows["label"], errors="coerce").astype(float)
    for column in schema.EMBEDDING_COLUMNS:
        if f"has_{column}" in rows:
            rows[f"has_{column}"] = rows[f"has_{column}"].fillna(False).astype(bool)
    rows["post_id"] = rows["post_id"].astype(str)
    rows["created_utc"] = rows["created_utc"].astype("int64")
    if "domain" not in rows:
        rows["domain"] = ""
    # few distinct values per row: categories keep the index at a few bytes a row
    rows["subreddit"] = rows["subreddit"].astype(str).astype("category")
    rows["domain"] = rows["domain"].fillna("").astype(str).astype("category")
    release_freed_memory()
    return StreamIndex(paths, rows, input_rows, dims, file_rows, without_history)


def _with_label(part: pd.DataFrame, ids: pd.Index | None, values: np.ndarray | None) -> tuple[pd.DataFrame, int]:
    """The part's rows with a finite label (from `ids`/`values` when given, else its own column), and how
    many of its rows `ids` knows."""
    if ids is None:
        label = np.full(len(part), np.nan)
        if "label" in part:
            label = pd.to_numeric(part["label"], errors="coerce").to_numpy(float, na_value=np.nan)
        found = 0
    else:
        position = ids.get_indexer(part["post_id"].astype(str))
        label = np.where(position >= 0, values[np.maximum(position, 0)] if len(values) else np.nan, np.nan)
        found = int((position >= 0).sum())
    keep = np.isfinite(label)
    part = part.loc[keep].drop(columns=["label"], errors="ignore").reset_index(drop=True)
    part["label"] = label[keep]
    return part, found


def release_freed_memory() -> None:
    """Hand memory freed by a pass back to the OS (Arrow's pool and glibc keep it otherwise), so it
    does not add to what the fit allocates next: the peak then stays flat as rows grow."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def present_dims(index: StreamIndex, rows: pd.DataFrame) -> dict[str, int]:
    """Embedding dims of the columns with at least one vector among `rows` (schema order)."""
    return {c: d for c, d in index.dims.items() if f"has_{c}" in rows and bool(rows[f"has_{c}"].any())}


class SlicePlan:
    """Per file: which slice each row belongs to, its label and its loss weight."""

    def __init__(
        self, index: StreamIndex, slices: dict[str, pd.DataFrame], weights: dict[str, np.ndarray] | None = None
    ):
        self.paths = index.paths
        self.code = [np.zeros(n, np.int8) for n in index.file_rows]
        self.label = [np.full(n, np.nan) for n in index.file_rows]
        self.weight = [np.ones(n, np.float32) for n in index.file_rows]
        self.files: dict[str, list[int]] = {}
        for name, frame in slices.items():
            files = frame["file"].to_numpy()
            rows = frame["row"].to_numpy()
            labels = frame["label"].to_numpy(float)
            w = None if weights is None or name not in weights else weights[name]
            for number in np.unique(files):
                at = files == number
                self.code[number][rows[at]] = SLICE_CODES[name]
                self.label[number][rows[at]] = labels[at]
                if w is not None:
                    self.weight[number][rows[at]] = w[at]
            self.files[name] = sorted(int(f) for f in np.unique(files))

    def rows(self, name: str) -> int:
        code = SLICE_CODES[name]
        return int(sum(int((self.code[f] == code).sum()) for f in self.files.get(name, [])))

    def _arrow_batches(
        self, name: str, columns: list[str] | None, batch_rows: int, order: Sequence[int] | None
    ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        import pyarrow.parquet as pq

        code = SLICE_CODES[name]
        for number in self.files.get(name, []) if order is None else order:
            handle = pq.ParquetFile(self.paths[number])
            present = None if columns is None else [c for c in columns if c in handle.schema_arrow.names]
            offset = 0
            for batch in handle.iter_batches(batch_size=batch_rows, columns=present):
                n = batch.num_rows
                chosen = np.flatnonzero(self.code[number][offset : offset + n] == code)
                if len(chosen):
                    # take() copies the rows: what is kept never pins the whole Arrow batch
                    yield batch.take(chosen), self.label[number][offset + chosen], self.weight[number][offset + chosen]
                offset += n

    def batches(
        self,
        name: str,
        columns: list[str] | None,
        batch_rows: int = READ_BATCH_ROWS,
        order: Sequence[int] | None = None,
    ) -> Iterator[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
        """(rows of the slice as a small frame, their labels, their weights), one record batch at a time."""
        for batch, labels, weights in self._arrow_batches(name, columns, batch_rows, order):
            yield batch.to_pandas(), labels, weights

    def frames(self, name: str, columns: list[str] | None, rows: int) -> Iterator[pd.DataFrame]:
        """The slice's rows (with `label`) in file order, regrouped into frames of exactly `rows` rows.

        The last frame is shorter.
        """
        pending: list[pd.DataFrame] = []
        count = 0
        for frame, labels, _ in self.batches(name, columns):
            frame["label"] = labels
            pending.append(frame)
            count += len(frame)
            while count >= rows:
                merged = pd.concat(pending, ignore_index=True)
                yield merged.iloc[:rows].reset_index(drop=True)
                rest = merged.iloc[rows:].reset_index(drop=True)
                pending, count = ([rest] if len(rest) else []), len(rest)
        if count:
            yield pd.concat(pending, ignore_index=True)

    def sample(self, name: str, columns: list[str] | None, rows: int, seed: int) -> pd.DataFrame:
        """A uniform sample of at most `rows` rows of the slice (the smallest of one random key per row),
        in (created_utc, post_id) order.

        The plan knows the slice's size, so the keys are drawn up front and one pass copies exactly
        the chosen rows: memory is the sample plus one record batch (a streamed bottom-k held up to
        3x the sample, which set the training's peak once slices outgrew the sample).
        """
        import pyarrow as pa

        keys = np.random.default_rng(seed).random(self.rows(name))  # in the order _arrow_batches yields rows
        chosen = np.ones(len(keys), bool)
        if len(keys) > rows:
            chosen[:] = False
            chosen[np.argpartition(keys, rows)[:rows]] = True
        tables, start = [], 0
        for batch, labels, _ in self._arrow_batches(name, columns, READ_BATCH_ROWS, None):
            stop = start + len(labels)
            take = np.flatnonzero(chosen[start:stop])
            if len(take):
                table = pa.Table.from_batches([batch.take(take)]).replace_schema_metadata(None)
                table = table.append_column("label", pa.array(labels[take], pa.float64()))
                tables.append(table.append_column("_key", pa.array(keys[start:stop][take])))
            start = stop
        if not tables:
            return pd.DataFrame(columns=[*(columns or []), "label"])
        frame = pa.concat_tables(tables, promote_options="default").to_pandas()
        del tables
        order = ["created_utc", "post_id"] if {"created_utc", "post_id"} <= set(frame) else ["_key"]
        return frame.sort_values(order, kind="stable").drop(columns="_key").reset_index(drop=True)

    def dataset(
        self,
        name: str,
        spec: InputSpec,
        batch_size: int,
        *,
        weighted: bool,
        shuffle_seed: int | None = None,
        shuffle_buffer: int = SHUFFLE_BUFFER,
    ):
        """tf.data of (inputs, label[, weight]) batches of one slice, streamed from the files.

        With a seed, each epoch visits the files in a new random order and rows are shuffled in
        blocks of `shuffle_buffer` rows: partitions are days, so file order alone would feed
        time-sorted batches. Shuffling and batching happen on numpy blocks in the generator rather
        than row by row in tf.data (about 25 % less CPU per epoch on the dev dump).
        """
        from smpp.compat import import_tensorflow

        tf = import_tensorflow()
        columns = _columns(spec, None)
        epochs = itertools.count()
        block_rows = max(batch_size, shuffle_buffer if shuffle_seed is not None else batch_size)

        def blocks(order):
            pending: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
            count = 0
            for frame, labels, weights in self.batches(name, columns, order=order):
                inputs = model_inputs(frame, spec)
                pending.append((inputs, labels.astype(np.float32), weights.astype(np.float32)))
                count += len(labels)
                if count >= block_rows:
                    yield _concat(pending)
                    pending, count = [], 0
            if pending:
                yield _concat(pending)

        def generate():
            rng = None
            order = None
            if shuffle_seed is not None:
                rng = np.random.default_rng([shuffle_seed, next(epochs)])
                order = [int(f) for f in rng.permutation(self.files.get(name, []))]
            rest = None
            for block in blocks(order):
                if rest is not None:
                    block = _concat([rest, block])
                inputs, labels, weights = block
                n = len(labels)
                if rng is not None:
                    perm = rng.permutation(n)
                    inputs, labels, weights = {k: v[perm] for k, v in inputs.items()}, labels[perm], weights[perm]
                full = n - n % batch_size
                for start in range(0, full, batch_size):
                    yield _batch(inputs, labels, weights, slice(start, start + batch_size), weighted)
                rest = ({k: v[full:] for k, v in inputs.items()}, labels[full:], weights[full:]) if full < n else None
            if rest is not None:
                yield _batch(*rest, slice(0, len(rest[1])), weighted)

        signature = (_signature(spec, tf), tf.TensorSpec((None,), tf.float32))
        if weighted:
            signature = (*signature, tf.TensorSpec((None,), tf.float32))
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
        # the slice's size is known from pass 1: Keras then sees whole epochs instead of a stream that "runs out"
        steps = -(-self.rows(name) // batch_size)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def _concat(parts: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]):
    if len(parts) == 1:
        return parts[0]
    inputs = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    return inputs, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def _batch(inputs: dict[str, np.ndarray], labels: np.ndarray, weights: np.ndarray, rows: slice, weighted: bool):
    batch = {k: (v[rows].astype(str) if k in STRING_INPUTS else v[rows]) for k, v in inputs.items()}
    return (batch, labels[rows], weights[rows]) if weighted else (batch, labels[rows])
