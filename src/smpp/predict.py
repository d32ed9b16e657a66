"""`smpp predict`: score new posts (JSON lines) with the champion, through the pipeline's feature code.

Each input line is one JSON object: `title`, `subreddit`, `created_utc` (epoch seconds, or an
ISO-8601 `created` / `created_time`), optional `author`, `id`, `is_self`, `over_18`, `domain`,
`selftext_len`, and an optional image as `image` / `image_path` (a local file) or `image_url`.
One JSON line comes out per input line, in order: the prediction, or `{"line": n, "error": ...}`.

Features are built exactly as in the pipeline: `metadata_features` + `extra_post_features`,
leak-free history from the pipeline's feature partitions and labels when there are any, title
embeddings through the configured model profile (cached), and for an image the stored JPEG,
its hand-crafted features and the image / caption / joint embeddings the champion has towers for.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.settings import Settings

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 1000


class BadPost(ValueError):
    """An input line that cannot be scored (the message says why)."""


@dataclass
class ParsedPost:
    line: int
    post: dict[str, Any]
    image: str | None


def _created(data: dict[str, Any]) -> int:
    value = data.get("created_utc")
    if value is None:
        value = data.get("created", data.get("created_time"))
    if value is None:
        raise BadPost("missing created_utc (epoch seconds) or created/created_time (ISO-8601)")
    if isinstance(value, bool):
        raise BadPost(f"created time must be a number or an ISO-8601 string, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise BadPost(f"created time {text!r:.40} is neither epoch seconds nor ISO-8601") from exc
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            seconds = parsed.timestamp()
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadPost(f"created time {value!r:.40} is not a positive finite time")
    return int(seconds)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false", "True", "False", None):
        return str(value).lower() in ("1", "true")
    raise BadPost(f"{name} must be a boolean, not {value!r:.40}")


def parse_post(line_number: int, line: str) -> ParsedPost:
    """One validated input post; raises BadPost with a readable reason."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadPost(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise BadPost(f"expected a JSON object, got {type(data).__name__}")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadPost("missing or empty title (a string)")
    subreddit = data.get("subreddit")
    if not isinstance(subreddit, str) or not subreddit.strip():
        raise BadPost("missing or empty subreddit (a string)")
    author = data.get("author")
    if author is not None and not isinstance(author, str):
        raise BadPost("author must be a string or null")
    selftext_len = data.get("selftext_len", 0)
    if isinstance(selftext_len, bool) or not isinstance(selftext_len, (int, float)) or selftext_len < 0:
        raise BadPost("selftext_len must be a non-negative number")
    image = data.get("image_path") or data.get("image") or data.get("image_url")
    if image is not None and not isinstance(image, str):
        raise BadPost("image / image_path / image_url must be a string")
    post = {
        "id": str(data.get("id") or f"line{line_number}"),
        "subreddit": subreddit.strip().removeprefix("r/"),
        "author": author if author not in ("", "[deleted]") else None,
        "created_utc": _created(data),
        "title": title[:MAX_TITLE_CHARS],
        "is_self": _flag(data, "is_self"),
        "over_18": _flag(data, "over_18"),
        "domain": data.get("domain") if isinstance(data.get("domain"), str) else None,
        "selftext_len": int(selftext_len),
    }
    return ParsedPost(line_number, post, image.strip() if image else None)


def read_lines(lines: Iterable[str]) -> tuple[list[ParsedPost], dict[int, str]]:
    """Parsed posts and {line number: error} for the bad ones (blank lines are skipped)."""
    posts: list[ParsedPost] = []
    errors: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            posts.append(parse_post(number, line))
        except BadPost as exc:
            errors[number] = str(exc)
    return posts, errors


def _store_local_image(settings: Settings, path: str) -> tuple[str, str]:
    """Normalise and store a local image as the pipeline stores fetched ones: (sha256, stored path)."""
    from smpp.images.fetch import normalise_image, store_image

    data = Path(path).expanduser().read_bytes()
    normalised = normalise_image(data, settings.images.max_side)
    sha, stored = store_image(settings, normalised.jpeg)
    return sha, str(stored)


def _images(settings: Settings, posts: list[ParsedPost]) -> dict[str, tuple[str, str] | str]:
    """post id -> (sha256, stored path), or an error string for an image that could not be used."""
    from smpp.images.fetch import fetch_images

    result: dict[str, tuple[str, str] | str] = {}
    urls = []
    for parsed in posts:
        if not parsed.image:
            continue
        pid = parsed.post["id"]
        if parsed.image.lower().startswith(("http://", "https://")):
            urls.append((pid, parsed.image))
            continue
        try:
            result[pid] = _store_local_image(settings, parsed.image)
        except Exception as exc:  # noqa: BLE001 - a bad image is reported per post, text is still scored
            result[pid] = f"image unusable ({type(exc).__name__}: {exc})"
    if urls:
        fetched = fetch_images(settings, pd.DataFrame(urls, columns=["post_id", "image_url"]))
        for row in fetched.itertuples():
            result[row.post_id] = (row.sha256, row.path) if row.status == "ok" else f"image fetch failed: {row.status}"
    return result


def history_frame(settings: Settings) -> pd.DataFrame | None:
    """Past posts with matured labels from the pipeline's partitions and warehouse, if there are any."""
    try:
        from smpp.tasks import training_frame

        now = datetime.now(timezone.utc)
        frame, _ = training_frame(settings, now.date(), int(now.timestamp()))
    except Exception as exc:  # noqa: BLE001 - predicting without a pipeline history is allowed
        log.warning("no pipeline history for author/subreddit features: %s", exc)
        return None
    return frame if not frame.empty else None


