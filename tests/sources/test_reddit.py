"""The PRAW-based Reddit source against the fake Reddit API (real HTTP on 127.0.0.1, real PRAW)."""

from __future__ import annotations

import io
import time

import praw
import prawcore
import pytest
import requests
from PIL import Image

from smpp.devtools.fake_reddit import DROP
from smpp.sources.reddit import (
    BatchReport,
    RedditAuthError,
    RedditConfigError,
    fetch_authors,
    make_reddit,
    refresh_posts,
    scrape_new,
)

DAY_START = 1_375_142_400  # 2013-07-30 00:00 UTC
DAY_END = DAY_START + 86_400


@pytest.fixture
def day_posts(make_posts):
    """day_posts(subreddit, n): archive posts 10 min apart, the newest a minute before DAY_END."""
    return lambda subreddit, count, **options: make_posts(subreddit, count, newest_utc=DAY_END - 60, **options)


def test_token_is_fetched_once_and_reused(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 30))
    reddit = reddit_for(server)
    scrape_new(reddit, "pics", DAY_START, DAY_END, limit=1000)
    refresh_posts(reddit, ["pic0001"])
    assert server.requests_log[0] == "/api/v1/access_token"
    assert len(server.requests_to("/api/v1/access_token")) == 1


def test_scrape_keeps_interval_across_pages(day_posts, fake_reddit, reddit_for):
    # 300 posts 10 min apart: the newest 144 fall on DAY_START's day, the rest before it.
    posts = day_posts("pics", 300) + day_posts("aww", 20)
    server = fake_reddit(posts)
    before = int(time.time())
    result = scrape_new(reddit_for(server), "pics", DAY_START, DAY_END, limit=1000)

    expected = {p["id"] for p in posts if p["subreddit"] == "pics" and DAY_START <= p["created_utc"] < DAY_END}
    assert len(expected) == 144
    assert {p.id for p in result.posts} == expected
    assert result.status == "ok" and result.uncovered_span is None
    assert result.subscribers and result.subscribers > 0
    assert len(server.requests_to("/r/pics/new")) == 2  # 100 + the page that reaches older posts
    assert result.requests == 3  # about + 2 pages
    first = result.posts[0]
    assert [p.created_utc for p in result.posts] == sorted(p.created_utc for p in result.posts)
    assert first.subreddit == "pics" and first.source == "reddit"
    assert first.author and first.author.startswith("author_")
    assert first.author_fullname and first.author_fullname.startswith("t2_")
    assert first.observed_at is not None and first.observed_at >= before
    assert first.subreddit_subscribers == result.subscribers
    assert not first.removed


def test_scrape_reports_gap_when_listing_cap_is_hit(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 300), listing_cap=120)
    result = scrape_new(reddit_for(server), "pics", DAY_START, DAY_END, limit=1000, cap_floor=100)
    assert result.status == "gap"
    oldest_served = DAY_END - 60 - 119 * 600
    assert result.uncovered_span == (DAY_START, oldest_served)
    assert len(result.posts) == 120
    assert len(server.requests_to("/r/pics/new")) == 2


def test_listing_that_ends_with_few_items_is_complete(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 30))  # a young subreddit: /new simply ends
    result = scrape_new(reddit_for(server), "pics", DAY_START - 86400, DAY_END, limit=1000)
    assert result.status == "ok" and result.uncovered_span is None and len(result.posts) == 30


def test_scrape_reports_gap_when_own_limit_is_hit(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 300))
    result = scrape_new(reddit_for(server), "pics", DAY_START, DAY_END, limit=50)
    assert result.status == "gap"
    assert len(result.posts) == 50
    assert result.uncovered_span == (DAY_START, DAY_END - 60 - 49 * 600)


@pytest.mark.parametrize(("name", "status"), [("nosuchsub", "missing"), ("secretclub", "private"), ("gone", "banned")])
def test_unavailable_subreddits_are_statuses(day_posts, fake_reddit, reddit_for, name, status):
    server = fake_reddit(
        day_posts("pics", 5) + day_posts("secretclub", 5) + day_posts("gone", 5),
        private_subreddits=["SecretClub"],
        banned_subreddits=["gone"],
    )
    result = scrape_new(reddit_for(server), name, DAY_START, DAY_END, limit=1000)
    assert result.status == status
    assert result.posts == [] and result.subscribers is None


