"""tf.data over Parquet day partitions: every labelled row once per epoch, bounded adapt sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smpp.training.model import TABULAR_COLUMNS, InputSpec, build_model, fit_datasets
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
    fit = fit_datasets(
        model,
        parquet_dataset(paths[:2], spec, 64, shuffle_seed=0),
        parquet_dataset(paths[2:], spec, 256),
        settings.training,
    )
    assert fit["epochs_run"] == 2 and np.isfinite(fit["history"]["val_loss"]).all()


def test_streamed_split_equals_chronological_split_on_the_same_rows(tmp_path, make_features):
    from smpp.training.split import chronological_split, labelled_rows
    from smpp.training.stream import SlicePlan, scan_index
    from smpp.training.train import write_day_partitions

    frame = make_features(n_rows=400, seed=3)
    frame.loc[frame.index % 9 == 0, "label"] = np.nan  # immature rows are in the files but not in any slice
    frame.loc[5:20, "created_utc"] = frame.loc[5, "created_utc"]  # ties must stay in one slice
    paths = write_day_partitions(frame, tmp_path)
    assert len(paths) > 20
    index = scan_index(paths)
    assert index.input_rows == 400 and len(index.rows) == int(frame["label"].notna().sum())
    assert index.dims == {"title_emb": 32, "caption_emb": 32, "image_emb": 16}  # joint_emb: never present

    streamed = chronological_split(index.rows, 0.15, 0.2)
    expected = chronological_split(labelled_rows(frame), 0.15, 0.2)
    plan = SlicePlan(index, {"train": streamed.train, "val": streamed.val, "test": streamed.test})
    for name in ("train", "val", "test"):
        want = getattr(expected, name)
        assert getattr(streamed, name)["post_id"].tolist() == want["post_id"].tolist(), name
        # the rows a pass streams for a slice are exactly that slice's rows, with their labels
        rows = pd.concat(list(plan.frames(name, ["post_id", "created_utc"], 64)), ignore_index=True)
        assert sorted(rows["post_id"]) == sorted(want["post_id"])
        by_id = want.set_index("post_id")["label"]
        np.testing.assert_array_equal(rows["label"].to_numpy(), by_id.loc[rows["post_id"]].to_numpy())
    sample = plan.sample("train", ["post_id", "created_utc"], 50, seed=0)
    assert len(sample) == 50 and set(sample["post_id"]) <= set(expected.train["post_id"])
    assert sample["created_utc"].is_monotonic_increasing


def test_labels_from_elsewhere_are_inner_joined(tmp_path, make_features):
    from smpp.training.stream import scan_index
    from smpp.training.train import write_day_partitions

    frame = make_features(n_rows=100)
    paths = write_day_partitions(frame.drop(columns=["label"]), tmp_path)
    labels = pd.DataFrame({"post_id": frame["post_id"][:60], "label": frame["label"][:60].astype("float32")})
    index = scan_index(paths, labels)
    assert index.input_rows == 60 and sorted(index.rows["post_id"]) == sorted(labels["post_id"])


def test_partitions_written_before_the_history_columns_still_train(tmp_path, make_features, make_settings, caplog):
    from smpp.features.author_history import HISTORY_COLUMNS, add_history_features
    from smpp.training.train import train_from_partitions, write_day_partitions

    frame = add_history_features(make_features(n_rows=300, seed=4))
    old = frame["created_utc"] < frame["created_utc"].quantile(0.3)
    paths = write_day_partitions(frame[old].drop(columns=HISTORY_COLUMNS), tmp_path / "parts")
    paths += write_day_partitions(frame[~old], tmp_path / "parts")
    settings = make_settings(tmp_path / "data", epochs=2)
    with caplog.at_level("WARNING"):
        report = train_from_partitions(settings, sorted(paths), tmp_path / "v1")
    assert report.skipped_reason is None and (tmp_path / "v1" / "model.keras").is_file()
    assert "predate the history columns" in caplog.text
    assert any("without history columns" in w for w in report.metrics["warnings"])
    assert "author_prior_posts_log" in report.metrics["features"]["tabular_columns"]  # masked where missing
