"""Tiny encoder models, built once per test session and shared by every test's data dir."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from smpp.settings import Settings


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    from smpp.encoders import prepare_models
    from smpp.encoders.joint import import_visualized_bge

    try:
        import_visualized_bge()  # the tiny profile includes a Visualized BGE model
    except RuntimeError as err:
        pytest.skip(f"scripts/install_visualized_bge.py has not run in this venv: {err}")
    data_dir = tmp_path_factory.mktemp("tiny-models")
    prepare_models(Settings(data_dir=data_dir, model_profile="tiny"))
    return data_dir / "encoders"


@pytest.fixture
def tiny_settings(tmp_path, tiny_models_dir) -> Settings:
    """Tiny profile rooted in tmp_path (own cache) over the session's tiny models."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "encoders").symlink_to(tiny_models_dir, target_is_directory=True)
    return Settings(data_dir=data_dir, model_profile="tiny")


@pytest.fixture
def make_images(tmp_path) -> Callable[[int], tuple[list[str], list[str]]]:
    """n distinct small images (mixed sizes, modes, formats) -> (paths, sha256 content keys)."""
    from PIL import Image

    def make(count: int) -> tuple[list[str], list[str]]:
        folder = tmp_path / "images"
        folder.mkdir(exist_ok=True)
        paths, keys = [], []
        for index in range(count):
            rng = np.random.default_rng(index)
            pixels = (rng.random((40 + 7 * index, 64 - 3 * index, 3)) * 255).astype("uint8")
            image = Image.fromarray(pixels)
            if index % 3 == 2:
                image = image.convert("L")  # grayscale input must still work
            path = folder / f"img{index}.{'png' if index % 2 else 'jpg'}"
            image.save(path)
            paths.append(str(path))
            keys.append(hashlib.sha256(path.read_bytes()).hexdigest())
        return paths, keys

    return make


class ForwardCounter:
    """Wraps an encoder's forward to count the model calls and the items they saw."""

    def __init__(self, encoder, monkeypatch) -> None:
        self.calls = 0
        self.items = 0
        original = encoder.forward

        def counted(batch, *args, **kwargs):
            self.calls += 1
            self.items += len(batch)
            return original(batch, *args, **kwargs)

        monkeypatch.setattr(encoder, "forward", counted)


@pytest.fixture
def count_forward(monkeypatch) -> Callable[[Settings, str], ForwardCounter]:
    from smpp.encoders.api import get_encoder

    return lambda settings, role: ForwardCounter(get_encoder(settings, role), monkeypatch)