def feature_frame(
    settings: Settings, posts: list[ParsedPost], embedding_dims: dict[str, int], history: pd.DataFrame | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The feature rows for `posts` (as the pipeline builds them) and per-post image notes."""
    from smpp import schema
    from smpp.author_history import HISTORY_COLUMNS, history_features
    from smpp.features import extra_post_features, metadata_features

    raw = pd.DataFrame([p.post for p in posts])
    authors = pd.DataFrame(columns=["name", "created_utc", "link_karma", "comment_karma"])
    meta = metadata_features(raw, authors)
    frame = raw[["id", "subreddit", "author", "created_utc"]].rename(columns={"id": "post_id"})
    for column in schema.META_COLUMNS:
        if column in meta:
            frame[column] = meta[column].to_numpy(np.float32)
    for column, values in extra_post_features(raw).items():
        frame[column] = values

    notes: dict[str, str] = {}
    images = _images(settings, posts) if any(p.image for p in posts) else {}
    paths: list[str | None] = []
    keys: list[str | None] = []
    for pid in frame["post_id"]:
        found = images.get(pid)
        if isinstance(found, tuple):
            keys.append(found[0])
            paths.append(found[1])
        else:
            if isinstance(found, str):
                notes[pid] = found
            keys.append(None)
            paths.append(None)
    frame["has_image"] = np.array([p is not None for p in paths], dtype=np.float32)
    from smpp.images.features import image_features_frame

    image_feats = image_features_frame(paths)
    for column in schema.IMAGE_FEATURE_COLUMNS:
        frame[column] = image_feats[column].to_numpy(np.float32)

    history_source = frame if history is None else pd.concat([history, frame], ignore_index=True)
    hist = history_features(frame, history_source, settings.label_age_hours)
    for column in HISTORY_COLUMNS:
        frame[column] = hist[column].to_numpy(np.float32)

    _embed(settings, frame, raw["title"].tolist(), paths, keys, embedding_dims, notes)
    return frame, notes


def _embed(
    settings: Settings, frame: pd.DataFrame, titles: list[str], paths: list[str | None], keys: list[str | None],
    dims: dict[str, int], notes: dict[str, str],
) -> None:
    """Fill the embedding columns the model has towers for (missing -> None, which the model masks)."""
    from smpp import encoders

    n = len(frame)
    if "title_emb" in dims:
        frame["title_emb"] = list(encoders.embed_texts(settings, titles).vectors)
    with_image = [i for i in range(n) if paths[i] is not None]
    for column in ("image_emb", "caption_emb", "joint_emb"):
        if column in dims:
            frame[column] = pd.Series([None] * n, dtype=object)
    if not with_image or not ({"image_emb", "caption_emb", "joint_emb"} & set(dims)):
        return
    img_paths = [paths[i] for i in with_image]
    img_keys = [keys[i] for i in with_image]
    try:
        if "image_emb" in dims:
            vectors = encoders.embed_images(settings, img_paths, img_keys).vectors
            for i, v in zip(with_image, vectors):
                frame.at[i, "image_emb"] = v
        if "caption_emb" in dims:
            captions = encoders.caption_images(settings, img_paths, img_keys).captions
            vectors = encoders.embed_texts(settings, captions).vectors
            for i, v in zip(with_image, vectors):
                frame.at[i, "caption_emb"] = v
        if "joint_emb" in dims:
            vectors = encoders.embed_image_text(settings, img_paths, [titles[i] for i in with_image], img_keys).vectors
            for i, v in zip(with_image, vectors):
                frame.at[i, "joint_emb"] = v
    except Exception as exc:  # noqa: BLE001 - an encoder failure drops the image modalities, not the posts
        log.warning("image encoders failed, scoring without image embeddings: %s", exc)
        for i in with_image:
            notes[frame.at[i, "post_id"]] = f"image embeddings failed ({type(exc).__name__}); scored without them"


def predict_lines(settings: Settings, lines: Iterable[str], version: str | None = None) -> Iterator[dict[str, Any]]:
    """One result dict per non-blank input line, in input order."""
    from smpp.registry import champion, version_dir
    from smpp.training.model import load_model, predict_frame

    lines = list(lines)
    posts, errors = read_lines(lines)
    chosen = version or champion(settings)
    if chosen is None:
        raise RuntimeError(f"no champion model in {settings.models_dir}: train and promote one first")
    model = load_model(version_dir(settings, chosen))
    spec = model.smpp_input_spec
    dims = dict(spec.embedding_dims) if spec is not None else {}
    by_line: dict[int, dict[str, Any]] = {n: {"line": n, "error": e} for n, e in errors.items()}
    if posts:
        frame, notes = feature_frame(settings, posts, dims, history_frame(settings))
        predictions = predict_frame(model, frame)
        for parsed, value in zip(posts, predictions):
            pid = parsed.post["id"]
            result = {
                "line": parsed.line,
                "id": pid,
                "subreddit": parsed.post["subreddit"],
                "predicted_label": float(value),
                "predicted_score": float(np.expm1(max(float(value), 0.0))),
                "model_version": chosen,
            }
            if pid in notes:
                result["warning"] = notes[pid]
            by_line[parsed.line] = result
    for number in sorted(by_line):
        yield by_line[number]
