"""Records every source yields, so ingestion does not care where a post came from."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DELETED_MARKERS = {"[removed]", "[deleted]"}
POST_ID = re.compile(r"[0-9a-z]{1,16}")  # Reddit ids are base36; they also name cache files
TRUE_STRINGS = frozenset({"true", "1", "yes"})
FALSE_STRINGS = frozenset({"false", "0", "no", ""})
# The warehouse column types (smpp.warehouse.models; tests/warehouse/test_db.py checks they agree):
# BIGINT and INTEGER. A value outside them fails the whole day's insert (OverflowError on SQLite,
# "integer out of range" on Postgres), so the record is refused instead, on both dialects alike.
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
# created_utc of years 1-9999 (what a date can name: archive day files are named by it); this
# also keeps what is derived from it (label maturity: created_utc + label age) inside BIGINT.
CREATED_RANGE = (-62_135_596_800, 253_402_300_799)
# Postgres TEXT cannot hold NUL (the insert fails); SQLite would store it: refused on both alike.
TEXT_FIELDS = (
    "subreddit",
    "title",
    "author",
    "author_fullname",
    "url",
    "domain",
    "permalink",
    "post_hint",
    "preview_url",
    "flair_text",
)


class InvalidRecord(ValueError):
    """A post record that cannot be used; `reason` is a short key for skip counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _number(value: Any, name: str, post_id: str) -> float:
    """A finite number from an int, float or numeric string; anything else is an InvalidRecord."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidRecord(f"bad_{name}", f"post {post_id}: {name} is not a number: {value!r:.60}") from None
    if not math.isfinite(number):
        raise InvalidRecord(f"bad_{name}", f"post {post_id}: {name} is not finite: {value!r:.60}")
    return number


def _int_field(
    data: Mapping[str, Any], name: str, post_id: str, default: int | None, bounds: tuple[int, int]
) -> int | None:
    value = data.get(name)
    if type(value) is int:  # the common case, checked first: archive backfills parse millions
        number = value
    elif value is None or value == "":
        return default
    else:
        number = int(_number(value, name, post_id))
    low, high = bounds
    if not low <= number <= high:
        # no clamping: a score of 10**30 is not a big score but a broken line
        raise InvalidRecord(
            "out_of_range", f"post {post_id}: {name} {value!r:.40} is outside the stored range [{low}, {high}]"
        )
    return number


def _optional_float(value: Any, name: str, post_id: str) -> float | None:
    if type(value) is float and math.isfinite(value):
        return value
    if value is None or value == "":
        return None
    return _number(value, name, post_id)


def _bool_field(data: Mapping[str, Any], name: str, post_id: str) -> bool:
    value = data.get(name)
    if value is None or type(value) is bool:
        return bool(value)
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_STRINGS | FALSE_STRINGS:
        return value.strip().lower() in TRUE_STRINGS
    raise InvalidRecord(f"bad_{name}", f"post {post_id}: {name} is not a boolean: {value!r:.60}")


def _str_or_none(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if value is None:
        return None
    if not isinstance(value, str):
        # PRAW objects: Subreddit.name is the lazy t5_ id, so prefer display_name
        value = getattr(value, "display_name", None) or getattr(value, "name", None) or value
    text = str(value)
    return text or None


def _preview_url(data: Mapping[str, Any]) -> str | None:
    preview = data.get("preview")
    if preview is None:  # most posts: skip raising and catching a KeyError
        return None
    try:
        url = preview["images"][0]["source"]["url"]
    except (KeyError, IndexError, TypeError):
        return None
    return html.unescape(url) if isinstance(url, str) and url else None


def _gallery_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    # malformed gallery data means no gallery images, not an unusable post
    metadata = data.get("media_metadata")
    if not metadata or not isinstance(metadata, Mapping):  # every URL comes from media_metadata
        return ()
    gallery = data.get("gallery_data")
    items = gallery.get("items") if isinstance(gallery, Mapping) else None
    if not isinstance(items, list) or not items:
        items = [{"media_id": k} for k in metadata]
    urls = []
    for item in items:
        entry = metadata.get(item.get("media_id")) if isinstance(item, Mapping) else None
        source = entry.get("s") if isinstance(entry, Mapping) else None
        url = source.get("u") if isinstance(source, Mapping) else None
        if isinstance(url, str) and url:
            urls.append(html.unescape(url))
    return tuple(urls)


@dataclass(frozen=True)
class PostRecord:
    id: str  # base36, without the t3_ prefix
    subreddit: str
    title: str
    author: str | None  # None when "[deleted]"
    author_fullname: str | None  # t2_...
    created_utc: int
    url: str | None
    domain: str | None
    permalink: str | None
    is_self: bool
    over_18: bool
    is_gallery: bool
    post_hint: str | None
    preview_url: str | None
    gallery_urls: tuple[str, ...]
    flair_text: str | None
    subreddit_subscribers: int | None
    selftext_len: int
    score: int
    num_comments: int
    upvote_ratio: float | None
    removed: bool
    observed_at: int | None  # when this state was seen; None = unknown (archives)
    source: str  # "reddit" | "archive"

    @property
    def fullname(self) -> str:
        return f"t3_{self.id}"

    @classmethod
    def from_reddit_json(cls, data: Mapping[str, Any], observed_at: int | None, source: str) -> PostRecord:
        """Parse a t3 `data` dict (API, PRAW `vars(submission)`, or archive line).

        Convertible values of the wrong type (numeric strings, numbers as titles, "true")
        are converted; a record without a usable id, created_utc or subreddit, or with a
        field that cannot be converted, raises InvalidRecord (a ValueError) naming the field.
        """
        if not isinstance(data, Mapping):
            raise InvalidRecord("not_a_post", f"post data is a {type(data).__name__}, not a mapping")
        get = data.get
        raw_id = get("id") or str(get("name") or "").removeprefix("t3_")
        post_id = (raw_id if type(raw_id) is str else str(raw_id or "")).removeprefix("t3_").strip()
        if not post_id:
            raise InvalidRecord("missing_id", "post has neither id nor name")
        if not POST_ID.fullmatch(post_id):
            raise InvalidRecord("bad_id", f"post id {post_id!r:.40} is not a base36 Reddit id")
        created_utc = _int_field(data, "created_utc", post_id, None, CREATED_RANGE)
        if created_utc is None:
            raise InvalidRecord("missing_created_utc", f"post {post_id} has no created_utc")
        subreddit = _str_or_none(get("subreddit"))
        if not subreddit:
            raise InvalidRecord("missing_subreddit", f"post {post_id} has no subreddit")
        author = _str_or_none(get("author"))
        if author in DELETED_MARKERS:
            author = None
        title = _str_or_none(get("title")) or ""
        selftext = get("selftext")
        # A deleted account leaves its posts up under "[deleted]", but the user chose to leave:
        # live, we purge them like deleted posts (issue 3). An archive line only shows the
        # account's state at dump time, so there the post is kept, with no author.
        removed = bool(
            get("removed_by_category")
            or title in DELETED_MARKERS
            or selftext in DELETED_MARKERS
            or (author is None and source == "reddit")
        )
        selftext_len = _int_field(data, "selftext_len", post_id, None, INT32)
        if selftext_len is None:
            selftext_len = len(selftext) if isinstance(selftext, str) else 0
        if observed_at is not None and not INT64[0] <= observed_at <= INT64[1]:
            raise InvalidRecord("out_of_range", f"post {post_id}: observed at {observed_at!r:.40}, outside BIGINT")
        record = object.__new__(cls)
        # The frozen dataclass __init__ sets each of the 24 fields through object.__setattr__:
        # ~5 us of a ~12 us parse on archive backfills. Equality, hash and repr are unchanged
        # (they read the fields); tests/sources/test_records.py compares with __init__.
        record.__dict__.update(
            id=post_id,
            subreddit=subreddit,
            title=title,
            author=author,
            author_fullname=_str_or_none(get("author_fullname")),
            created_utc=created_utc,
            url=_str_or_none(get("url")),
            domain=_str_or_none(get("domain")),
            permalink=_str_or_none(get("permalink")),
            is_self=_bool_field(data, "is_self", post_id),
            over_18=_bool_field(data, "over_18", post_id),
            is_gallery=_bool_field(data, "is_gallery", post_id),
            post_hint=_str_or_none(get("post_hint")),
            preview_url=_preview_url(data),
            gallery_urls=_gallery_urls(data),
            flair_text=_str_or_none(get("link_flair_text")),
            subreddit_subscribers=_int_field(data, "subreddit_subscribers", post_id, None, INT64),
            selftext_len=selftext_len,
            score=_int_field(data, "score", post_id, 0, INT32),
            num_comments=_int_field(data, "num_comments", post_id, 0, INT32),
            upvote_ratio=_optional_float(get("upvote_ratio"), "upvote_ratio", post_id),
            removed=removed,
            observed_at=observed_at,
            source=source,
        )
        stored = record.__dict__
        for name in TEXT_FIELDS:
            text = stored[name]
            if text is not None and "\x00" in text:
                raise InvalidRecord("nul_in_text", f"post {post_id}: {name} holds a NUL character")
        if any("\x00" in url for url in stored["gallery_urls"]):
            raise InvalidRecord("nul_in_text", f"post {post_id}: gallery_urls holds a NUL character")
        return record


@dataclass(frozen=True)
class AuthorRecord:
    name: str
    fullname: str | None
    created_utc: int | None
    link_karma: int | None
    comment_karma: int | None
    observed_at: int
