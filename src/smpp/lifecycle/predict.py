"""`smpp predict`: score new posts (JSON lines) with the champion, through the pipeline's feature code.

Each input line is one JSON object: `title`, `subreddit`, `created_utc` (epoch seconds, or an
ISO-8601 `created` / `created_time`), optional `author`, `id`, `is_self`, `over_18`, `domain`,
`selftext_len`, and an optional image as `image` / `image_path` (a local file) or `image_url`.
One JSON line comes out per input line, in order: the prediction, or `{"line": n, "error": ...}`
(also for an `id` repeated from an earlier line).

Author facts (account age, link and comment karma) come, per post, from the first source that has
any: the input's `author_link_karma`, `author_comment_karma` (numbers) and `author_created_utc`
(the account's creation, epoch seconds or ISO-8601); else the warehouse's first snapshot of the
author (as the pipeline's features use); else, with `fetch_authors`, Reddit now, through the
pipeline's PRAW author code (100 per request, same pacing and 429 retries; it needs the author's
t2_ id: the input's `author_fullname` or one the warehouse has seen); else unknown (masked, as
the model saw unknown authors in training). The output's `author_source` says which
("input" | "warehouse" | "reddit" | "unknown"). Karma from the input or Reddit is as of now,
later than the first-sight snapshot the model trained on: right for a post being scored now,
not for re-scoring old posts.

Features are built exactly as in the pipeline: `metadata_features` + `extra_post_features`,
leak-free history from the pipeline's feature partitions and labels when there are any, title
embeddings through the configured model profile (cached), and for an image the stored JPEG,
its hand-crafted features and the image / caption / joint embeddings the champion has towers for.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smpp.features.author_history import history_features
from smpp.features.table import build_feature_table, feature_frame_of
from smpp.images.features import image_features_frame
from smpp.settings import Settings

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 1000


class BadPost(ValueError):
    """An input line that cannot be scored (the message says why)."""


AUTHOR_SOURCES = ("input", "warehouse", "reddit", "unknown")
# input key -> column of the authors frame metadata_features takes
AUTHOR_KARMA_FIELDS = {"author_link_karma": "link_karma", "author_comment_karma": "comment_karma"}
AUTHOR_FACT_COLUMNS = ["created_utc", "link_karma", "comment_karma"]
_FULLNAME = re.compile(r"^(t2_)?[0-9a-z]{1,16}$")


@dataclass
class ParsedPost:
    line: int
    post: dict[str, Any]
    image: str | None
    author_facts: dict[str, float] | None = None  # explicit input facts, AUTHOR_FACT_COLUMNS keys
    author_fullname: str | None = None  # t2_ id, for fetching the author from Reddit


def _created(data: dict[str, Any]) -> int:
    value = data.get("created_utc")
    if value is None:
        value = data.get("created", data.get("created_time"))
    if value is None:
        raise BadPost("missing created_utc (epoch seconds) or created/created_time (ISO-8601)")
    return _epoch(value, "created time")


def _epoch(value: Any, what: str) -> int:
    """Epoch seconds from a number, a numeric string or an ISO-8601 string (naive = UTC)."""
    if isinstance(value, bool):
        raise BadPost(f"{what} must be a number or an ISO-8601 string, not {value!r}")
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
                raise BadPost(f"{what} {text!r:.40} is neither epoch seconds nor ISO-8601") from exc
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadPost(f"{what} {value!r:.40} is not a positive finite time")
    return int(seconds)


def _author_facts(data: dict[str, Any]) -> dict[str, float] | None:
    """The author facts the input states (null = not stated); None when it states none."""
    facts: dict[str, float] = {}
    for field, column in AUTHOR_KARMA_FIELDS.items():
        value = data.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadPost(f"{field} must be a finite number, not {value!r:.40}")
        facts[column] = float(value)
    if data.get("author_created_utc") is not None:
        facts["created_utc"] = float(_epoch(data["author_created_utc"], "author_created_utc"))
    return facts or None


def _author_fullname(data: dict[str, Any]) -> str | None:
    value = data.get("author_fullname")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _FULLNAME.match(value.strip().lower()):
        raise BadPost(f"author_fullname must be a Reddit account id like t2_abc123, not {value!r:.40}")
    return "t2_" + value.strip().lower().removeprefix("t2_")


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
    return ParsedPost(line_number, post, image.strip() if image else None, _author_facts(data), _author_fullname(data))


def read_lines(lines: Iterable[str], first_line_number: int = 1) -> tuple[list[ParsedPost], dict[int, str]]:
    """Parsed posts and {line number: error} for the bad ones (blank lines are skipped)."""
    posts: list[ParsedPost] = []
    errors: dict[int, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=first_line_number):
        if not line.strip():
            continue
        try:
            parsed = parse_post(number, line)
        except BadPost as exc:
            errors[number] = str(exc)
            continue
        # images and notes are keyed by id: a repeated id would mix two posts up
        pid = parsed.post["id"]
        if pid in first_line:
            errors[number] = f"duplicate id {pid!r:.40} (first on line {first_line[pid]})"
            continue
        first_line[pid] = number
        posts.append(parsed)
    return posts, errors


def _store_local_image(settings: Settings, path: str) -> tuple[str, str]:
    """Normalise and store a local image as the pipeline stores fetched ones: (sha256, stored path)."""
    from smpp.images.fetch import normalise_image, store_image

    data = Path(path).expanduser().read_bytes()
    normalised = normalise_image(data, settings.images.max_side, settings.images.max_decode_mb << 20)
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


def history_frame(settings: Settings, posts: list[ParsedPost]) -> pd.DataFrame | None:
    """Earlier posts of these posts' authors and subreddits, with their matured labels, from the warehouse.

    The same query build_features runs for the pipeline's history columns (never the whole window).
    """
    from smpp.warehouse import session_for
    from smpp.warehouse.authors import warehouse_exists
    from smpp.warehouse.history_store import warehouse_history

    if not posts or not warehouse_exists(settings):
        return None
    until = max(int(p.post["created_utc"]) for p in posts) + 1
    try:
        with session_for(settings.database_url) as session:
            frame = warehouse_history(
                session, [p.post.get("author") for p in posts], [p.post.get("subreddit") for p in posts], until
            )
    except Exception as exc:  # noqa: BLE001 - predicting without a pipeline history is allowed
        log.warning("no pipeline history for author/subreddit features: %s", exc)
        return None
    return frame if not frame.empty else None


@dataclass
class AuthorFacts:
    """Per post, in input order: the facts (AUTHOR_FACT_COLUMNS, NaN = unknown), their source, a note."""

    frame: pd.DataFrame
    sources: list[str]
    notes: list[str | None]


def _known(row: Any) -> bool:
    return any(pd.notna(row[c]) for c in AUTHOR_FACT_COLUMNS)


def resolve_authors(settings: Settings, posts: list[ParsedPost], fetch: bool = False) -> AuthorFacts:
    """Author facts per post: input, else the warehouse's first snapshot, else (fetch) Reddit now, else unknown.

    Raises RedditConfigError / RedditAuthError when `fetch` is asked for without usable credentials.
    """
    from smpp.warehouse.authors import warehouse_authors

    frame = pd.DataFrame(np.nan, index=range(len(posts)), columns=AUTHOR_FACT_COLUMNS)
    sources = ["unknown"] * len(posts)
    notes: list[str | None] = [None] * len(posts)
    for i, parsed in enumerate(posts):
        if parsed.author_facts:
            for column, value in parsed.author_facts.items():
                frame.at[i, column] = value
            sources[i] = "input"

    pending = [i for i in range(len(posts)) if sources[i] == "unknown" and posts[i].post["author"]]
    if pending:
        try:
            stored = warehouse_authors(settings, [posts[i].post["author"] for i in pending])
        except Exception as exc:  # noqa: BLE001 - scoring without the warehouse is allowed
            log.warning("warehouse authors unavailable, author facts unknown: %s", exc)
            stored = pd.DataFrame(columns=["name", *AUTHOR_FACT_COLUMNS])
        by_name = {row.name: row for row in stored.itertuples(index=False) if _known(row._asdict())}
        for i in pending:
            row = by_name.get(posts[i].post["author"])
            if row is not None:
                for column in AUTHOR_FACT_COLUMNS:
                    frame.at[i, column] = getattr(row, column)
                sources[i] = "warehouse"

    pending = [
        i
        for i in range(len(posts))
        if sources[i] == "unknown" and (posts[i].post["author"] or posts[i].author_fullname)
    ]
    if fetch and pending:
        _fetch_into(settings, posts, pending, frame, sources, notes)
    return AuthorFacts(frame, sources, notes)


def _fetch_into(
    settings: Settings,
    posts: list[ParsedPost],
    pending: list[int],
    frame: pd.DataFrame,
    sources: list[str],
    notes: list[str | None],
) -> None:
    """Fill `pending` posts' facts from Reddit (by t2_ id: the input's, else the warehouse's)."""
    import prawcore

    from smpp.sources.reddit import MalformedResponse
    from smpp.warehouse.authors import fetch_current, known_fullnames

    try:
        stored = known_fullnames(settings, [posts[i].post["author"] for i in pending if not posts[i].author_fullname])
    except Exception as exc:  # noqa: BLE001 - without the warehouse only input ids can be fetched
        log.warning("warehouse author ids unavailable: %s", exc)
        stored = {}
    ids = {i: posts[i].author_fullname or stored.get(posts[i].post["author"]) for i in pending}
    for i, fullname in ids.items():
        if fullname is None:
            notes[i] = "author not fetched: no author_fullname (t2_ id) in the input or the warehouse"
    wanted = [f for f in ids.values() if f]
    if not wanted:
        return
    try:
        fetched, _missing = fetch_current(settings, wanted)
    except (prawcore.PrawcoreException, MalformedResponse) as exc:
        # an exhausted 429 budget: score with unknown authors rather than fail every line
        log.warning("fetching authors from Reddit failed, author facts unknown: %s", exc)
        for i, fullname in ids.items():
            if fullname:
                notes[i] = f"author fetch failed ({type(exc).__name__})"
        return
    by_id = {row["fullname"]: row for row in fetched.to_dict("records")}
    for i, fullname in ids.items():
        if not fullname:
            continue
        row = by_id.get(fullname)
        if row is None or not _known(row):
            notes[i] = f"Reddit did not return author {fullname} (deleted, suspended or unknown)"
            continue
        for column in AUTHOR_FACT_COLUMNS:
            frame.at[i, column] = row[column]
        sources[i] = "reddit"