def test_refresh_150_posts_in_two_requests(day_posts, fake_reddit, reddit_for):
    posts = day_posts("pics", 160)
    server = fake_reddit(posts)
    ids = [p["id"] for p in posts[:150]]
    records = refresh_posts(reddit_for(server), ids + ["t3_" + ids[0], "zzzzzz"])
    assert [r.id for r in records] == ids
    assert len(server.requests_to("/api/info")) == 2
    assert records[10].score == posts[10]["score"]
    assert all(not r.removed for r in records)


def test_removed_and_deleted_posts_come_back_removed(day_posts, fake_reddit, reddit_for):
    posts = day_posts("pics", 5)
    server = fake_reddit(posts)
    reddit = reddit_for(server)
    server.mark_removed("pic0001")
    server.mark_removed("pic0002", kind="deleted")
    by_id = {r.id: r for r in refresh_posts(reddit, ["pic0000", "pic0001", "pic0002"])}
    assert not by_id["pic0000"].removed
    assert by_id["pic0001"].removed and by_id["pic0001"].author == "author_1"
    assert by_id["pic0002"].removed and by_id["pic0002"].author is None
    listed = scrape_new(reddit, "pics", DAY_START, DAY_END, limit=100)
    assert {p.id for p in listed.posts} == {"pic0000", "pic0003", "pic0004"}


def test_fetch_authors_in_batches(day_posts, fake_reddit, reddit_for):
    posts = day_posts("pics", 150, image_every=0)
    for n, post in enumerate(posts):
        post["author"] = f"person_{n}"
    server = fake_reddit(posts)
    reddit = reddit_for(server)
    fullnames = [r.author_fullname for r in refresh_posts(reddit, [p["id"] for p in posts])]
    authors = fetch_authors(reddit, fullnames + ["t2_doesnotexist", fullnames[0]])
    assert len(server.requests_to("/api/user_data_by_account_ids")) == 2
    assert {a.name for a in authors} == {f"person_{n}" for n in range(150)}
    first = next(a for a in authors if a.name == "person_0")
    assert first.fullname == fullnames[0]
    assert first.created_utc is not None and first.created_utc < posts[0]["created_utc"]
    assert first.link_karma is not None and first.comment_karma is not None
    assert first.observed_at > 0


def test_429_waits_retry_after_then_succeeds(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 5))
    reddit = reddit_for(server)
    refresh_posts(reddit, ["pic0000"])  # token first, so only the listing sees the 429
    server.fail_next(429, retry_after=1)
    started = time.monotonic()
    records = refresh_posts(reddit, ["pic0001"])
    assert time.monotonic() - started >= 1.0
    assert [r.id for r in records] == ["pic0001"]
    assert len(server.requests_to("/api/info")) == 3


def test_429_gives_up_after_configured_retries(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 5))
    reddit = reddit_for(server)
    server.fail_next(429, count=10, retry_after=0)
    with pytest.raises(prawcore.TooManyRequests):
        refresh_posts(reddit, ["pic0000"], max_429_retries=2)
    assert len(server.requests_to("/api/info")) == 3


def test_5xx_is_retried_by_prawcore(day_posts, fake_reddit, reddit_for, monkeypatch):
    # prawcore sleeps 0-2 s before its first retry; pin it to 0 to keep the test fast.
    monkeypatch.setattr(prawcore.sessions.random, "random", lambda: 0.0)
    server = fake_reddit(day_posts("pics", 150))
    server.fail_next(503)
    result = scrape_new(reddit_for(server), "pics", DAY_START, DAY_END, limit=1000)
    assert result.status == "ok" and len(result.posts) == 144
    assert result.requests == 3  # prawcore's retry is invisible to the caller
    assert len(server.requests_to("/r/pics/about")) == 2


