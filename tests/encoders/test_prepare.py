from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from smpp.encoders import (
    ModelNotAvailableError,
    embed_images,
    embed_texts,
    model_info,
    prepare,
    prepare_models,
    profiles,
)
from smpp.settings import Settings

ROLES = ("text", "image", "joint", "caption")


def test_prepare_models_is_idempotent_and_fast(tiny_models_dir):
    settings = Settings(data_dir=tiny_models_dir.parent, model_profile="tiny")
    files = sorted(p for p in (tiny_models_dir / "tiny").rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}

    started = time.perf_counter()
    resolved = prepare_models(settings)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert set(ROLES) <= set(resolved)
    tiny_root = (tiny_models_dir / "tiny").resolve()
    assert all(tiny_root in Path(resolved[role]).parents for role in ROLES)


def test_tiny_models_are_saved_in_the_production_formats(tiny_models_dir):
    root = tiny_models_dir / "tiny"
    text = json.loads((root / "text" / "config.json").read_text())
    assert text["model_type"] == "xlm-roberta" and text["hidden_size"] == 1024
    assert (root / "text" / "sentencepiece.bpe.model").is_file()
    assert (root / "text" / "colbert_linear.pt").is_file() and (root / "text" / "sparse_linear.pt").is_file()

    image = json.loads((root / "image" / "config.json").read_text())
    assert image["architecture"].startswith("vit_") and (root / "image" / "model.safetensors").is_file()

    eva = json.loads((root / "joint" / profiles.EVA_CONFIG_FILE).read_text())
    assert eva["vision_cfg"]["eva_model_name"] == "eva-clip-l-14" and eva["vision_cfg"]["width"] == 1024
    assert (root / "joint" / profiles.TINY_JOINT_WEIGHTS).is_file()

    caption = json.loads((root / "caption" / "config.json").read_text())
    assert caption["model_type"] == "blip" and (root / "caption" / "vocab.txt").is_file()


def test_tiny_builds_are_deterministic(tiny_models_dir, tmp_path):
    seed = int(prepare.TINY_RECIPE["seed"])
    prepare._build_tiny_text(tmp_path / "text", seed)
    prepare._build_tiny_image(tmp_path / "image", seed)
    for role in ("text", "image"):
        assert profiles.local_revision(tmp_path / role) == profiles.local_revision(tiny_models_dir / "tiny" / role)


def test_model_info_reads_configs_without_loading(tiny_settings):
    from smpp.encoders import api

    loaded_before = dict(api._loaded)
    infos = {role: model_info(tiny_settings, role) for role in ROLES}

    assert api._loaded == loaded_before
    assert [infos[r]["dim"] for r in ROLES] == [1024, 192, 1024, None]
    assert infos["text"]["model_id"] == "smpp/tiny-bge-m3" and infos["text"]["kind"] == "bge-m3"
    assert all(infos[r]["revision"] for r in ROLES)
    with pytest.raises(ValueError, match="unknown encoder role"):
        model_info(tiny_settings, "audio")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _fake_snapshot(cache, repo_id: str, source, commit: str) -> None:
    """Lay out a model in the Hugging Face cache format (what `hf download` leaves)."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(source, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


def test_production_profile_names_the_missing_model(hub_cache, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", model_profile="production")
    with pytest.raises(ModelNotAvailableError) as err:
        model_info(settings, "text")
    message = str(err.value)
    assert "BAAI/bge-m3" in message and "SMPP_ENCODERS__TEXT_MODEL" in message and "hf download" in message
    with pytest.raises(ModelNotAvailableError, match="missing 4 model") as err:
        prepare_models(settings)
    for model in ("BAAI/bge-m3", "vit_large_patch16_384", "Salesforce/blip-image-captioning-large"):
        assert model in str(err.value)


def test_production_profile_loads_from_the_hf_cache(hub_cache, tiny_models_dir, tmp_path, make_images):
    text_commit, image_commit = "a" * 40, "b" * 40
    _fake_snapshot(hub_cache, "BAAI/bge-m3", tiny_models_dir / "tiny" / "text", text_commit)
    _fake_snapshot(hub_cache, profiles.PRODUCTION_MODELS["image"], tiny_models_dir / "tiny" / "image", image_commit)
    settings = Settings(data_dir=tmp_path / "data", model_profile="production")

    texts = embed_texts(settings, ["a dog on a mountain"])
    assert (texts.model_id, texts.revision, texts.vectors.shape) == ("BAAI/bge-m3", text_commit, (1, 1024))

    paths, keys = make_images(2)
    images = embed_images(settings, paths, keys)
    assert images.model_id == profiles.PRODUCTION_MODELS["image"] and images.revision == image_commit
    assert images.vectors.shape == (2, 192)
    assert not (tmp_path / "data" / "encoders").exists()  # production builds nothing locally