def feature_frame(
    settings: Settings,
    posts: list[ParsedPost],
    embedding_dims: dict[str, int],
    history: pd.DataFrame | None,
    authors: AuthorFacts | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The feature rows for `posts` (the pipeline's one assembly, build_feature_table) and per-post image notes.

    `authors`: resolve_authors' facts per post (None: every author unknown).
    """
    raw = pd.DataFrame([p.post for p in posts])
    post_ids = raw["id"].astype(str).tolist()
    # authors are joined on a per-post key: two posts by one author may state different facts
    author_keys = [f"post:{i}" for i in range(len(posts))]
    facts = (
        authors.frame
        if authors is not None
        else pd.DataFrame(np.nan, index=range(len(posts)), columns=AUTHOR_FACT_COLUMNS)
    )
    author_rows = facts[AUTHOR_FACT_COLUMNS].astype("float64").assign(name=author_keys)

    notes: dict[str, str] = {}
    images = _images(settings, posts) if any(p.image for p in posts) else {}
    paths: list[str | None] = []
    image_keys: list[str | None] = []
    for pid in post_ids:
        found = images.get(pid)
        if isinstance(found, tuple):
            image_keys.append(found[0])
            paths.append(found[1])
        else:
            if isinstance(found, str):
                notes[pid] = found
            image_keys.append(None)
            paths.append(None)
    with_image = [(pid, path) for pid, path in zip(post_ids, paths) if path is not None]
    image_feats = image_features_frame([path for _, path in with_image])
    image_feats.insert(0, "post_id", [pid for pid, _ in with_image])

    keys = raw[["id", "subreddit", "author", "created_utc"]].rename(columns={"id": "post_id"})
    history_source = keys
    if history is not None:  # a scored post the warehouse has counts once, with its stored label
        history_source = pd.concat([history, keys.loc[~keys["post_id"].isin(history["post_id"])]], ignore_index=True)
    hist = history_features(keys, history_source, settings.label_age_hours)

    embeddings = _embed(settings, post_ids, raw["title"].tolist(), paths, image_keys, embedding_dims, notes)
    table = build_feature_table(
        raw,
        author_rows,
        day=None,
        history=hist,
        dims=embedding_dims,
        embeddings=embeddings,
        image_ok=[pid for pid, _ in with_image],
        image_features=image_feats,
        author_keys=author_keys,
    )
    return feature_frame_of(table), notes


def _embed(
    settings: Settings,
    post_ids: list[str],
    titles: list[str],
    paths: list[str | None],
    keys: list[str | None],
    dims: dict[str, int],
    notes: dict[str, str],
) -> dict[str, list]:
    """The embedding columns the model has towers for, one vector per post (None: missing, the model masks it)."""
    from smpp import encoders

    n = len(post_ids)
    out: dict[str, list] = {column: [None] * n for column in dims}
    if "title_emb" in dims:
        out["title_emb"] = list(encoders.embed_texts(settings, titles).vectors)
    with_image = [i for i in range(n) if paths[i] is not None]
    if not with_image or not ({"image_emb", "caption_emb", "joint_emb"} & set(dims)):
        return out
    img_paths = [paths[i] for i in with_image]
    img_keys = [keys[i] for i in with_image]
    try:
        if "image_emb" in dims:
            vectors = encoders.embed_images(settings, img_paths, img_keys).vectors
            for i, v in zip(with_image, vectors):
                out["image_emb"][i] = v
        if "caption_emb" in dims:
            captions = encoders.caption_images(settings, img_paths, img_keys).captions
            vectors = encoders.embed_texts(settings, captions).vectors
            for i, v in zip(with_image, vectors):
                out["caption_emb"][i] = v
        if "joint_emb" in dims:
            vectors = encoders.embed_image_text(settings, img_paths, [titles[i] for i in with_image], img_keys).vectors
            for i, v in zip(with_image, vectors):
                out["joint_emb"][i] = v
    except Exception as exc:  # noqa: BLE001 - an encoder failure drops the image modalities, not the posts
        log.warning("image encoders failed, scoring without image embeddings: %s", exc)
        for column in ("image_emb", "caption_emb", "joint_emb"):
            if column in dims:
                out[column] = [None] * n
        for i in with_image:
            notes[post_ids[i]] = f"image embeddings failed ({type(exc).__name__}); scored without them"
    return out


# encoder roles each embedding column needs (the caption is embedded by the text encoder)
ROLES_OF_COLUMN = {
    "title_emb": ("text",),
    "image_emb": ("image",),
    "caption_emb": ("caption", "text"),
    "joint_emb": ("joint",),
}


@dataclass
class Predictor:
    """A version's model and only the encoders its towers need, loaded once: start-up is paid once per process."""

    settings: Settings
    version: str
    model: Any
    dims: dict[str, int]
    roles: tuple[str, ...]
    startup_s: float

    @classmethod
    def load(cls, settings: Settings, version: str | None = None) -> Predictor:
        """Load `version` (default: the champion) and its encoders; RuntimeError when there is no champion."""
        from smpp.encoders.api import get_encoder
        from smpp.lifecycle.registry import champion, version_dir
        from smpp.training.model import load_model

        started = time.perf_counter()
        chosen = version or champion(settings)
        if chosen is None:
            raise RuntimeError(f"no champion model in {settings.models_dir}: train and promote one first")
        model = load_model(version_dir(settings, chosen))
        spec = model.smpp_input_spec
        dims = dict(spec.embedding_dims) if spec is not None else {}
        roles = tuple(dict.fromkeys(role for column in dims for role in ROLES_OF_COLUMN.get(column, ())))
        for role in roles:
            if role in ("image", "caption", "joint"):
                continue  # loaded on the first image: text-only input never pays for the image models
            get_encoder(settings, role)
        return cls(settings, chosen, model, dims, roles, time.perf_counter() - started)

    def score(
        self, lines: Iterable[str], fetch_authors: bool = False, first_line_number: int = 1
    ) -> list[dict[str, Any]]:
        """One result dict per non-blank input line, in input order (bad lines: {"line", "error"})."""
        from smpp.training.model import predict_frame

        posts, errors = read_lines(lines, first_line_number)
        by_line: dict[int, dict[str, Any]] = {n: {"line": n, "error": e} for n, e in errors.items()}
        if posts:
            authors = resolve_authors(self.settings, posts, fetch=fetch_authors)
            history = history_frame(self.settings, posts)
            frame, notes = feature_frame(self.settings, posts, self.dims, history, authors)
            predictions = predict_frame(self.model, frame)
            for index, (parsed, value) in enumerate(zip(posts, predictions)):
                pid = parsed.post["id"]
                result = {
                    "line": parsed.line,
                    "id": pid,
                    "subreddit": parsed.post["subreddit"],
                    "predicted_label": float(value),
                    "predicted_score": float(np.expm1(max(float(value), 0.0))),
                    "model_version": self.version,
                    "author_source": authors.sources[index],
                }
                warnings = [w for w in (notes.get(pid), authors.notes[index]) if w]
                if warnings:
                    result["warning"] = "; ".join(warnings)
                by_line[parsed.line] = result
        return [by_line[number] for number in sorted(by_line)]


def predict_lines(
    settings: Settings, lines: Iterable[str], version: str | None = None, fetch_authors: bool = False
) -> Iterator[dict[str, Any]]:
    """One result dict per non-blank input line, in input order.

    fetch_authors: look up authors that are neither in the input nor in the warehouse on Reddit
    (needs Reddit credentials in settings.reddit).
    """
    yield from Predictor.load(settings, version).score(list(lines), fetch_authors=fetch_authors)
