"""Public encoder API: cached, batched embeddings and captions for each role."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smpp.encoders import profiles
from smpp.encoders.cache import CaptionCache, SparseCache, VectorCache, joint_key, text_key
from smpp.encoders.prepare import ensure_tiny_models, needs_tiny_models
from smpp.progress import Progress
from smpp.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    vectors: np.ndarray  # (n, dim) float32, L2-normalised where the model normally is
    model_id: str
    revision: str
    dim: int
    cache_hits: int
    cache_misses: int
    # text only, with settings.encoders.text_sparse on a bge-m3: token id -> lexical weight, per input
    sparse: list[dict[str, float]] | None = None


@dataclass
class CaptionResult:
    captions: list[str]
    model_id: str
    revision: str
    cache_hits: int
    cache_misses: int


_loaded: dict[tuple[str, str, str, str, str], Any] = {}
_load_lock = threading.Lock()


def _loader(role: str) -> Callable[[profiles.ModelSpec, str], Any]:
    if role == "text":
        from smpp.encoders.text import load_text_encoder

        return load_text_encoder
    if role == "image":
        from smpp.encoders.image import load_image_encoder

        return load_image_encoder
    if role == "joint":
        from smpp.encoders.joint import load_joint_encoder

        return load_joint_encoder
    from smpp.encoders.caption import load_captioner

    return load_captioner


def resolved_spec(settings: Settings, role: str) -> profiles.ModelSpec:
    if role not in profiles.ROLES:
        raise ValueError(f"unknown encoder role {role!r}; expected one of {profiles.ROLES}")
    if needs_tiny_models(settings, (role,)):
        ensure_tiny_models(settings)
    return profiles.resolve_spec(settings, role)


def get_encoder(settings: Settings, role: str, spec: profiles.ModelSpec | None = None) -> Any:
    """The role's loaded model, loaded once per process (keyed by profile, role, files, device)."""
    spec = spec or resolved_spec(settings, role)
    device = profiles.resolve_device(settings)
    key = (settings.model_profile, role, str(spec.path), spec.revision, device)
    with _load_lock:
        if key not in _loaded:
            log.info("loading %s model %s (rev %s) on %s", role, spec.model_id, spec.revision, device)
            _loaded[key] = _loader(role)(spec, device)
        return _loaded[key]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), max(1, size))]


def _check_lengths(**named: Sequence[Any]) -> None:
    lengths = {name: len(values) for name, values in named.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"input lengths differ: {lengths}")
    for name, values in named.items():
        if name.endswith("keys") and any(not key for key in values):
            raise ValueError(f"{name} holds an empty content key")


def _embed_cached(
    settings: Settings, role: str, keys: Sequence[str], items: Sequence[Any], sparse: bool = False
) -> EmbedResult:
    """Vectors for `items` from the cache or the model; with `sparse`, lexical weights too (text)."""
    spec = resolved_spec(settings, role)
    if not keys:
        dim = int(model_info(settings, role)["dim"])
        empty = np.zeros((0, dim), np.float32)
        return EmbedResult(empty, spec.model_id, spec.revision, dim, 0, 0, [] if sparse else None)

    cache = VectorCache(settings.cache_dir, role, spec.model_key)
    sparse_cache = SparseCache(settings.cache_dir, role, spec.model_key) if sparse else None
    item_by_key = dict(zip(keys, items))
    unique_keys = list(item_by_key)
    found = cache.get_many(unique_keys)
    found_sparse = sparse_cache.get_many(unique_keys) if sparse_cache else {}
    # With sparse on, a key is a hit only when both outputs are cached (one pass computes both).
    cached_before = {key for key in found if sparse_cache is None or key in found_sparse}
    missing = [key for key in unique_keys if key not in cached_before]
    if missing and isinstance(item_by_key[missing[0]], str):
        # texts of similar length share a batch: padding to a batch's longest title dominated CPU time
        missing.sort(key=lambda key: len(item_by_key[key]))
    if missing:
        encoder = get_encoder(settings, role, spec)
        batch_size = settings.encoders.batch_size
        progress = Progress(f"{role} embeddings", len(missing), "inputs", settings.progress_every_s)
        # Write each chunk as it finishes, so an interrupted run keeps its progress.
        for chunk in _batches(missing, settings.encoders.chunk_size):
            batches = [[item_by_key[key] for key in batch] for batch in _batches(chunk, batch_size)]
            if sparse_cache is None:
                vectors = np.concatenate([progress.counted(encoder.forward(batch), len(batch)) for batch in batches])
            else:
                outputs = [progress.counted(encoder.forward_with_sparse(batch), len(batch)) for batch in batches]
                vectors = np.concatenate([dense for dense, _ in outputs])
                weights = [item for _, batch_weights in outputs for item in batch_weights]
                sparse_cache.put_many(chunk, weights)
                found_sparse.update(zip(chunk, weights))
            # A vector cached by a dense-only run stays as it was; only new ones are stored.
            new = [index for index, key in enumerate(chunk) if key not in found]
            cache.put_many([chunk[index] for index in new], vectors[new])
            found.update((chunk[index], vectors[index]) for index in new)
        progress.finish()
    vectors = np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
    hits = sum(key in cached_before for key in keys)
    log.info("%s embeddings: %d inputs, %d cache hits, %d computed", role, len(keys), hits, len(missing))
    return EmbedResult(
        vectors,
        spec.model_id,
        spec.revision,
        int(vectors.shape[1]),
        hits,
        len(keys) - hits,
        [dict(found_sparse[key]) for key in keys] if sparse_cache else None,
    )


