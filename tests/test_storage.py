import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from partition_readers import partition_metadata
from smpp import storage


def test_partition_roundtrip_and_replace(settings):
    day = "2024-01-02"
    path = storage.write_partition(settings, "posts", day, pd.DataFrame({"id": ["a", "b"]}))
    assert path == settings.partitions_dir / "posts" / "ds=2024-01-02" / "part-0.parquet"
    storage.write_partition(settings, "posts", day, pd.DataFrame({"id": ["c"]}))
    assert storage.read_partition(settings, "posts", day)["id"].tolist() == ["c"]  # replaced, not appended
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]  # no temp files left
    assert storage.list_partition_days(settings, "posts") == [pd.Timestamp(day).date()]


def test_failed_write_keeps_previous_partition(settings, monkeypatch):
    storage.write_partition(settings, "posts", "2024-01-02", pd.DataFrame({"id": ["a"]}))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", boom)
    with pytest.raises(OSError):
        storage.write_partition(settings, "posts", "2024-01-02", pd.DataFrame({"id": ["b"]}))
    monkeypatch.undo()
    assert storage.read_partition(settings, "posts", "2024-01-02")["id"].tolist() == ["a"]
    assert len(list(storage.partition_dir(settings, "posts", "2024-01-02").iterdir())) == 1


def test_missing_partition_names_the_stage(settings):
    with pytest.raises(FileNotFoundError, match="missing partition images"):
        storage.read_partition(settings, "images", "2024-01-02")


def test_vectors_to_arrow_nulls_and_dims():
    arr = storage.vectors_to_arrow([np.ones(3), None, np.zeros(3)], 3)
    assert pa.types.is_fixed_size_list(arr.type) and arr.type.list_size == 3
    assert arr.null_count == 1 and arr[1].as_py() is None and arr[0].as_py() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="expected"):
        storage.vectors_to_arrow([np.ones(4)], 3)


def test_run_metrics(settings):
    storage.write_run_metrics(settings, "2024-01-02", "filter_posts", {"kept": 3})
    storage.write_run_metrics(settings, "2024-01-02", "filter_posts", {"kept": 4})
    assert storage.read_run_metrics(settings, "2024-01-02") == {"filter_posts": {"kept": 4}}


def test_chunks_merge_in_order_and_replace_the_partition(settings):
    day = "2024-01-02"
    storage.write_partition(settings, "text_embeddings", day, pd.DataFrame({"post_id": ["stale"]}))
    storage.plan_chunks(settings, "text_embeddings", day, 2)
    meta = {b"model_id": b"m"}
    storage.write_chunk(
        settings, "text_embeddings", day, 1, pa.table({"post_id": ["c", "d"]}).replace_schema_metadata(meta)
    )
    storage.write_chunk(
        settings, "text_embeddings", day, 0, pa.table({"post_id": ["a", "b"]}).replace_schema_metadata(meta)
    )
    assert storage.merge_chunks(settings, "text_embeddings", day)
    assert storage.read_partition(settings, "text_embeddings", day)["post_id"].tolist() == ["a", "b", "c", "d"]
    assert partition_metadata(settings, "text_embeddings", day)["model_id"] == "m"
    assert not storage.chunk_dir(settings, "text_embeddings", day).exists()
    assert storage.merge_chunks(settings, "text_embeddings", day) is False  # nothing planned now


def test_missing_chunk_fails_and_keeps_the_old_partition(settings):
    day = "2024-01-02"
    storage.write_partition(settings, "image_embeddings", day, pd.DataFrame({"post_id": ["old"]}))
    storage.plan_chunks(settings, "image_embeddings", day, 2)
    storage.write_chunk(settings, "image_embeddings", day, 0, pa.table({"post_id": ["a"]}))
    with pytest.raises(FileNotFoundError, match="chunk-00001"):
        storage.merge_chunks(settings, "image_embeddings", day)
    assert storage.read_partition(settings, "image_embeddings", day)["post_id"].tolist() == ["old"]
    with pytest.raises(ValueError, match="outside the plan"):
        storage.write_chunk(settings, "image_embeddings", day, 5, pa.table({"post_id": ["x"]}))


def test_replanning_drops_stale_chunks(settings):
    day = "2024-01-02"
    storage.plan_chunks(settings, "joint_embeddings", day, 3)
    storage.write_chunk(settings, "joint_embeddings", day, 2, pa.table({"post_id": ["stale"]}))
    storage.plan_chunks(settings, "joint_embeddings", day, 1)
    storage.write_chunk(settings, "joint_embeddings", day, 0, pa.table({"post_id": ["a"]}))
    storage.merge_chunks(settings, "joint_embeddings", day)
    assert storage.read_partition(settings, "joint_embeddings", day)["post_id"].tolist() == ["a"]


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(settings):
    """kill -9 between writing a partition's temp file and renaming it leaves the temp; the next
    write of that partition removes it once it is stale, and never a live writer's."""
    import os
    import time

    import pandas as pd

    from smpp import storage

    path = storage.write_partition(settings, "posts", "2013-07-30", pd.DataFrame({"id": ["a"]}))
    stale = path.parent / f".{path.name}.killed.tmp"
    live = path.parent / f".{path.name}.live.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    old = time.time() - storage.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    storage.write_partition(settings, "posts", "2013-07-30", pd.DataFrame({"id": ["b"]}))
    assert not stale.exists() and live.exists()
    assert storage.read_partition(settings, "posts", "2013-07-30")["id"].tolist() == ["b"]
