from __future__ import annotations

import numpy as np
import pytest

from smpp.encoders import embed_images
from smpp.encoders.api import get_encoder


def test_tiny_image_embeddings(tiny_settings, make_images):
    paths, keys = make_images(4)
    result = embed_images(tiny_settings, paths, keys)

    assert result.vectors.shape == (4, 192) and result.vectors.dtype == np.float32 and result.dim == 192
    assert np.isfinite(result.vectors).all()
    assert not np.allclose(result.vectors[0], result.vectors[1])
    np.testing.assert_allclose(get_encoder(tiny_settings, "image").forward(paths), result.vectors, atol=1e-5)
    assert result.model_id == "smpp/tiny-vit"


def test_image_cache_keys_on_content(tiny_settings, make_images, count_forward):
    paths, keys = make_images(3)
    counter = count_forward(tiny_settings, "image")
    embed_images(tiny_settings, paths, keys)
    calls = counter.calls

    # Same content under other paths: served from the cache.
    again = embed_images(tiny_settings, list(reversed(paths)), list(reversed(keys)))
    assert counter.calls == calls and (again.cache_hits, again.cache_misses) == (3, 0)


def test_bad_image_inputs_fail_clearly(tiny_settings, make_images, tmp_path):
    paths, keys = make_images(2)
    with pytest.raises(ValueError, match="lengths differ"):
        embed_images(tiny_settings, paths, keys[:1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        embed_images(tiny_settings, [str(broken)], ["f" * 64])
    assert embed_images(tiny_settings, [], []).vectors.shape == (0, 192)