def test_5xx_beyond_prawcore_retries_gets_bounded_backoff(day_posts, fake_reddit, reddit_for, no_retry_sleeps):
    import smpp.sources.reddit as reddit_source

    server = fake_reddit(day_posts("pics", 5))
    reddit = reddit_for(server)
    server.fail_next(500, count=4)  # prawcore's three tries fail, then ours succeeds on its second
    assert [r.id for r in refresh_posts(reddit, ["pic0000"])] == ["pic0000"]
    assert len(server.requests_to("/api/info")) == 5
    server.fail_next(500, count=3 * (reddit_source.SERVER_ERROR_RETRIES + 1))
    report = BatchReport()
    assert refresh_posts(reddit, ["pic0000", "pic0001"], report=report) == []
    assert report.failed == ["pic0000", "pic0001"] == report.not_returned
    assert report.errors == ["api/info: HTTP 500 (ServerError)"]
    assert len(server.requests_to("/api/info")) == 5 + 9


def test_5xx_burst_on_a_page_makes_an_error_status_and_keeps_earlier_pages(
    day_posts, fake_reddit, reddit_for, no_retry_sleeps
):
    server = fake_reddit(day_posts("pics", 300) + day_posts("aww", 20))
    reddit = reddit_for(server)
    refresh_posts(reddit, ["pic0000"])  # the token first
    server.fail_next(503, count=9, after=2)  # about and page 1 pass, page 2 fails every try
    # as tasks.scrape_posts loops: one failure must not stop the next subreddit
    pics, aww = (scrape_new(reddit, s, DAY_START, DAY_END, limit=1000) for s in ("pics", "aww"))
    assert pics.status == "error" and pics.error == "HTTP 503 (ServerError)"
    assert len(pics.posts) == 100 and pics.subscribers  # page 1 is kept
    assert pics.uncovered_span == (DAY_START, DAY_END - 60 - 99 * 600)
    assert aww.status == "ok" and len(aww.posts) == 20


@pytest.mark.parametrize(
    ("body", "status", "prawcore_tries"), [("invalid_json", 200, 1), ("html", 200, 1), ("html", 502, 3)]
)
def test_unparseable_bodies_are_retried_then_an_error_status(
    day_posts, fake_reddit, reddit_for, no_retry_sleeps, caplog, body, status, prawcore_tries
):
    import smpp.sources.reddit as reddit_source

    server = fake_reddit(day_posts("pics", 30) + day_posts("aww", 5))
    reddit = reddit_for(server)
    server.malformed_next(body, status=status)  # one bad answer: retried, then fine
    assert scrape_new(reddit, "pics", DAY_START, DAY_END, limit=1000).status == "ok"

    attempts = prawcore_tries * (reddit_source.SERVER_ERROR_RETRIES + 1)
    server.malformed_next(body, count=attempts, status=status)
    before = len(server.requests_log)
    with caplog.at_level("ERROR", logger="smpp.sources.reddit"):
        result = scrape_new(reddit, "pics", DAY_START, DAY_END, limit=1000)
    assert result.status == "error" and result.posts == [] and result.uncovered_span == (DAY_START, DAY_END)
    assert result.error and (("not JSON" in result.error) if status == 200 else "HTTP 502" in result.error)
    assert result.error in caplog.text
    assert len(server.requests_log) - before == attempts
    assert scrape_new(reddit, "aww", DAY_START, DAY_END, limit=1000).status == "ok"


def test_refresh_reports_a_failed_batch_and_goes_on(day_posts, fake_reddit, reddit_for, no_retry_sleeps):
    posts = day_posts("pics", 150)
    server = fake_reddit(posts)
    reddit = reddit_for(server)
    refresh_posts(reddit, ["pic0000"])  # the token first
    server.malformed_next("invalid_json", count=3)
    report = BatchReport()
    ids = [p["id"] for p in posts]
    records = refresh_posts(reddit, ids, report=report)
    assert [r.id for r in records] == ids[100:]
    assert report.failed == ids[:100] and report.missing == [] and report.requested == 150
    assert report.requests == 4 and "not JSON" in report.errors[0]


