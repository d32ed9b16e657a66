"""A synthetic all-of-Reddit monthly submissions dump with real-size lines (Arctic Shift shape).

    .venv/bin/python benchmarks/synthetic_dump.py OUT.zst [--posts 1000000] [--days 2] [--window-log 31]

Lines are real-shaped t3 objects of 2-4 KB (sorted keys, `_meta` with retrieved_2nd_on, awards,
preview resolutions, media metadata, flair richtext, as the API returns them), sorted by created_utc,
spread over ~20k subreddits with Zipf sizes. The targets (pics, aww, EarthPorn) hold ~0.3 % of the
posts, as three mid-sized subreddits do in a real month; decoys contain their names (pics2,
EarthPornAlt, picsofdogs, awwducational) and some titles mention them ("pics", "my pics of r/pics").
Written with python zstandard: level 3, content size in the header, window_log 31 and long-distance
matching (what `zstd --long=31` writes; readers need a 2 GiB window).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

TARGETS = ("pics", "aww", "EarthPorn")
DECOYS = ("pics2", "EarthPornAlt", "picsofdogs", "awwducational", "Pics_and_more")
WORDS = (
    "the my a of in on for with this that cat dog sunset mountain photo first time finally today "
    "look made found after years old new best friend picture view lake city night morning"
).split()
START_UTC = 1709251200  # 2024-03-01 00:00 UTC: RS_2024-03
FIELDS = (
    "author",
    "author_fullname",
    "created_utc",
    "id",
    "name",
    "num_comments",
    "permalink",
    "retrieved_on",
    "retrieved_2nd_on",
    "score",
    "subreddit",
    "subreddit_id",
    "subreddit_name_prefixed",
    "title",
    "url",
    "upvote_ratio",
    "subreddit_subscribers",
)


def subreddit_names(count: int) -> list[str]:
    """`count` names by Zipf rank: the targets at mid ranks, the decoys around them."""
    names = [f"sub{n:05d}_{random.Random(n).choice(WORDS)}" for n in range(count)]
    for rank, name in zip((40, 90, 150), TARGETS):
        names[rank] = name
    for rank, name in zip((41, 300, 600, 91, 1000), DECOYS):
        names[rank] = name
    return names


def template(rng: random.Random, size_class: int) -> list[str]:
    """A real-shaped t3 object rendered with sorted keys, split around its per-post fields."""
    # URLs carry per-post hashes (filled in per line), as real ones do: the entropy of a real line
    resolutions = [
        {"height": 108 * (i + 1), "url": f"@res{i}", "width": 108 * (i + 1)} for i in range(1 + size_class % 4)
    ]
    awards = [
        {
            "award_sub_type": "GLOBAL",
            "coin_price": 100 * i,
            "description": "Shows the Silver Award... and that's it.",
            "icon_url": f"https://www.redditstatic.com/gold/awards/icon/silver_{i}.png",
            "id": f"award_{'f' * 30}{i}",
            "name": "Silver",
            "resized_icons": [
                {"height": 16 * j, "url": f"https://www.redditstatic.com/{j}.png", "width": 16 * j} for j in range(1, 4)
            ],
        }
        for i in range(size_class // 4)
    ]
    obj = {
        "_meta": {
            "is_edited": False,
            "removal_type": None,
            "retrieved_2nd_on": "@retrieved_2nd_on",
            "was_deleted_later": False,
        },
        "all_awardings": awards,
        "allow_live_comments": False,
        "approved_at_utc": None,
        "approved_by": None,
        "archived": False,
        "author": "@author",
        "author_flair_background_color": None,
        "author_flair_css_class": None,
        "author_flair_richtext": [{"e": "text", "t": "Flair text"}] * (size_class % 3),
        "author_flair_template_id": None,
        "author_flair_text": None,
        "author_flair_text_color": None,
        "author_flair_type": "text",
        "author_fullname": "@author_fullname",
        "author_is_blocked": False,
        "author_patreon_flair": False,
        "author_premium": False,
        "awarders": [],
        "banned_at_utc": None,
        "banned_by": None,
        "can_gild": False,
        "can_mod_post": False,
        "category": None,
        "clicked": False,
        "content_categories": None,
        "contest_mode": False,
        "created": "@created_utc",
        "created_utc": "@created_utc",
        "discussion_type": None,
        "distinguished": None,
        "domain": "i.redd.it",
        "downs": 0,
        "edited": False,
        "gilded": 0,
        "gildings": {},
        "hidden": False,
        "hide_score": False,
        "id": "@id",
        "is_created_from_ads_ui": False,
        "is_crosspostable": True,
        "is_meta": False,
        "is_original_content": False,
        "is_reddit_media_domain": True,
        "is_robot_indexable": True,
        "is_self": False,
        "is_video": False,
        "likes": None,
        "link_flair_background_color": "",
        "link_flair_css_class": None,
        "link_flair_richtext": [],
        "link_flair_text": None,
        "link_flair_text_color": "dark",
        "link_flair_type": "text",
        "locked": False,
        "media": None,
        "media_embed": {},
        "media_only": False,
        "mod_note": None,
        "mod_reason_by": None,
        "mod_reason_title": None,
        "mod_reports": [],
        "name": "@name",
        "no_follow": True,
        "num_comments": "@num_comments",
        "num_crossposts": 0,
        "num_reports": None,
        "over_18": False,
        "parent_whitelist_status": "all_ads",
        "permalink": "@permalink",
        "pinned": False,
        "post_hint": "image",
        "preview": {
            "enabled": True,
            "images": [
                {
                    "id": "@preview_id",
                    "resolutions": resolutions,
                    "source": {"height": 3024, "url": "@source", "width": 4032},
                    "variants": {},
                }
            ],
        },
        "pwls": 6,
        "quarantine": False,
        "removal_reason": None,
        "removed_by": None,
        "removed_by_category": None,
        "report_reasons": None,
        "retrieved_on": "@retrieved_on",
        "saved": False,
        "score": "@score",
        "secure_media": None,
        "secure_media_embed": {},
        "selftext": "",
        "send_replies": True,
        "spoiler": False,
        "stickied": False,
        "subreddit": "@subreddit",
        "subreddit_id": "@subreddit_id",
        "subreddit_name_prefixed": "@subreddit_name_prefixed",
        "subreddit_subscribers": "@subreddit_subscribers",
        "subreddit_type": "public",
        "suggested_sort": None,
        "thumbnail": "@thumbnail",
        "thumbnail_height": 140,
        "thumbnail_width": 140,
        "title": "@title",
        "top_awarded_type": None,
        "total_awards_received": size_class,
        "treatment_tags": [],
        "ups": "@score",
        "upvote_ratio": "@upvote_ratio",
        "url": "@url",
        "url_overridden_by_dest": "@url",
        "user_reports": [],
        "view_count": None,
        "visited": False,
        "whitelist_status": "all_ads",
        "wls": 6,
    }
    for key in (
        "mod_note",
        "mod_reason_by",
        "mod_reason_title",
        "num_reports",
        "report_reasons",
        "removal_reason",
        "removed_by",
        "banned_at_utc",
        "banned_by",
        "approved_at_utc",
        "approved_by",
        "author_flair_css_class",
        "author_flair_template_id",
        "author_flair_text_color",
        "treatment_tags",
        "awarders",
        "likes",
        "clicked",
        "saved",
        "hidden",
        "view_count",
        "visited",
        "secure_media_embed",
        "mod_reports",
    ):
        del obj[key]  # keeps lines at 2-4 KB (real t3 objects average ~2.8 KB)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    # split around each placeholder (quoted): parts[0], field, parts[1], field, ...
    parts: list[str] = []
    rest = text
    while True:
        at = rest.find('"@')
        if at < 0:
            parts.append(rest)
            return parts
        end = rest.index('"', at + 1)
        parts.append(rest[:at])
        parts.append("@" + rest[at + 2 : end])
        rest = rest[end + 1 :]


def generate(out: Path, posts: int, days: int, seed: int = 0, window_log: int = 31, subreddits: int = 20_000) -> dict:
    import numpy as np
    import zstandard

    started = time.monotonic()
    rng = random.Random(seed)
    names = subreddit_names(subreddits)
    weights = 1.0 / np.arange(1, subreddits + 1) ** 1.07
    picks = np.random.default_rng(seed).choice(subreddits, size=posts, p=weights / weights.sum())
    times = np.sort(np.random.default_rng(seed + 1).integers(START_UTC, START_UTC + days * 86_400, size=posts))
    templates = [template(rng, k) for k in range(1, 9)]
    params = zstandard.ZstdCompressionParameters.from_level(
        3, window_log=window_log, enable_ldm=True, threads=-1, write_content_size=True
    )
    counts: dict[str, int] = {}
    raw_bytes = 0
    with out.open("wb") as fh, zstandard.ZstdCompressor(compression_params=params).stream_writer(fh) as writer:
        batch: list[str] = []
        for n in range(posts):
            sub = names[picks[n]]
            counts[sub] = counts.get(sub, 0) + 1
            created = int(times[n])
            pid = f"{n + 36**5:x}"
            title_words = rng.sample(WORDS, rng.randint(3, 9))
            roll = rng.random()
            if roll < 0.002:
                title = "pics"  # a title that is exactly a target name
            elif roll < 0.01:
                title = " ".join(title_words) + " my pics of r/pics and EarthPorn"
            else:
                title = " ".join(title_words).capitalize()
            values = {
                "author": f"user_{rng.randrange(3_000_000)}",
                "author_fullname": f"t2_{rng.randrange(36**6):x}",
                "created_utc": created,
                "id": pid,
                "name": f"t3_{pid}",
                "num_comments": rng.randrange(200),
                "permalink": f"/r/{sub}/comments/{pid}/{'_'.join(title_words[:4])}/",
                "retrieved_on": created + 60,
                "retrieved_2nd_on": created + 36 * 3600,
                "score": int(rng.paretovariate(1.2)),
                "subreddit": sub,
                "subreddit_id": f"t5_{picks[n]:x}",
                "subreddit_name_prefixed": f"r/{sub}",
                "subreddit_subscribers": 10_000_000 // (1 + int(picks[n])),
                "title": title,
                "url": f"https://i.redd.it/{pid}{'k' * 12}.jpg",
                "upvote_ratio": round(rng.uniform(0.5, 1.0), 2),
            }
            preview = f"{rng.getrandbits(172):043x}"
            values["preview_id"] = preview
            values["source"] = f"https://preview.redd.it/{preview}.jpg?auto=webp&amp;s={rng.getrandbits(160):040x}"
            values["thumbnail"] = f"https://b.thumbs.redditmedia.com/{rng.getrandbits(172):043x}.jpg"
            for i in range(6):
                values[f"res{i}"] = (
                    f"https://preview.redd.it/{preview}.jpg?width={108 * (i + 1)}&amp;crop=smart"
                    f"&amp;auto=webp&amp;s={rng.getrandbits(160):040x}"
                )
            parts = templates[(n * 7 + created) % len(templates)]
            line = [parts[0]]
            for i in range(1, len(parts), 2):
                line.append(json.dumps(values[parts[i][1:]]))
                line.append(parts[i + 1])
            batch.append("".join(line))
            if len(batch) >= 2000:
                data = ("\n".join(batch) + "\n").encode()
                raw_bytes += len(data)
                writer.write(data)
                batch = []
        if batch:
            data = ("\n".join(batch) + "\n").encode()
            raw_bytes += len(data)
            writer.write(data)
    return {
        "file": str(out),
        "posts": posts,
        "days": days,
        "decompressed_bytes": raw_bytes,
        "compressed_bytes": out.stat().st_size,
        "subreddits": len(counts),
        "targets": {t: counts.get(t, 0) for t in TARGETS},
        "decoys": {d: counts.get(d, 0) for d in DECOYS},
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window-log", type=int, default=31)
    args = parser.parse_args()
    print(json.dumps(generate(args.out, args.posts, args.days, args.seed, args.window_log), indent=1))


if __name__ == "__main__":
    main()
