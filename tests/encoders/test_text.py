from __future__ import annotations

import numpy as np

from smpp.encoders import embed_texts, model_info
from smpp.encoders.api import get_encoder
from smpp.settings import Settings

TITLES = ["My dog sitting on a mountain at sunset", "First snow in the city", "Found this cat in my garden"]


def test_tiny_text_embeddings_shape_norm_and_determinism(tiny_settings):
    result = embed_texts(tiny_settings, TITLES)

    assert result.vectors.shape == (3, 1024) and result.vectors.dtype == np.float32 and result.dim == 1024
    assert np.isfinite(result.vectors).all()
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(result.vectors[0], result.vectors[1])
    again = get_encoder(tiny_settings, "text").forward(TITLES)
    np.testing.assert_allclose(again, result.vectors, atol=1e-6)
    assert (result.model_id, result.revision) == ("smpp/tiny-bge-m3", model_info(tiny_settings, "text")["revision"])


def test_second_call_runs_no_forward_pass(tiny_settings, count_forward):
    counter = count_forward(tiny_settings, "text")
    texts = [*TITLES, TITLES[0]]  # a repeat inside one call is computed once

    first = embed_texts(tiny_settings, texts)
    assert (first.cache_hits, first.cache_misses, counter.items) == (0, 4, 3)

    calls = counter.calls
    second = embed_texts(tiny_settings, texts)
    assert counter.calls == calls
    assert (second.cache_hits, second.cache_misses) == (4, 0)
    np.testing.assert_array_equal(second.vectors, first.vectors)


def test_batches_follow_settings(tiny_settings, count_forward):
    settings = tiny_settings.with_overrides(encoders={**tiny_settings.encoders.model_dump(), "batch_size": 2})
    counter = count_forward(settings, "text")
    embed_texts(settings, [f"title number {i}" for i in range(5)])
    assert counter.calls == 3


def test_empty_input_gives_empty_matrix(tiny_settings):
    result = embed_texts(tiny_settings, [])
    assert result.vectors.shape == (0, 1024) and (result.cache_hits, result.cache_misses) == (0, 0)


def test_offline_profile_uses_real_minilm(tmp_path):
    settings = Settings(data_dir=tmp_path, model_profile="offline")
    result = embed_texts(
        settings,
        [
            "A cute puppy playing in the grass",
            "A little dog running on the lawn",
            "Stock markets fall as inflation fears grow",
        ],
    )
    assert result.dim == 384 and result.vectors.shape == (3, 384)
    assert result.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    similar = float(result.vectors[0] @ result.vectors[1])
    unrelated = float(result.vectors[0] @ result.vectors[2])
    assert similar > unrelated + 0.3
    assert model_info(settings, "text")["dim"] == 384
    assert not (tmp_path / "encoders").exists()  # text alone needs no tiny models


def test_direct_forward_matches_bge_m3_encode(tiny_settings):
    """We call the bge-m3 model directly (encode() runs each first batch twice): same vectors."""
    encoder = get_encoder(tiny_settings, "text")
    expected = encoder.model.encode(TITLES, return_dense=True, return_sparse=False)["dense_vecs"]
    np.testing.assert_allclose(encoder.forward(TITLES), expected, atol=1e-5)


def test_long_embedding_runs_log_progress_lines(tiny_settings, caplog):
    import logging

    settings = tiny_settings.with_overrides(
        encoders={**tiny_settings.encoders.model_dump(), "batch_size": 2}, progress_every_s=1e-9
    )
    caplog.set_level(logging.INFO, logger="smpp.progress")
    embed_texts(settings, [f"progress title {i}" for i in range(5)])
    lines = [r.getMessage() for r in caplog.records if r.name == "smpp.progress"]
    # one line per batch (the interval is ~0 here), then the total
    assert lines[0].startswith("text embeddings: 2/5 inputs (40.0 %)") and "ETA" in lines[0]
    assert lines[-1].startswith("text embeddings: 5 inputs done in")