def test_refresh_stops_trying_when_reddit_is_down(day_posts, fake_reddit, reddit_for, no_retry_sleeps):
    import smpp.sources.reddit as reddit_source

    posts = day_posts("pics", 500)
    server = fake_reddit(posts)
    reddit = reddit_for(server)
    refresh_posts(reddit, ["pic0000"])
    server.malformed_next("html", count=100)
    before = len(server.requests_to("/api/info"))
    report = BatchReport()
    assert refresh_posts(reddit, [p["id"] for p in posts], report=report) == []
    tries = reddit_source.MAX_FAILED_BATCHES_IN_A_ROW * (reddit_source.SERVER_ERROR_RETRIES + 1)
    assert len(server.requests_to("/api/info")) - before == tries
    assert report.failed == [p["id"] for p in posts]
    assert "200 ids not tried" in report.errors[-1]


def test_malformed_records_are_skipped_counted_and_logged(day_posts, fake_reddit, reddit_for, caplog):
    posts = day_posts("pics", 12)
    server = fake_reddit(posts)
    server.override_fields("pic0001", id=DROP, name=DROP)
    server.override_fields("pic0002", created_utc=None)
    server.override_fields("pic0003", score="abc")
    server.override_fields("pic0004", title=1234, num_comments="7", over_18="false")  # convertible
    server.override_fields("pic0005", created_utc=str(posts[5]["created_utc"]))  # convertible
    with caplog.at_level("WARNING", logger="smpp.sources.reddit"):
        result = scrape_new(reddit_for(server), "pics", DAY_START, DAY_END, limit=1000)
    assert result.status == "ok"
    assert result.skipped == {"missing_id": 1, "missing_created_utc": 1, "bad_score": 1}
    by_id = {p.id: p for p in result.posts}
    assert set(by_id) == {p["id"] for p in posts} - {"pic0001", "pic0002", "pic0003"}
    assert by_id["pic0004"].title == "1234" and by_id["pic0004"].num_comments == 7 and not by_id["pic0004"].over_18
    assert by_id["pic0005"].created_utc == posts[5]["created_utc"]
    assert "pic0002" in caplog.text and "pic0003" in caplog.text and "unknown id" in caplog.text


def test_malformed_records_in_refresh_are_reported(day_posts, fake_reddit, reddit_for):
    posts = day_posts("pics", 6)
    server = fake_reddit(posts)
    server.override_fields("pic0001", created_utc=None)
    server.override_fields("pic0002", subreddit=DROP)
    server.override_fields("pic0003", score=[1])
    report = BatchReport()
    records = refresh_posts(reddit_for(server), [p["id"] for p in posts] + ["gone01"], report=report)
    assert [r.id for r in records] == ["pic0000", "pic0004", "pic0005"]
    assert report.malformed == ["pic0001", "pic0002", "pic0003"] and report.missing == ["gone01"]
    assert report.skipped == {"missing_created_utc": 1, "missing_subreddit": 1, "bad_score": 1}
    assert report.failed == [] and report.requests == 1


def test_timeouts_are_retried_then_an_error_status(day_posts, fake_reddit, reddit_for, no_retry_sleeps):
    import smpp.sources.reddit as reddit_source

    server = fake_reddit(day_posts("pics", 10))
    reddit = reddit_for(server, timeout_s=0.2)
    refresh_posts(reddit, ["pic0000"])
    server.hold_next(0.6)  # one slow answer: prawcore retries the read timeout
    assert scrape_new(reddit, "pics", DAY_START, DAY_END, limit=100).status == "ok"

    attempts = 3 * (reddit_source.SERVER_ERROR_RETRIES + 1)
    server.hold_next(0.6, count=attempts)
    started = time.monotonic()
    result = scrape_new(reddit, "pics", DAY_START, DAY_END, limit=100)
    elapsed = time.monotonic() - started
    assert result.status == "error" and "ReadTimeout" in (result.error or "")
    assert elapsed < attempts * 0.2 + 2  # the configured 0.2 s, not prawcore's 16 s default
    report = BatchReport()
    server.hold_next(0.6, count=attempts)
    assert refresh_posts(reddit, ["pic0001"], report=report) == [] and report.failed == ["pic0001"]


