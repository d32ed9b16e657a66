import pandas as pd

from smpp.features.filtering import apply_filters
from smpp.settings import FilterSettings


def frame(rows):
    base = {
        "title": "a good title",
        "removed": False,
        "over_18": False,
        "is_self": False,
        "url": None,
        "domain": None,
        "post_hint": None,
        "is_gallery": False,
    }
    return pd.DataFrame([{**base, "id": str(i), "created_utc": i, **r} for i, r in enumerate(rows)])


def test_each_rule_counted():
    posts = frame(
        [
            {"url": "https://i.imgur.com/x.jpg"},
            {"removed": True},
            {"over_18": True},
            {"title": "ab"},
            {"url": "http://i.imgur.com/x.jpg?s=1"},  # same link again, later
            {"is_self": True},
        ]
    )
    out, counts = apply_filters(posts, FilterSettings())
    assert out["drop_reason"].tolist() == [None, "removed", "nsfw", "short_title", "duplicate_url", None]
    assert counts == {
        "input": 6,
        "kept": 2,
        "dropped_removed": 1,
        "dropped_nsfw": 1,
        "dropped_short_title": 1,
        "dropped_duplicate_url": 1,
    }


def test_image_only_and_nsfw_kept_when_configured():
    posts = frame([{"url": "https://i.redd.it/a.png"}, {"is_self": True}, {"over_18": True, "post_hint": "image"}])
    out, counts = apply_filters(posts, FilterSettings(image_posts_only=True, drop_nsfw=False))
    assert out["keep"].tolist() == [True, False, True] and counts["dropped_not_image"] == 1
