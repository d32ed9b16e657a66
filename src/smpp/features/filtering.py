"""Filter rules: which posts of a day go on to enrichment. Every drop is counted by rule."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from smpp.settings import FilterSettings

IMAGE_HINTS = {"image"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")
IMAGE_DOMAINS = {"i.redd.it", "i.imgur.com", "imgur.com"}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""  # None/NaN (missing) -> ""


def looks_like_image_post(row: pd.Series) -> bool:
    url = _text(row.get("url")).lower().split("?")[0]
    return bool(
        row.get("post_hint") in IMAGE_HINTS
        or row.get("is_gallery")
        or row.get("domain") in IMAGE_DOMAINS
        or url.endswith(IMAGE_EXTENSIONS)
    )


def normalised_url(url: str | None) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    return url.lower().split("?")[0].split("#")[0].rstrip("/").replace("http://", "https://")


def apply_filters(posts: pd.DataFrame, rules: FilterSettings) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return `posts` with `keep` and `drop_reason` columns (first failing rule) and counts."""
    posts = posts.sort_values(["created_utc", "id"]).reset_index(drop=True).copy()
    reasons: list[str | None] = []
    seen_urls: set[str] = set()
    for _, row in posts.iterrows():
        reason = None
        title = _text(row.get("title"))
        if rules.drop_removed and (row.get("removed") or not title):
            reason = "removed"
        elif rules.drop_nsfw and row.get("over_18"):
            reason = "nsfw"
        elif len(title.strip()) < rules.min_title_chars:
            reason = "short_title"
        elif rules.image_posts_only and not looks_like_image_post(row):
            reason = "not_image"
        else:
            url = None if row.get("is_self") else normalised_url(row.get("url"))
            if url and url in seen_urls:
                reason = "duplicate_url"  # the same link posted twice: keep the earliest
            elif url:
                seen_urls.add(url)
        reasons.append(reason)
    posts["drop_reason"] = pd.Series(reasons, index=posts.index, dtype=object)
    posts["keep"] = posts["drop_reason"].isna()
    counts = Counter(r for r in reasons if r)
    return posts, {
        "input": len(posts),
        "kept": int(posts["keep"].sum()),
        **{f"dropped_{k}": v for k, v in counts.items()},
    }
