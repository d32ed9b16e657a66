from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from smpp.encoders.cache import CaptionCache, VectorCache, cache_file


def test_vector_cache_round_trip(tmp_path):
    cache = VectorCache(tmp_path, "text", "BAAI/bge-m3@abc")
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.put_many(["k1", "k2"], vectors)

    found = cache.get_many(["k2", "k1", "missing"])
    assert set(found) == {"k1", "k2"}
    np.testing.assert_array_equal(found["k2"], vectors[1])
    assert len(cache) == 2
    assert cache_file(tmp_path, "text", "BAAI/bge-m3@abc") != cache_file(tmp_path, "text", "BAAI/bge-m3@abd")


def test_caption_cache_round_trip(tmp_path):
    cache = CaptionCache(tmp_path, "blip@1")
    cache.put_many(["a", "b"], ["a dog", "a cat"])
    assert cache.get_many(["a", "b", "c"]) == {"a": "a dog", "b": "a cat"}


def _write_rows(cache_dir: str, worker: int) -> None:
    cache = VectorCache(Path(cache_dir), "image", "shared@1")
    for batch in range(20):
        keys = [f"{worker}-{batch}-{i}" for i in range(25)]
        cache.put_many(keys, np.full((25, 8), worker, dtype=np.float32))


def test_concurrent_writers_from_processes(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_rows, args=(str(tmp_path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    assert len(VectorCache(tmp_path, "image", "shared@1")) == 3 * 20 * 25
