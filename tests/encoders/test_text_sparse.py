from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smpp.encoders import embed_texts, sparse_from_arrow, sparse_to_arrow
from smpp.encoders.api import get_encoder
from smpp.encoders.cache import SparseCache, cache_file, purge_keys, text_key
from smpp.settings import Settings

TITLES = ["My dog sitting on a mountain at sunset", "First snow in the city", "Found this cat in my garden"]


def with_sparse(settings: Settings, enabled: bool = True) -> Settings:
    return settings.with_overrides(encoders={**settings.encoders.model_dump(), "text_sparse": enabled})


class ModelCalls:
    """Counts forward passes of the inner bge-m3 network (encode() would add a batch-size probe)."""

    def __init__(self, settings: Settings, monkeypatch) -> None:
        self.calls = 0
        inner = get_encoder(settings, "text").model.model
        original = inner.forward

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(inner, "forward", counted)


def test_sparse_weights_are_returned_and_cached(tiny_settings, monkeypatch):
    settings = with_sparse(tiny_settings)
    calls = ModelCalls(settings, monkeypatch)
    texts = [*TITLES, TITLES[1]]

    first = embed_texts(settings, texts)
    assert calls.calls == 1 and (first.cache_hits, first.cache_misses) == (0, 4)
    assert first.sparse is not None and len(first.sparse) == 4
    for weights in first.sparse:
        assert weights and all(token.isdigit() for token in weights)
        assert all(isinstance(w, float) and w > 0 for w in weights.values())
    assert first.sparse[1] == first.sparse[3]
    assert first.sparse[0] != first.sparse[1]
    assert first.vectors.shape == (4, 1024)

    second = embed_texts(settings, texts)
    assert calls.calls == 1, "a re-run must not run the model"
    assert (second.cache_hits, second.cache_misses) == (4, 0)
    assert second.sparse == first.sparse
    np.testing.assert_array_equal(second.vectors, first.vectors)

    # the weights are those of BGEM3FlagModel itself, for the token ids of each text
    direct = get_encoder(settings, "text").model.encode(TITLES, return_dense=False, return_sparse=True)
    for expected, got in zip(direct["lexical_weights"], first.sparse):
        assert set(expected) == set(got)
        np.testing.assert_allclose([got[t] for t in expected], [float(w) for w in expected.values()], rtol=1e-5)


def test_dense_cache_alone_is_not_a_sparse_hit(tiny_settings, monkeypatch):
    dense_only = embed_texts(tiny_settings, TITLES)
    assert dense_only.sparse is None
    assert not cache_file(tiny_settings.cache_dir, "text-sparse", f"smpp/tiny-bge-m3@{dense_only.revision}").exists()

    settings = with_sparse(tiny_settings)
    calls = ModelCalls(settings, monkeypatch)
    result = embed_texts(settings, TITLES)
    assert calls.calls == 1 and result.cache_misses == 3 and len(result.sparse) == 3
    np.testing.assert_array_equal(result.vectors, dense_only.vectors)  # cached dense vectors are kept
    assert embed_texts(settings, TITLES).cache_hits == 3 and calls.calls == 1


def test_disabled_gives_no_sparse(tiny_settings):
    assert embed_texts(with_sparse(tiny_settings, False), TITLES).sparse is None


def test_empty_input_with_sparse(tiny_settings):
    result = embed_texts(with_sparse(tiny_settings), [])
    assert result.sparse == [] and result.vectors.shape == (0, 1024)


def test_offline_minilm_ignores_sparse_with_one_log_line(tmp_path, caplog):
    settings = with_sparse(Settings(data_dir=tmp_path, model_profile="offline"))
    with caplog.at_level(logging.WARNING, logger="smpp.encoders.api"):
        result = embed_texts(settings, TITLES[:2])
    assert result.sparse is None and result.vectors.shape == (2, 384)
    lines = [r.getMessage() for r in caplog.records if "text_sparse" in r.getMessage()]
    assert len(lines) == 1 and "no sparse lexical head" in lines[0]


def test_sparse_cache_round_trip_and_purge(tmp_path):
    cache = SparseCache(tmp_path, "text", "BAAI/bge-m3@abc")
    cache.put_many(["a", "b"], [{"12": 0.125, "7": 0.3}, {}])
    assert cache.get_many(["a", "b", "c"]) == {"a": {"12": 0.125, "7": 0.3}, "b": {}}
    assert list(cache.get_many(["a"])["a"]) == ["12", "7"]  # token order kept
    with pytest.raises(ValueError, match="2 keys for 1"):
        cache.put_many(["a", "b"], [{}])
    assert purge_keys(tmp_path, ["a"]) == 1
    assert cache.get_many(["a", "b"]) == {"b": {}} and len(cache) == 1


def test_sparse_to_arrow_round_trips_through_parquet(tmp_path):
    weights = [{"5": 0.25, "17": 1.5}, None, {}]
    array = sparse_to_arrow(weights)
    assert array.type == pa.map_(pa.string(), pa.float32())
    assert array.null_count == 1 and len(array) == 3
    pq.write_table(pa.table({"post_id": ["p1", "p2", "p3"], "title_sparse": array}), tmp_path / "t.parquet")
    back = pq.read_table(tmp_path / "t.parquet").column("title_sparse")
    assert back.type == array.type
    assert sparse_from_arrow(back) == weights
    assert len(sparse_to_arrow([])) == 0


@pytest.mark.parametrize(("bad", "error"), [([["5", 0.1]], TypeError), ([{"5": float("nan")}], ValueError)])
def test_sparse_to_arrow_rejects_bad_rows(bad, error):
    with pytest.raises(error, match="row 0"):
        sparse_to_arrow(bad)


def test_text_key_scheme_is_shared(tiny_settings):
    result = embed_texts(with_sparse(tiny_settings), TITLES[:1])
    cache = SparseCache(tiny_settings.cache_dir, "text", f"{result.model_id}@{result.revision}")
    assert cache.get_many([text_key(TITLES[0])]) == {text_key(TITLES[0]): result.sparse[0]}
