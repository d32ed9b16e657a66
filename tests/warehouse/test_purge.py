"""A removed post leaves no trace: partitions, caches and its image (unless shared) are purged."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smpp import storage
from smpp.encoders.cache import CaptionCache, VectorCache, joint_key, text_key
from smpp.warehouse.purge import purge_posts

DAY = "2013-07-30"
CREATED = 1375142400 + 3600
SHARED, OWN = "a" * 64, "b" * 64


def image_file(settings, sha):
    path = settings.images_dir / sha[:2] / f"{sha}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpeg")
    return path


def setup_day(settings):
    posts = pd.DataFrame({"id": ["gone", "kept"], "title": ["secret title", "fine title"]})
    storage.write_partition(settings, "posts", DAY, posts)
    storage.write_partition(settings, "filtered", DAY, posts)
    images = pd.DataFrame({"post_id": ["gone", "kept"], "sha256": [OWN, SHARED], "status": ["ok", "ok"]})
    storage.write_partition(settings, "images", DAY, images)
    storage.write_partition(
        settings, "images", "2013-07-31", pd.DataFrame({"post_id": ["other"], "sha256": [SHARED], "status": ["ok"]})
    )
    storage.write_partition(settings, "captions", DAY, pd.DataFrame({"post_id": ["gone"], "caption": ["a cat"]}))
    table = pa.table({"post_id": ["gone", "kept"], "title_emb": storage.vectors_to_arrow([np.ones(4), np.zeros(4)], 4)})
    table = table.replace_schema_metadata({b"model_id": b"m"})
    storage.atomic_write_table(storage.partition_path(settings, "text_embeddings", DAY), table)
    vectors = VectorCache(settings.cache_dir, "text", "m@1")
    vectors.put_many([text_key("secret title"), text_key("fine title"), text_key("a cat")], np.ones((3, 4), np.float32))
    joint = VectorCache(settings.cache_dir, "joint", "j@1")
    joint.put_many([joint_key(OWN, "secret title")], np.ones((1, 4), np.float32))
    captions = CaptionCache(settings.cache_dir, "c@1")
    captions.put_many([OWN, SHARED], ["a cat", "a dog"])
    return vectors, joint, captions


def test_purge_removes_post_everywhere(settings):
    vectors, joint, captions = setup_day(settings)
    own, shared = image_file(settings, OWN), image_file(settings, SHARED)
    stats = purge_posts(settings, {"gone": CREATED})
    for stage in ("posts", "filtered", "images", "captions", "text_embeddings"):
        table = pq.read_table(storage.partition_path(settings, stage, DAY))
        column = "id" if "id" in table.column_names else "post_id"
        assert "gone" not in table.column(column).to_pylist(), stage
    emb = pq.read_table(storage.partition_path(settings, "text_embeddings", DAY))
    assert pa.types.is_fixed_size_list(emb.schema.field("title_emb").type)  # schema kept
    assert emb.schema.metadata[b"model_id"] == b"m"
    assert not own.exists() and shared.exists()
    assert vectors.get_many([text_key("secret title"), text_key("a cat")]) == {}
    assert text_key("fine title") in vectors.get_many([text_key("fine title")])
    assert joint.get_many([joint_key(OWN, "secret title")]) == {}
    assert captions.get_many([OWN, SHARED]) == {SHARED: "a dog"}
    assert stats.partition_rows == 5 and stats.image_files == 1 and stats.cache_entries == 4


def test_purge_is_idempotent(settings):
    setup_day(settings)
    purge_posts(settings, {"gone": CREATED})
    again = purge_posts(settings, {"gone": CREATED})
    assert again.partition_rows == 0 and again.cache_entries == 0