def test_deleted_account_marks_its_posts_removed(day_posts, fake_reddit, reddit_for):
    posts = day_posts("pics", 6, image_every=0)
    server = fake_reddit(posts)
    reddit = reddit_for(server)
    fullname = refresh_posts(reddit, ["pic0001"])[0].author_fullname
    server.delete_account("author_1")
    result = scrape_new(reddit, "pics", DAY_START, DAY_END, limit=100)
    orphan = next(p for p in result.posts if p.id == "pic0001")
    assert orphan.author is None and orphan.author_fullname is None and orphan.removed
    report = BatchReport()
    authors = fetch_authors(
        reddit, [fullname, next(p.author_fullname for p in result.posts if p.id == "pic0002")], report=report
    )
    assert [a.name for a in authors] == ["author_2"] and report.missing == [fullname]


def test_reddit_listing_cap_of_1000_leaves_a_gap(make_posts, fake_reddit, reddit_for):
    posts = make_posts("pics", 1100, newest_utc=DAY_END - 60, spacing_s=60, image_every=0)
    server = fake_reddit(posts)  # Reddit's default cap: /new stops after 1000 items
    result = scrape_new(reddit_for(server), "pics", DAY_START - 86_400, DAY_END, limit=2000, cap_floor=900)
    assert len(result.posts) == 1000 and result.status == "gap"
    assert result.uncovered_span == (DAY_START - 86_400, DAY_END - 60 - 999 * 60)
    assert len(server.requests_to("/r/pics/new")) == 10


def test_steady_scraping_never_draws_a_429(day_posts, fake_reddit, reddit_for):
    # 12 requests per 2 s window; the workload needs about 3 windows
    server = fake_reddit(day_posts("pics", 300) + day_posts("aww", 150), rate_limit_per_window=12, window_s=2)
    reddit = reddit_for(server, rate_window_s=2)
    for _ in range(2):
        for subreddit in ("pics", "aww"):
            assert scrape_new(reddit, subreddit, DAY_START, DAY_END, limit=1000).status == "ok"
        assert len(refresh_posts(reddit, [f"pic{n:04d}" for n in range(300)])) == 300
    assert server.statuses[200] == 2 * (3 + 3 + 3) and server.statuses[429] == 0


def test_a_new_client_waits_for_a_window_another_client_spent(day_posts, fake_reddit, reddit_for, no_retry_sleeps):
    server = fake_reddit(day_posts("pics", 5), rate_limit_per_window=4, window_s=2)
    first = reddit_for(server, rate_window_s=2)
    for n in range(4):
        refresh_posts(first, [f"pic{n:04d}"])
    unguarded = praw.Reddit(**server.praw_kwargs(), user_agent="smpp test client", check_for_updates=False)
    with pytest.raises(prawcore.TooManyRequests):  # what prawcore alone does: a fresh client sends at once
        unguarded.request(method="GET", path="/api/info", params={"id": "t3_pic0000"})
    server.reset_rate_limit()
    for n in range(4):
        refresh_posts(first, [f"pic{n:04d}"])
    limited = server.statuses[429]
    second = reddit_for(server, rate_window_s=2)  # same OAuth app: shares the process's RateBudget
    assert [r.id for r in refresh_posts(second, ["pic0004"])] == ["pic0004"]
    assert server.statuses[429] == limited


def test_wrong_secret_fails_fast_without_leaking_it(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 5))
    secret = "hunter2-very-secret"
    reddit = reddit_for(server, client_secret=secret)
    with pytest.raises(RedditAuthError) as info:
        scrape_new(reddit, "pics", DAY_START, DAY_END, limit=100)
    message = str(info.value)
    assert "SMPP_REDDIT__CLIENT_SECRET" in message and "SMPP_REDDIT__CLIENT_ID" in message
    assert secret not in message and secret not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(server.requests_to("/api/v1/access_token")) == 1


