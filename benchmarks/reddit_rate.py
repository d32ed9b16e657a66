"""How close the Reddit source runs to the API's request budget, and whether it ever draws a 429.

Starts the fake Reddit API with a scaled rate-limit window (default 100 requests per 10 s
instead of Reddit's ~1000 per 600 s) and drives the production code path (make_reddit,
scrape_new, refresh_posts, fetch_authors through PRAW) with more work than the budget
allows, for a bounded time. Prints the sustained request rate as a fraction of the allowed
rate and the number of 429s.

    PYTHONPATH=src .venv/bin/python benchmarks/reddit_rate.py [--window-s 10 --budget 100 --duration-s 50]
"""

from __future__ import annotations

import argparse
import logging
import time

from smpp.devtools.fake_reddit import FakeRedditServer
from smpp.settings import Settings
from smpp.sources.reddit import BatchReport, fetch_authors, make_reddit, rate_budget, refresh_posts, scrape_new

DAY_END = 1_375_228_800
SUBREDDITS = ("pics", "aww", "funny", "science")


def archive_posts(subreddit: str, count: int) -> list[dict]:
    """`count` posts, one every 5 minutes back from DAY_END, 60 distinct authors."""
    return [
        {
            "id": f"{subreddit[:3]}{n:05d}",
            "title": f"post {n}",
            "author": f"user_{subreddit}_{n % 60}",
            "subreddit": subreddit,
            "created_utc": DAY_END - 60 - n * 300,
            "score": n,
            "num_comments": n % 50,
            "url": f"https://example.com/{n}",
            "domain": "example.com",
            "is_self": False,
            "over_18": False,
        }
        for n in range(count)
    ]


def run(window_s: int, budget: int, duration_s: float) -> dict[str, float]:
    posts = [p for s in SUBREDDITS for p in archive_posts(s, 600)]
    ids = {s: [p["id"] for p in posts if p["subreddit"] == s] for s in SUBREDDITS}
    with FakeRedditServer(posts, rate_limit_per_window=budget, window_s=window_s) as server:
        settings = Settings().with_overrides(
            reddit={
                "client_id": server.client_id,
                "client_secret": server.client_secret,
                "oauth_url": server.base_url,
                "reddit_url": server.base_url,
                "short_url": server.base_url,
            }
        )
        reddit = make_reddit(settings, rate_window_s=window_s)
        refresh_posts(reddit, [ids["pics"][0]])  # token and a first window before the clock starts
        first_counted = sum(server.statuses.values())
        started = time.monotonic()
        deadline = started + duration_s
        rounds = 0
        while time.monotonic() < deadline:
            # a day's scrape of each subreddit, its authors, then a refresh of the posts due
            for subreddit in SUBREDDITS:
                if time.monotonic() >= deadline:
                    break
                result = scrape_new(reddit, subreddit, DAY_END - 86_400, DAY_END, limit=1000)
                fetch_authors(reddit, [p.author_fullname for p in result.posts if p.author_fullname][:150])
                refresh_posts(reddit, ids[subreddit][:200], report=BatchReport())
            rounds += 1
        elapsed = time.monotonic() - started
        served = sum(server.statuses.values()) - first_counted
        pacer = rate_budget(server.base_url, server.client_id)
        return {
            "elapsed_s": elapsed,
            "requests": served,
            "rate": served / elapsed,
            "allowed": budget / window_s,
            "fraction": served / elapsed / (budget / window_s),
            "429s": server.statuses[429],
            "rounds": rounds,
            "budget_waits": pacer.waits,
            "budget_waited_s": pacer.waited_s,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100, help="requests allowed per window")
    parser.add_argument("--duration-s", type=float, default=50.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    out = run(args.window_s, args.budget, min(args.duration_s, 60.0))
    print(
        f"window {args.window_s} s, budget {args.budget} requests: {out['requests']} requests in "
        f"{out['elapsed_s']:.1f} s ({out['rounds']} workload rounds)"
    )
    print(f"sustained rate {out['rate']:.2f}/s of {out['allowed']:.2f}/s allowed = {out['fraction']:.3f} of the budget")
    print(f"429s received: {out['429s']}; RateBudget waits: {out['budget_waits']} ({out['budget_waited_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
