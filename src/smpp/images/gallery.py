"""Several images per post (gallery items): which to fetch, and which one the models use.

Data shape: the filtered partition keeps `image_url` (the image the models use) and gains
`image_urls` (list<string>: that image first, then, with images.all_gallery_items, the other
gallery items). The images partition holds one row per (post_id, image_index); image_index 0
is the image the models use, so captions, embeddings and features read primary_images() only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from smpp.images.urls import post_image_urls

POST_URL_COLUMNS = ("url", "domain", "post_hint", "preview_url", "gallery_urls", "is_self")
REQUEST_DTYPES = {"post_id": "string", "image_index": "int64", "image_url": "string"}


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text_or_none(value: object) -> str | None:
    return None if _missing(value) else str(value)


def _url_list(value: object, column: str) -> list[str]:
    """A list cell (list, tuple or the numpy array parquet gives back; None when absent) as str URLs."""
    if _missing(value):
        return []
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"{column} cells must be lists of URLs, got {type(value).__name__}: {value!r:.80}")
    return [str(item) for item in value if not _missing(item)]


def add_image_urls(posts: pd.DataFrame, all_gallery_items: bool) -> pd.DataFrame:
    """A copy of `posts` with `image_urls` (see post_image_urls) and `image_url` (its first, or None)."""
    missing = set(POST_URL_COLUMNS) - set(posts.columns)
    if missing:
        raise ValueError(f"add_image_urls needs columns {sorted(missing)}")
    image_urls = [
        post_image_urls(
            _text_or_none(row.url),
            _text_or_none(row.domain),
            _text_or_none(row.post_hint),
            _text_or_none(row.preview_url),
            _url_list(row.gallery_urls, "gallery_urls"),
            bool(row.is_self) if not _missing(row.is_self) else False,
            all_gallery_items=all_gallery_items,
        )
        for row in posts[list(POST_URL_COLUMNS)].itertuples(index=False)
    ]
    out = posts.copy()
    out["image_urls"] = pd.Series(image_urls, index=posts.index, dtype=object)
    out["image_url"] = pd.Series([urls[0] if urls else None for urls in image_urls], index=posts.index, dtype=object)
    return out


def expand_gallery_requests(frame: pd.DataFrame, all_items: bool) -> pd.DataFrame:
    """Fetch requests [post_id, image_index, image_url] from filtered posts (`id`, `image_url`[, `image_urls`]).

    Index 0 is `image_url`; with `all_items`, the other URLs of `image_urls` follow in order.
    A partition written before `image_urls` existed gives index 0 only.
    """
    missing = {"id", "image_url"} - set(frame.columns)
    if missing:
        raise ValueError(f"expand_gallery_requests needs columns {sorted(missing)}")
    extras = frame["image_urls"] if all_items and "image_urls" in frame.columns else pd.Series([None] * len(frame))
    rows: list[tuple[str, int, str]] = []
    for post_id, primary, urls in zip(frame["id"].tolist(), frame["image_url"].tolist(), extras.tolist()):
        primary = _text_or_none(primary)
        if primary is None:
            continue  # no image the models could use: the gallery's other items are not fetched either
        ordered = list(dict.fromkeys([primary, *_url_list(urls, "image_urls")]))
        rows.extend((str(post_id), index, url) for index, url in enumerate(ordered))
    return pd.DataFrame(rows, columns=list(REQUEST_DTYPES)).astype(REQUEST_DTYPES)


def primary_images(images: pd.DataFrame) -> pd.DataFrame:
    """The rows of an images partition the models use (image_index 0; every row of an older partition)."""
    if "image_index" not in images.columns:
        return images
    return images[images["image_index"] == 0].reset_index(drop=True)