def test_wrong_password_grant_is_an_auth_error(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 5), username="bot", password="right")
    reddit = reddit_for(server, username="bot", password="wrong")
    with pytest.raises(RedditAuthError, match="SMPP_REDDIT__PASSWORD"):
        refresh_posts(reddit, ["pic0000"])
    ok = reddit_for(server, username="bot", password="right")
    assert [r.id for r in refresh_posts(ok, ["pic0000"])] == ["pic0000"]


def test_missing_credentials_name_the_settings(settings, monkeypatch):
    monkeypatch.delenv("SMPP_REDDIT__CLIENT_ID", raising=False)
    monkeypatch.delenv("SMPP_REDDIT__CLIENT_SECRET", raising=False)
    with pytest.raises(RedditConfigError) as info:
        make_reddit(settings.with_overrides(reddit={"client_id": "only-an-id"}))
    for name in ("SMPP_REDDIT__CLIENT_ID", "SMPP_REDDIT__CLIENT_SECRET", "SMPP_REDDIT__SITE"):
        assert name in str(info.value)


def test_praw_ini_site(day_posts, fake_reddit, settings, tmp_path, monkeypatch):
    server = fake_reddit(day_posts("pics", 5))
    (tmp_path / "praw.ini").write_text(
        "[fake]\n"
        f"client_id={server.client_id}\nclient_secret={server.client_secret}\n"
        f"oauth_url={server.base_url}\nreddit_url={server.base_url}\nshort_url={server.base_url}\n"
    )
    monkeypatch.chdir(tmp_path)  # praw reads praw.ini from the working directory
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("PRAW_ALLOW_ENDPOINT_OVERRIDE", "1")
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)  # praw caches praw.ini per process
    reddit = make_reddit(settings.with_overrides(reddit={"site": "fake"}))
    assert [r.id for r in refresh_posts(reddit, ["pic0000"])] == ["pic0000"]
    with pytest.raises(RedditConfigError, match="SMPP_REDDIT__SITE"):
        make_reddit(settings.with_overrides(reddit={"site": "nosuchsite"}))


def test_scraped_image_posts_point_at_real_jpegs(day_posts, fake_reddit, reddit_for):
    server = fake_reddit(day_posts("pics", 6))
    result = scrape_new(reddit_for(server), "pics", DAY_START, DAY_END, limit=100)
    images = [p for p in result.posts if p.post_hint == "image"]
    assert {p.id for p in images} == {"pic0000", "pic0003"}
    for post in images:
        assert post.preview_url == post.url and post.domain == "i.imgur.com"
        response = requests.get(post.url, timeout=5)
        assert response.headers["Content-Type"] == "image/jpeg"
        Image.open(io.BytesIO(response.content)).verify()
    link = next(p for p in result.posts if p.id == "pic0001")
    assert link.post_hint is None and link.url == "https://example.com/pic0001"


@pytest.mark.parametrize("www_authenticate", [True, False])
def test_revoked_app_is_an_auth_error_with_or_without_www_authenticate(
    day_posts, fake_reddit, reddit_for, no_retry_sleeps, www_authenticate
):
    # prawcore maps a 401 by its www-authenticate header; without one it raised a bare KeyError: 401
    server = fake_reddit(day_posts("pics", 5))
    server.revoke_api_access(www_authenticate=www_authenticate)
    reddit = reddit_for(server)
    for call in (
        lambda: scrape_new(reddit, "pics", DAY_START, DAY_END, limit=100),
        lambda: refresh_posts(reddit, ["pic0000"]),
    ):
        with pytest.raises(RedditAuthError) as info:
            call()
        message = str(info.value)
        assert "401" in message and "SMPP_REDDIT__CLIENT_SECRET" in message
        assert server.client_secret not in message and info.value.__cause__ is None
    server.restore_api_access()
    assert [r.id for r in refresh_posts(reddit, ["pic0000"])] == ["pic0000"]


def test_other_key_errors_are_not_taken_for_auth_errors():
    import smpp.sources.reddit as reddit_source

    with pytest.raises(KeyError, match="not prawcore"):  # a bug of ours stays a bug, not a credentials message
        reddit_source._Caller(0)("x", lambda: {}["not prawcore"])
