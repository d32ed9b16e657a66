"""The enrichment stages on frames: repost dedup, caption rows, embedding tables, chunk metric sums."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smpp.encoders.stages import (
    caption_posts,
    image_embeddings,
    summed_chunk_metrics,
    text_embeddings,
    usable_images,
)


def _images(paths, keys, post_ids):
    return pd.DataFrame({"post_id": post_ids, "path": paths, "sha256": keys, "status": "ok", "image_index": 0})


def test_usable_images_are_fetched_first_images_only():
    frame = pd.DataFrame(
        {
            "post_id": ["a", "a", "b", "c"],
            "image_index": [0, 1, 0, 0],
            "status": ["ok", "ok", "too_large", "ok"],
            "sha256": ["s1", "s2", None, "s3"],
        }
    )
    assert usable_images(frame)["post_id"].tolist() == ["a", "c"]
    assert usable_images(frame.iloc[:0]).empty


def test_reposts_are_captioned_once_and_every_post_gets_its_caption(tiny_settings, make_images, count_forward):
    paths, keys = make_images(2)
    # post r1 reposts p1's image: same content hash
    images = _images([paths[0], paths[1], paths[0]], [keys[0], keys[1], keys[0]], ["p1", "p2", "r1"])
    counter = count_forward(tiny_settings, "caption")
    captions = caption_posts(tiny_settings, images)
    assert counter.items == 2  # two distinct images through the model
    frame = captions.frame.set_index("post_id")
    assert frame.loc["r1", "caption"] == frame.loc["p1", "caption"]
    assert list(captions.frame.columns) == ["post_id", "sha256", "caption", "caption_model", "caption_revision"]
    assert (captions.cache_misses, captions.model_id) == (2, "smpp/tiny-blip")
    assert caption_posts(tiny_settings, images.iloc[:0]).frame.empty


def test_text_embeddings_give_caption_vectors_only_to_captioned_posts(tiny_settings):
    kept = pd.DataFrame({"id": ["a", "b"], "title": ["a cat", None]})
    captions = pd.DataFrame({"post_id": ["b"], "caption": ["a photo of a dog"]})
    embeddings = text_embeddings(tiny_settings, kept, captions)
    assert embeddings.counts == {"titles": 2, "captions": 1}
    assert embeddings.columns["caption_emb"][0] is None and embeddings.columns["caption_emb"][1] is not None
    table = embeddings.table()
    assert table.column_names == ["post_id", "title_emb", "caption_emb"]
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["dim"] == str(embeddings.result.dim) and meta["model_id"] == embeddings.result.model_id
    row = table.to_pylist()[1]
    np.testing.assert_allclose(row["caption_emb"], embeddings.columns["caption_emb"][1], rtol=1e-6)
    assert embeddings.metrics()["cache_misses"] == 3  # two titles (one empty) and one caption


def test_image_embeddings_keep_post_order(tiny_settings, make_images):
    paths, keys = make_images(2)
    embeddings = image_embeddings(tiny_settings, _images(paths, keys, ["x", "y"]))
    assert embeddings.post_ids == ["x", "y"] and embeddings.counts == {"images": 2}
    assert embeddings.table().num_rows == 2


def test_chunk_metrics_add_counts_and_keep_the_dim():
    chunks = [{"titles": 3, "cache_hits": 1, "dim": 8, "partition": "p0"}, {"titles": 2, "cache_hits": 0, "dim": 8}]
    assert summed_chunk_metrics(chunks) == {"chunks": 2, "titles": 5, "cache_hits": 1, "dim": 8}
    assert summed_chunk_metrics([]) == {"chunks": 0}
