"""Fixtures for the Reddit source: the fake Reddit API on a free local port and clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smpp.devtools.fake_reddit import FakeRedditServer

DAY_START = 1_375_142_400  # 2013-07-30 00:00 UTC


def archive_posts(
    subreddit: str,
    count: int,
    *,
    newest_utc: int = DAY_START + 86_400 - 60,
    spacing_s: int = 600,
    prefix: str | None = None,
    image_every: int = 3,
) -> list[dict[str, Any]]:
    """`count` archive-format posts, newest first, one every `spacing_s` seconds."""
    prefix = prefix or subreddit[:3].lower()
    posts = []
    for n in range(count):
        post_id = f"{prefix}{n:04d}"
        is_image = image_every > 0 and n % image_every == 0
        posts.append(
            {
                "id": post_id,
                "name": f"t3_{post_id}",
                "title": f"Post {n} in {subreddit}",
                "author": f"author_{n % 40}",
                "subreddit": subreddit,
                "created_utc": newest_utc - n * spacing_s,
                "score": 10 * n + 1,
                "ups": 10 * n + 2,
                "downs": 1,
                "num_comments": n,
                "over_18": False,
                "is_self": False,
                "url": f"https://i.imgur.com/{post_id}.jpg" if is_image else f"https://example.com/{post_id}",
                "domain": "i.imgur.com" if is_image else "example.com",
                "thumbnail": "",
                "link_flair_text": None,
                "selftext_len": 0,
                "permalink": f"/r/{subreddit}/comments/{post_id}/",
            }
        )
    return posts


@pytest.fixture
def make_posts() -> Callable[..., list[dict[str, Any]]]:
    return archive_posts


@pytest.fixture
def fake_reddit() -> Iterator[Callable[..., FakeRedditServer]]:
    """Start a FakeRedditServer on a free port: fake_reddit(posts, **options); stopped afterwards."""
    servers: list[FakeRedditServer] = []

    def start(posts: list[dict[str, Any]], **options: Any) -> FakeRedditServer:
        # prawcore spreads requests evenly over the window: a large budget keeps tests fast.
        options.setdefault("rate_limit_per_window", 1_000_000)
        server = FakeRedditServer(posts, port=0, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def no_retry_sleeps(monkeypatch):
    """prawcore sleeps 0-4 s before its retries and our backoff 1-4 s: pin both to 0."""
    import prawcore

    import smpp.sources.reddit as reddit_source

    monkeypatch.setattr(prawcore.sessions.FiniteRetryStrategy, "_sleep_seconds", lambda self: None)
    monkeypatch.setattr(reddit_source, "_wait_seconds", lambda retry_state: 0.0)


@pytest.fixture
def reddit_for(settings):
    """A real PRAW client from make_reddit(), pointed at a fake server."""
    from smpp.sources.reddit import make_reddit

    def build(server: FakeRedditServer, *, rate_window_s: int | None = None, **reddit_overrides: Any):
        reddit = {
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "oauth_url": server.base_url,
            "reddit_url": server.base_url,
            "short_url": server.base_url,
            "timeout_s": 5.0,
            **reddit_overrides,
        }
        window = {"rate_window_s": rate_window_s} if rate_window_s else {}
        return make_reddit(settings.with_overrides(reddit=reddit), **window)

    return build
