"""Records every source yields, so ingestion does not care where a post came from."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DELETED_MARKERS = {"[removed]", "[deleted]"}


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        # PRAW objects: Subreddit.name is the lazy t5_ id, so prefer display_name
        value = getattr(value, "display_name", None) or getattr(value, "name", None) or value
    text = str(value)
    return text or None


def _preview_url(data: Mapping[str, Any]) -> str | None:
    try:
        url = data["preview"]["images"][0]["source"]["url"]
    except (KeyError, IndexError, TypeError):
        return None
    return html.unescape(url) if url else None


def _gallery_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    metadata = data.get("media_metadata") or {}
    items = ((data.get("gallery_data") or {}).get("items")) or [
        {"media_id": k} for k in metadata
    ]
    urls = []
    for item in items:
        source = (metadata.get(item.get("media_id")) or {}).get("s") or {}
        if source.get("u"):
            urls.append(html.unescape(source["u"]))
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
    def from_reddit_json(
        cls, data: Mapping[str, Any], observed_at: int | None, source: str
    ) -> "PostRecord":
        """Parse a t3 `data` dict (API, PRAW `vars(submission)`, or archive line)."""
        post_id = str(data.get("id") or "").removeprefix("t3_")
        if not post_id:
            name = str(data.get("name") or "")
            post_id = name.removeprefix("t3_")
        if not post_id:
            raise ValueError("post has neither id nor name")
        if data.get("created_utc") is None:
            raise ValueError(f"post {post_id} has no created_utc")
        author = _str_or_none(data.get("author"))
        if author in DELETED_MARKERS:
            author = None
        title = str(data.get("title") or "")
        selftext = data.get("selftext")
        removed = bool(
            data.get("removed_by_category")
            or title in DELETED_MARKERS
            or selftext in DELETED_MARKERS
            or (author is None and source == "reddit")
        )
        selftext_len = data.get("selftext_len")
        if selftext_len is None:
            selftext_len = len(selftext) if isinstance(selftext, str) else 0
        ratio = data.get("upvote_ratio")
        subscribers = data.get("subreddit_subscribers")
        return cls(
            id=post_id,
            subreddit=_str_or_none(data.get("subreddit")) or "",
            title=title,
            author=author,
            author_fullname=_str_or_none(data.get("author_fullname")),
            created_utc=int(float(data["created_utc"])),
            url=_str_or_none(data.get("url")),
            domain=_str_or_none(data.get("domain")),
            permalink=_str_or_none(data.get("permalink")),
            is_self=bool(data.get("is_self")),
            over_18=bool(data.get("over_18")),
            is_gallery=bool(data.get("is_gallery")),
            post_hint=_str_or_none(data.get("post_hint")),
            preview_url=_preview_url(data),
            gallery_urls=_gallery_urls(data),
            flair_text=_str_or_none(data.get("link_flair_text")),
            subreddit_subscribers=int(subscribers) if subscribers is not None else None,
            selftext_len=int(selftext_len or 0),
            score=int(data.get("score") or 0),
            num_comments=int(data.get("num_comments") or 0),
            upvote_ratio=float(ratio) if ratio is not None else None,
            removed=removed,
            observed_at=observed_at,
            source=source,
        )


@dataclass(frozen=True)
class AuthorRecord:
    name: str
    fullname: str | None
    created_utc: int | None
    link_karma: int | None
    comment_karma: int | None
    observed_at: int