def _text_sparse_enabled(settings: Settings) -> bool:
    """settings.encoders.text_sparse, when the text model has a sparse head (bge-m3); else logs why not."""
    if not settings.encoders.text_sparse:
        return False
    spec = resolved_spec(settings, "text")
    if spec.kind == profiles.BGE_M3:
        return True
    log.warning(
        "encoders.text_sparse is on but text model %s (%s, profile %s) has no sparse lexical head: "
        "returning dense embeddings only (sparse=None)",
        spec.model_id,
        spec.kind,
        settings.model_profile,
    )
    return False


def embed_texts(settings: Settings, texts: Sequence[str]) -> EmbedResult:
    """Dense text embeddings (bge-m3 in production), cached by sha256 of the text.

    With settings.encoders.text_sparse and a bge-m3 model, `sparse` also holds each text's lexical
    weights (token id -> weight, as BGEM3FlagModel gives them), from the same forward pass and cached.
    """
    texts = [str(text) for text in texts]
    keys = [text_key(text) for text in texts]
    return _embed_cached(settings, "text", keys, texts, sparse=_text_sparse_enabled(settings))


def embed_images(settings: Settings, image_paths: Sequence[str], content_keys: Sequence[str]) -> EmbedResult:
    """Pooled ViT image embeddings, cached by the images' content keys (SHA-256)."""
    _check_lengths(image_paths=image_paths, content_keys=content_keys)
    return _embed_cached(settings, "image", list(content_keys), [str(path) for path in image_paths])


def embed_image_text(
    settings: Settings, image_paths: Sequence[str], texts: Sequence[str], content_keys: Sequence[str]
) -> EmbedResult:
    """Visualized BGE image+text embeddings, cached by (image content key, text hash)."""
    _check_lengths(image_paths=image_paths, texts=texts, content_keys=content_keys)
    keys = [joint_key(key, str(text)) for key, text in zip(content_keys, texts)]
    pairs = [(str(path), str(text)) for path, text in zip(image_paths, texts)]
    return _embed_cached(settings, "joint", keys, pairs)


def caption_images(settings: Settings, image_paths: Sequence[str], content_keys: Sequence[str]) -> CaptionResult:
    """Captions from the BLIP captioner (prompt and max_new_tokens from settings), cached."""
    _check_lengths(image_paths=image_paths, content_keys=content_keys)
    spec = resolved_spec(settings, "caption")
    prompt = settings.encoders.caption_prompt
    max_new_tokens = settings.encoders.caption_max_new_tokens
    if not content_keys:
        return CaptionResult([], spec.model_id, spec.revision, 0, 0)
    # The generation config changes the output, so it is part of the cache's model key.
    generation = _sha256(f"{prompt}\n{max_new_tokens}")[:12]
    cache = CaptionCache(settings.cache_dir, f"{spec.model_key}|gen={generation}")
    path_by_key = dict(zip(content_keys, (str(path) for path in image_paths)))
    unique_keys = list(path_by_key)
    found = cache.get_many(unique_keys)
    cached_before = set(found)
    missing = [key for key in unique_keys if key not in found]
    if missing:
        captioner = get_encoder(settings, "caption", spec)
        progress = Progress("captions", len(missing), "images", settings.progress_every_s)
        for chunk in _batches(missing, settings.encoders.chunk_size):
            captions: list[str] = []
            for batch in _batches(chunk, settings.encoders.batch_size):
                captions.extend(captioner.forward([path_by_key[key] for key in batch], prompt, max_new_tokens))
                progress.advance(len(batch))
            cache.put_many(chunk, captions)
            found.update(zip(chunk, captions))
        progress.finish()
    hits = sum(key in cached_before for key in content_keys)
    log.info("captions: %d inputs, %d cache hits, %d generated", len(content_keys), hits, len(missing))
    return CaptionResult(
        [found[key] for key in content_keys], spec.model_id, spec.revision, hits, len(content_keys) - hits
    )


def model_info(settings: Settings, role: str) -> dict[str, object]:
    """model_id, revision, dim (None for the captioner), kind and path; reads configs only."""
    spec = resolved_spec(settings, role)
    dim: int | None
    if role == "text":
        from smpp.encoders.text import text_dim

        dim = text_dim(spec)
    elif role == "image":
        from smpp.encoders.image import image_dim

        dim = image_dim(spec)
    elif role == "joint":
        from smpp.encoders.joint import joint_dim

        dim = joint_dim(spec)
    else:
        dim = None
    return {
        "role": role,
        "model_id": spec.model_id,
        "revision": spec.revision,
        "dim": dim,
        "kind": spec.kind,
        "path": str(spec.path) if spec.path is not None else None,
        "profile": settings.model_profile,
    }
