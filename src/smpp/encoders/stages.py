"""The enrichment stages on a day's frames: what each sends to its encoder and the rows it writes.

Plain functions of (settings, frames) -> frames / tables; `smpp.tasks` only reads the partitions,
calls one of these and writes the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from smpp.encoders.api import EmbedResult, caption_images, embed_image_text, embed_images, embed_texts
from smpp.encoders.sparse import sparse_to_arrow
from smpp.images.gallery import primary_images
from smpp.settings import Settings
from smpp.storage import vectors_to_arrow


def usable_images(images_partition: pd.DataFrame) -> pd.DataFrame:
    """The fetched (status ok) first image of each post: what the image models see."""
    images = primary_images(images_partition)
    if images.empty:
        return images
    return images[images["status"] == "ok"].reset_index(drop=True)


@dataclass
class Captions:
    frame: pd.DataFrame  # post_id, sha256, caption, caption_model, caption_revision
    model_id: str
    revision: str
    cache_hits: int
    cache_misses: int


def caption_posts(settings: Settings, images: pd.DataFrame) -> Captions:
    """One caption per post with a usable image; reposts of one image (same sha256) are captioned once."""
    unique = images.drop_duplicates("sha256") if not images.empty else images
    result = caption_images(
        settings,
        unique["path"].tolist() if not unique.empty else [],
        unique["sha256"].tolist() if not unique.empty else [],
    )
    by_sha = dict(zip(unique["sha256"], result.captions)) if not unique.empty else {}
    frame = pd.DataFrame(
        {
            "post_id": images["post_id"] if not images.empty else pd.Series(dtype=str),
            "sha256": images["sha256"] if not images.empty else pd.Series(dtype=str),
            "caption": [by_sha[s] for s in images["sha256"]] if not images.empty else pd.Series(dtype=str),
        }
    )
    frame["caption_model"] = result.model_id
    frame["caption_revision"] = result.revision
    return Captions(frame, result.model_id, result.revision, result.cache_hits, result.cache_misses)


@dataclass
class Embeddings:
    """One embedding stage's rows: vectors per post, the encoder's identity and its counts."""

    post_ids: list[str]
    columns: dict[str, list]  # column -> one vector (or None: missing) per post
    result: EmbedResult
    counts: dict[str, int]
    extra_arrays: dict[str, pa.Array] = field(default_factory=dict)

    def table(self) -> pa.Table:
        """The partition's Arrow table, with the model id, revision and dim in its schema metadata."""
        arrays: dict[str, pa.Array] = {"post_id": pa.array(self.post_ids, pa.string())}
        for name, vectors in self.columns.items():
            arrays[name] = vectors_to_arrow(vectors, self.result.dim)
        arrays.update(self.extra_arrays)
        meta = {"model_id": self.result.model_id, "revision": self.result.revision, "dim": str(self.result.dim)}
        return pa.table(arrays).replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})

    def metrics(self) -> dict[str, Any]:
        result = self.result
        return {**self.counts, "dim": result.dim, "cache_hits": result.cache_hits, "cache_misses": result.cache_misses}


def text_embeddings(settings: Settings, kept: pd.DataFrame, captions: pd.DataFrame) -> Embeddings:
    """Titles and captions through the text encoder in one call (cached by text)."""
    caption_by_post = dict(zip(captions["post_id"], captions["caption"])) if not captions.empty else {}
    post_ids = kept["id"].astype(str).tolist() if not kept.empty else []
    titles = kept["title"].fillna("").tolist() if not kept.empty else []
    caption_texts = [caption_by_post.get(pid) for pid in post_ids]
    result = embed_texts(settings, titles + [c for c in caption_texts if c])
    title_vecs = list(result.vectors[: len(titles)])
    rest = iter(result.vectors[len(titles) :])
    caption_vecs = [next(rest) if c else None for c in caption_texts]
    # bge-m3 lexical weights of the titles, only with encoders.text_sparse
    sparse = {"title_sparse": sparse_to_arrow(result.sparse[: len(titles)])} if result.sparse is not None else {}
    counts = {"titles": len(titles), "captions": sum(1 for c in caption_texts if c)}
    return Embeddings(post_ids, {"title_emb": title_vecs, "caption_emb": caption_vecs}, result, counts, sparse)


def image_embeddings(settings: Settings, images: pd.DataFrame) -> Embeddings:
    """The image encoder's pooled features of each usable image."""
    paths = images["path"].tolist() if not images.empty else []
    keys = images["sha256"].tolist() if not images.empty else []
    result = embed_images(settings, paths, keys)
    post_ids = images["post_id"].tolist() if not images.empty else []
    return Embeddings(post_ids, {"image_emb": list(result.vectors)}, result, {"images": len(paths)})


def joint_embeddings(settings: Settings, images: pd.DataFrame, kept: pd.DataFrame) -> Embeddings:
    """Visualized BGE's joint embedding of each usable image with its post's title."""
    title_by_post = dict(zip(kept["id"], kept["title"].fillna(""))) if not kept.empty else {}
    post_ids = images["post_id"].tolist() if not images.empty else []
    texts = [title_by_post.get(pid, "") for pid in post_ids]
    paths = images["path"].tolist() if not images.empty else []
    keys = images["sha256"].tolist() if not images.empty else []
    result = embed_image_text(settings, paths, texts, keys)
    return Embeddings(post_ids, {"joint_emb": list(result.vectors)}, result, {"pairs": len(paths)})


def summed_chunk_metrics(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One stage's metrics from its mapped chunks' metrics: counts add up, the dim is shared."""
    total: dict[str, Any] = {"chunks": 0}
    for metrics in chunks:
        for key, value in metrics.items():
            if key == "dim":
                total["dim"] = value
            elif isinstance(value, int):
                total[key] = total.get(key, 0) + value
        total["chunks"] += 1
    return total
