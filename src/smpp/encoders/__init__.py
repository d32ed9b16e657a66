"""Encoders: captioner, bge-m3 text, timm ViT image and Visualized BGE image+text embedders,
model profiles (tiny / offline / production) and the embedding cache.

Heavy libraries (torch, transformers, timm, FlagEmbedding) load on first use, not on import.
"""

from smpp.encoders.api import (
    CaptionResult,
    EmbedResult,
    caption_images,
    embed_image_text,
    embed_images,
    embed_texts,
    model_info,
)
from smpp.encoders.prepare import prepare_models
from smpp.encoders.profiles import ModelNotAvailableError
from smpp.encoders.sparse import sparse_from_arrow, sparse_to_arrow

__all__ = [
    "CaptionResult",
    "EmbedResult",
    "ModelNotAvailableError",
    "caption_images",
    "embed_image_text",
    "embed_images",
    "embed_texts",
    "model_info",
    "prepare_models",
    "sparse_from_arrow",
    "sparse_to_arrow",
]
