"""Where every post of a day went: ingested -> kept or dropped by rule -> image status -> label status.

Computed from the counts the stages record (smpp.tasks). Each level splits one parent count into
parts; whatever the parts do not explain is reported as `unaccounted` (0 on a consistent run), and
a count an older run did not record is None ("not recorded"), never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smpp.warehouse.labels import LABEL_STATUS_MEANING, TRAINABLE_STATUSES

NOT_RECORDED = "not recorded"
# why a fetch failed, where the status name alone misleads
FETCH_STATUS_NOTES = {
    "unresolvable": "the image host's name did not resolve (DNS lookup failed, e.g. no network): the post had a URL",
    "offline": "images.offline: only the allowed hosts may be contacted, this one was not",
}
NO_IMAGE_URL_NOTE = "no image the models could use (a self/text post or a link that is not an image): nothing to fetch"
LABEL_PART_NAMES = {
    "ok": "labelled ok",
    "archive": "labelled from the archive",
    "late": "labelled late",
    "not_matured": "not yet matured",
    "missing": "missing",
}


@dataclass(frozen=True)
class Part:
    name: str
    count: int | None  # None: the run did not record it
    note: str = ""


@dataclass(frozen=True)
class Level:
    """One parent count split into parts that should sum to it."""

    title: str
    parent_name: str
    parent: int | None
    parts: list[Part] = field(default_factory=list)
    note: str = ""

    @property
    def explained(self) -> int | None:
        counts = [p.count for p in self.parts]
        return sum(counts) if counts and all(isinstance(c, int) for c in counts) else None  # type: ignore[misc]

    @property
    def unaccounted(self) -> int | None:
        """Parent minus its parts (negative: parts counted twice); None when a count is not recorded."""
        explained = self.explained
        return None if self.parent is None or explained is None else self.parent - explained


def _count(stages: dict[str, dict], stage: str, *keys: str) -> int | None:
    node: Any = stages.get(stage)
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, int) and not isinstance(node, bool) else None


def filter_level(stages: dict[str, dict]) -> Level:
    """The day's ingested posts: kept by filter_posts, or dropped by the first rule they failed."""
    parent = _count(stages, "scrape_posts", "posts_in_day")
    note = ""
    if parent is None:
        parent = _count(stages, "filter_posts", "input")
        note = "scrape_posts recorded no posts_in_day: the filter's input is the parent" if parent is not None else ""
    record = stages.get("filter_posts")
    if not isinstance(record, dict):
        return Level("Filter", "posts ingested", parent, [Part("kept or dropped", None)], "filter_posts did not run")
    drops = sorted((k.removeprefix("dropped_"), v) for k, v in record.items() if k.startswith("dropped_"))
    parts = [Part("kept", _count(stages, "filter_posts", "kept"))]
    parts += [Part(f"dropped: {rule}", v if isinstance(v, int) else None) for rule, v in drops]
    return Level("Filter", "posts ingested", parent, parts, note)


def _fetch_parts_of_older_run(stages: dict[str, dict]) -> tuple[list[Part], str]:
    """Per-post image statuses from a run recorded before fetch_images counted posts (per image only)."""
    extra = _count(stages, "fetch_images", "extra_gallery_images") or 0
    failures = (stages.get("fetch_images") or {}).get("failures")
    if extra or not isinstance(failures, dict):
        why = "gallery items are counted with the posts' images" if extra else "no failure counts"
        return [Part("image status per post", None)], f"per-post image statuses not recorded ({why})"
    parts = [Part("image fetched ok", _count(stages, "fetch_images", "ok"))]
    parts += [
        Part(f"image failed: {status}", n if isinstance(n, int) else None, FETCH_STATUS_NOTES.get(status, ""))
        for status, n in sorted(failures.items())
    ]
    return parts, "from per-image counts (this run fetched one image per post)"


def image_level(stages: dict[str, dict]) -> Level:
    """The kept posts by the status of the image the models use."""
    parent = _count(stages, "filter_posts", "kept")
    if "fetch_images" not in stages:
        return Level("Images", "posts kept", parent, [Part("image status", None)], "fetch_images did not run")
    posts = (stages.get("fetch_images") or {}).get("posts")
    note = ""
    if isinstance(posts, dict) and isinstance(posts.get("status"), dict):
        statuses = posts["status"]
        parts = [Part("image fetched ok", statuses.get("ok", 0) if isinstance(statuses.get("ok", 0), int) else None)]
        parts += [
            Part(f"image failed: {status}", n if isinstance(n, int) else None, FETCH_STATUS_NOTES.get(status, ""))
            for status, n in sorted(statuses.items())
            if status != "ok"
        ]
        without_url = _count(stages, "fetch_images", "posts", "without_image_url")
    else:
        parts, note = _fetch_parts_of_older_run(stages)
        with_url = _count(stages, "filter_posts", "with_image_url")
        without_url = None if parent is None or with_url is None else parent - with_url
    parts.append(Part("no image URL", without_url, NO_IMAGE_URL_NOTE))
    return Level("Images", "posts kept", parent, parts, note)


def label_level(stages: dict[str, dict]) -> Level:
    """The kept posts (the day's feature rows) by label status when build_features ran."""
    parent = _count(stages, "filter_posts", "kept")
    if "build_features" not in stages:
        return Level("Labels", "posts kept", parent, [Part("label status", None)], "build_features did not run")
    labels = (stages.get("build_features") or {}).get("labels")
    if not isinstance(labels, dict):
        note = "label status per post not recorded (a run from before build_features counted it)"
        return Level("Labels", "posts kept", parent, [Part("label status", None)], note)
    # known statuses in their order, then any the code added later (shown, never folded in)
    order = [s for s in LABEL_STATUS_MEANING if s in labels] + [s for s in labels if s not in LABEL_STATUS_MEANING]
    parts = [
        Part(
            LABEL_PART_NAMES.get(status, f"label status {status}"),
            labels[status] if isinstance(labels[status], int) else None,
            LABEL_STATUS_MEANING.get(status, ""),
        )
        for status in order
    ]
    when = (stages.get("build_features") or {}).get("labels_counted_at")
    rows = _count(stages, "build_features", "rows")
    note = f"as of {when}" if when else ""
    if rows is not None and rows != parent:
        note += f"{'; ' if note else ''}build_features wrote {rows} rows for {parent} kept posts"
    return Level("Labels", "posts kept", parent, parts, note)


def post_accounting(stages: dict[str, dict]) -> list[Level]:
    """Every level of the day's post accounting; [] for a day with no ingestion or filter record."""
    if "scrape_posts" not in stages and "filter_posts" not in stages:
        return []
    return [filter_level(stages), image_level(stages), label_level(stages)]


def trainable_of_day(stages: dict[str, dict]) -> tuple[int, int] | None:
    """(feature rows with a trainable label, feature rows) of the day; None when not recorded."""
    labels = (stages.get("build_features") or {}).get("labels")
    rows = _count(stages, "build_features", "rows")
    if not isinstance(labels, dict) or rows is None:
        return None
    trainable = sum(n for status, n in labels.items() if status in TRAINABLE_STATUSES and isinstance(n, int))
    return trainable, rows
