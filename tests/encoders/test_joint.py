from __future__ import annotations

import numpy as np
import pytest

from smpp.encoders import embed_image_text


def _visualized_bge():
    from smpp.encoders.joint import import_visualized_bge

    try:
        return import_visualized_bge()
    except RuntimeError as err:
        pytest.skip(f"scripts/install_visualized_bge.py has not run in this venv: {err}")


def test_visualized_bge_import_path():
    model_class = _visualized_bge()
    assert model_class.__module__ == "FlagEmbedding.visual.modeling"


def test_joint_embeddings_match_the_library_encode(tiny_settings, make_images):
    import torch

    from smpp.encoders.api import get_encoder

    _visualized_bge()
    paths, keys = make_images(3)
    texts = ["a dog on a mountain", "", "first snow in the city " * 80]  # empty and over-long texts
    result = embed_image_text(tiny_settings, paths, texts, keys)

    assert result.vectors.shape == (3, 1024) and result.dim == 1024 and np.isfinite(result.vectors).all()
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    model = get_encoder(tiny_settings, "joint").model
    with torch.inference_mode():
        single = model.encode(image=paths[0], text=texts[0])  # the library's own unbatched path
        image_only = model.encode(image=paths[1])
        text_only = model.encode(text="a dog on a mountain")  # fails under transformers 5 without the mask fix
    np.testing.assert_allclose(single[0].numpy(), result.vectors[0], atol=1e-5)
    np.testing.assert_allclose(image_only[0].numpy(), result.vectors[1], atol=1e-5)
    assert text_only.shape == (1, 1024) and torch.isfinite(text_only).all()


def test_joint_cache_keys_on_image_and_text(tiny_settings, make_images, count_forward):
    _visualized_bge()
    paths, keys = make_images(2)
    counter = count_forward(tiny_settings, "joint")
    first = embed_image_text(tiny_settings, paths, ["a cat", "a dog"], keys)
    calls = counter.calls

    again = embed_image_text(tiny_settings, paths, ["a cat", "a dog"], keys)
    assert counter.calls == calls and again.cache_hits == 2
    np.testing.assert_array_equal(again.vectors, first.vectors)

    other_text = embed_image_text(tiny_settings, paths[:1], ["a horse"], keys[:1])
    assert other_text.cache_misses == 1 and counter.calls == calls + 1
