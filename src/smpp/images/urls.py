"""Which image URL(s) to fetch for a Reddit post.

Candidates come in priority order: the direct link itself (i.redd.it, i.imgur.com or an
image extension), an imgur page rewritten to its direct image, Reddit's preview image, then
gallery items. The caller fetches the first and may fall back to the rest.
post_image_urls gives the distinct images of a post instead: the first candidate (the image the
models use), then, when asked, the other items of a gallery.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")
DIRECT_IMAGE_HOSTS = frozenset({"i.redd.it", "i.imgur.com"})
IMGUR_PAGE_HOSTS = frozenset({"imgur.com", "www.imgur.com", "m.imgur.com"})
# imgur serves a still image for its video pages at the same id with .jpg.
IMGUR_VIDEO_EXTENSIONS = (".gifv", ".mp4", ".webm")
_IMGUR_ID = re.compile(r"^[A-Za-z0-9]{5,10}$")


def _clean(url: str | None) -> str | None:
    """HTML-unescape (Reddit JSON escapes & as &amp;), strip, and give //host links a scheme."""
    if url is None:
        return None
    text = html.unescape(str(url)).strip()
    if not text:
        return None
    if text.startswith("//"):
        text = "https:" + text
    return text


def _parts(url: str) -> tuple[str, str, str]:
    """(lower-case host, path, lower-case scheme); empty strings for what cannot be parsed."""
    try:
        split = urlsplit(url)
        host = (split.hostname or "").lower().rstrip(".")
    except ValueError:
        return "", "", ""
    return host, split.path, split.scheme.lower()


def _direct_image(url: str) -> str | None:
    host, path, scheme = _parts(url)
    if scheme not in ("http", "https") or not host:
        return None
    lower_path = path.lower()
    if host == "i.imgur.com":
        stem, dot, ext = path.rpartition(".")
        if not dot:  # i.imgur.com/abc without an extension
            return _imgur_direct(path.strip("/"))
        if "." + ext.lower() in IMGUR_VIDEO_EXTENSIONS:
            return _imgur_direct(stem.strip("/"))
        return url
    if host in DIRECT_IMAGE_HOSTS or lower_path.endswith(IMAGE_EXTENSIONS):
        return url
    return None


def _imgur_direct(image_id: str) -> str | None:
    return f"https://i.imgur.com/{image_id}.jpg" if _IMGUR_ID.match(image_id) else None


def _imgur_page(url: str) -> str | None:
    """imgur.com/abc (a single-image page) -> i.imgur.com/abc.jpg; albums and galleries -> None."""
    host, path, scheme = _parts(url)
    if scheme not in ("http", "https") or host not in IMGUR_PAGE_HOSTS:
        return None
    segment = path.strip("/")
    if "/" in segment:  # /a/<album>, /gallery/<id>, /r/<sub>/<id>: no single direct image
        return None
    stem, dot, ext = segment.rpartition(".")
    if dot and "." + ext.lower() in IMAGE_EXTENSIONS + IMGUR_VIDEO_EXTENSIONS:
        segment = stem
    return _imgur_direct(segment)


def _is_self_domain(domain: str | None) -> bool:
    return bool(domain) and str(domain).lower().startswith("self.")


def _dedupe(urls: list[str | None]) -> list[str]:
    seen: set[str] = set()
    ordered = []
    for url in urls:
        if url and url not in seen:
            seen.add(url)
            ordered.append(url)
    return ordered


def resolve_image_url(
    url: str | None,
    domain: str | None,
    post_hint: str | None,
    preview_url: str | None,
    gallery_urls: Sequence[str],
    is_self: bool,
    all_gallery_items: bool = False,
) -> list[str]:
    """Candidate image URLs for one post, best first; [] for self/text posts.

    `preview_url` is used whenever present: for post_hint == "image" it is the image itself,
    for links and videos it is the thumbnail Reddit rendered for them.
    """
    if is_self or post_hint == "self" or _is_self_domain(domain):
        return []
    candidates: list[str | None] = []
    link = _clean(url)
    if link:
        candidates.append(_direct_image(link) or _imgur_page(link))
    preview = _clean(preview_url)
    if preview and _parts(preview)[2] in ("http", "https"):
        candidates.append(preview)
    gallery = _gallery_items(gallery_urls)
    candidates.extend(gallery if all_gallery_items else gallery[:1])
    return _dedupe(candidates)


def _gallery_items(gallery_urls: Sequence[str] | None) -> list[str]:
    cleaned = [_clean(item) for item in (gallery_urls or [])]
    return [item for item in cleaned if item and _parts(item)[2] in ("http", "https")]


def post_image_urls(
    url: str | None,
    domain: str | None,
    post_hint: str | None,
    preview_url: str | None,
    gallery_urls: Sequence[str],
    is_self: bool,
    all_gallery_items: bool = False,
) -> list[str]:
    """The distinct images of one post: [the one the models use, then the other gallery items].

    Without `all_gallery_items` (or for a post with no gallery) at most one URL. A direct link and
    its preview are two renderings of one image, so only the first of them is ever listed.
    """
    candidates = resolve_image_url(url, domain, post_hint, preview_url, gallery_urls, is_self)
    if not candidates:
        return []
    if not all_gallery_items:
        return candidates[:1]
    return _dedupe([candidates[0], *_gallery_items(gallery_urls)])
