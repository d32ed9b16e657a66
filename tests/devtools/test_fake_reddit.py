"""The fake Reddit API speaks Reddit's wire format: checked with plain HTTP, no PRAW."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import zstandard
from PIL import Image

from smpp.devtools.fake_reddit import (
    FakeRedditServer,
    author_fullname_for,
    is_image_url,
    load_posts,
    render_image,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_archive.ndjson.zst"
NEWEST = 1_375_228_740


def posts(subreddit: str, count: int, prefix: str) -> list[dict]:
    return [
        {
            "id": f"{prefix}{n:03d}",
            "name": f"t3_{prefix}{n:03d}",
            "title": f"title {n}",
            "author": "[deleted]" if n == 1 else f"user{n % 7}",
            "subreddit": subreddit,
            "created_utc": NEWEST - 60 * n,
            "score": n * 3,
            "ups": n * 3 + 1,
            "downs": 1,
            "num_comments": n,
            "over_18": n == 2,
            "is_self": n % 5 == 4,
            "url": f"https://i.redd.it/{prefix}{n}.png" if n % 2 == 0 else f"https://news.example.org/{n}",
            "domain": "i.redd.it" if n % 2 == 0 else "news.example.org",
            "link_flair_text": "OC" if n == 3 else None,
            "selftext_len": 40 if n % 5 == 4 else 0,
            "permalink": f"/r/{subreddit}/comments/{prefix}{n:03d}/",
        }
        for n in range(count)
    ]


@pytest.fixture
def server():
    with FakeRedditServer(
        posts("pics", 250, "p") + posts("Aww", 10, "a"),
        private_subreddits=["hidden"],
        banned_subreddits=["gone"],
        listing_cap=230,
    ) as fake:
        yield fake


def token(server: FakeRedditServer, **form: str) -> str:
    response = requests.post(
        f"{server.base_url}/api/v1/access_token",
        auth=(server.client_id, server.client_secret),
        data={"grant_type": "client_credentials", **form},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def api(server: FakeRedditServer, path: str, bearer: str | None = None, **params) -> requests.Response:
    headers = {"Authorization": f"bearer {bearer}"} if bearer else {}
    return requests.get(f"{server.base_url}{path}", params={"raw_json": 1, **params}, headers=headers, timeout=5)


def test_token_flow(server):
    response = requests.post(
        f"{server.base_url}/api/v1/access_token",
        auth=(server.client_id, server.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer" and body["scope"] == "*" and body["expires_in"] > 0
    assert api(server, "/r/pics/new", body["access_token"]).status_code == 200

    wrong = requests.post(
        f"{server.base_url}/api/v1/access_token",
        auth=(server.client_id, "nope"),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert wrong.status_code == 401 and wrong.json() == {"message": "Unauthorized", "error": 401}

    for bearer in (None, "made-up"):
        denied = api(server, "/r/pics/new", bearer)
        assert denied.status_code == 401 and "invalid_token" in denied.headers["www-authenticate"]
    server.expire_tokens()
    assert api(server, "/r/pics/new", body["access_token"]).status_code == 401


def test_listing_envelope_pagination_and_cap(server):
    bearer = token(server)
    first = api(server, "/r/pics/new.json", bearer, limit=500).json()
    assert first["kind"] == "Listing"
    data = first["data"]
    assert data["dist"] == 100 and data["before"] is None and data["after"] == "t3_p099"
    created = [c["data"]["created_utc"] for c in data["children"]]
    assert created == sorted(created, reverse=True)
    assert all(c["kind"] == "t3" for c in data["children"])

    seen = [c["data"]["id"] for c in data["children"]]
    after = data["after"]
    while after:
        page = api(server, "/r/pics/new", bearer, limit=100, after=after).json()["data"]
        seen += [c["data"]["id"] for c in page["children"]]
        after = page["after"]
    assert len(seen) == 230 == len(set(seen))  # the listing cap hides the oldest 20
    assert api(server, "/r/pics/new", bearer, after="t3_p229").json()["data"]["children"] == []
    before = api(server, "/r/pics/new", bearer, before="t3_p010", limit=3).json()["data"]
    assert [c["data"]["id"] for c in before["children"]] == ["p007", "p008", "p009"]
    default_page = api(server, "/r/PICS/new", bearer).json()["data"]
    assert default_page["dist"] == 25


def test_post_fields_look_like_reddit(server):
    bearer = token(server)
    children = api(server, "/r/aww/new", bearer, limit=10).json()["data"]["children"]
    by_id = {c["data"]["id"]: c["data"] for c in children}
    image, link, deleted, self_post = by_id["a000"], by_id["a003"], by_id["a001"], by_id["a004"]

    assert image["url"] == f"{server.base_url}/i/a000.jpg" and image["post_hint"] == "image"
    assert image["preview"]["images"][0]["source"]["url"] == image["url"]
    assert image["domain"] == "i.redd.it"
    assert link["url"] == "https://news.example.org/3" and "post_hint" not in link
    assert link["link_flair_text"] == "OC"
    assert link["author_fullname"] == author_fullname_for("user3")
    assert deleted["author"] == "[deleted]" and "author_fullname" not in deleted
    assert self_post["is_self"] and len(self_post["selftext"]) == 40 and "post_hint" not in self_post
    for data in by_id.values():
        assert data["name"] == f"t3_{data['id']}"
        assert data["removed_by_category"] is None
        assert 0 < data["upvote_ratio"] <= 1
        assert data["subreddit"] == "Aww" and data["subreddit_subscribers"] > 0
        assert isinstance(data["created_utc"], float)


def test_about_and_unavailable_subreddits(server):
    bearer = token(server)
    about = api(server, "/r/aww/about", bearer).json()
    assert about["kind"] == "t5" and about["data"]["display_name"] == "Aww"
    assert about["data"]["subscribers"] > 0
    missing = api(server, "/r/nosuchsub/about", bearer)
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found", "error": 404}
    private = api(server, "/r/Hidden/new", bearer)
    assert private.status_code == 403 and private.json()["reason"] == "private"
    banned = api(server, "/r/gone/about", bearer)
    assert banned.status_code == 404 and banned.json()["reason"] == "banned"


def test_info_and_removals(server):
    bearer = token(server)
    ids = ["t3_p005", "t3_a002", "t3_missing", "t3_p004"]
    listing = api(server, "/api/info", bearer, id=",".join(ids)).json()
    assert [c["data"]["name"] for c in listing["data"]["children"]] == ["t3_p005", "t3_a002", "t3_p004"]
    assert api(server, "/api/info", bearer, id=",".join(f"t3_p{n:03d}" for n in range(101))).status_code == 400

    server.mark_removed("p005")
    server.mark_removed("t3_p004", kind="deleted")
    removed, deleted = (
        c["data"] for c in api(server, "/api/info", bearer, id="t3_p005,t3_p004").json()["data"]["children"]
    )
    assert removed["removed_by_category"] == "moderator" and removed["author"] == "user5"
    assert deleted["removed_by_category"] == "deleted"
    assert deleted["author"] == "[deleted]" and deleted["selftext"] == "[deleted]" and deleted["title"] == "[deleted]"
    listed = [c["data"]["id"] for c in api(server, "/r/pics/new", bearer, limit=10).json()["data"]["children"]]
    assert "p005" not in listed and "p004" not in listed and len(listed) == 10
    with pytest.raises(KeyError):
        server.mark_removed("nope")


def test_user_data_by_account_ids(server):
    bearer = token(server)
    known = [author_fullname_for("nobody"), author_fullname_for("user2")]
    body = api(server, "/api/user_data_by_account_ids", bearer, ids=",".join(known + ["t2_zzz"])).json()
    assert list(body) == [known[1]]
    user = body[known[1]]
    assert user["name"] == "user2"
    assert {"created_utc", "link_karma", "comment_karma"} <= set(user)
    assert api(server, "/api/user_data_by_account_ids", bearer, ids="t2_zzz").status_code == 404


def test_rate_limit_headers_and_429():
    with FakeRedditServer(posts("pics", 5, "p"), rate_limit_per_window=3, window_s=60) as server:
        bearer = token(server)
        first = api(server, "/r/pics/new", bearer)
        assert first.headers["x-ratelimit-used"] == "1"
        assert first.headers["x-ratelimit-remaining"] == "2.0"
        assert 0 < int(first.headers["x-ratelimit-reset"]) <= 60
        api(server, "/r/pics/new", bearer)
        assert api(server, "/r/pics/new", bearer).headers["x-ratelimit-remaining"] == "0.0"
        limited = api(server, "/r/pics/new", bearer)
        assert limited.status_code == 429
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        server.reset_rate_limit()
        assert api(server, "/r/pics/new", bearer).status_code == 200


def test_fault_injection_and_delay(server):
    bearer = token(server)
    server.fail_next(429, retry_after=1)
    server.fail_next(503)
    server.fail_next(500)
    limited = api(server, "/r/pics/new", bearer)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert "x-ratelimit-remaining" in limited.headers
    assert api(server, "/r/pics/new", bearer).status_code == 503
    assert api(server, "/r/pics/new", bearer).status_code == 500
    assert api(server, "/r/pics/new", bearer).status_code == 200
    server.set_delay(0.3)
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(f"{server.base_url}/r/pics/new", headers={"Authorization": f"bearer {bearer}"}, timeout=0.1)
    server.set_delay(0)
    assert sum(p.startswith("/r/pics/new") for p in server.requests_log) == 5


def test_images_are_deterministic_jpegs(server):
    sizes = set()
    for post_id in ("p000", "p002", "a000"):
        response = requests.get(f"{server.base_url}/i/{post_id}.jpg", timeout=5)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
        Image.open(io.BytesIO(response.content)).verify()
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "JPEG" and all(200 <= side <= 600 for side in image.size)
        sizes.add(image.size)
        assert response.content == render_image(post_id)
    assert len(sizes) > 1
    assert requests.get(f"{server.base_url}/i/p001.jpg", timeout=5).status_code == 404  # a link post
    assert requests.get(f"{server.base_url}/i/nope.jpg", timeout=5).status_code == 404


def test_is_image_url():
    assert is_image_url("https://imgur.com/gallery/abc", "imgur.com")
    assert is_image_url("https://example.com/cat.JPEG", "example.com")
    assert not is_image_url("https://youtube.com/watch?v=1", "youtube.com")
    assert not is_image_url(None, None)


def test_load_posts_plain_zst_and_limit(tmp_path):
    rows = posts("pics", 3, "p")
    text = "\n".join(json.dumps(r) for r in rows) + "\n\n"
    plain = tmp_path / "posts.ndjson"
    plain.write_text(text)
    packed = tmp_path / "posts.ndjson.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    assert load_posts(plain) == rows == load_posts(packed)
    assert load_posts(packed, limit=2) == rows[:2]
    sample = load_posts(SAMPLE, limit=50)
    assert len(sample) == 50 and {"id", "title", "subreddit", "created_utc"} <= set(sample[0])
    (tmp_path / "bad.ndjson").write_text('{"id": 1}\nnot json\n')
    with pytest.raises(ValueError, match="bad.ndjson:2"):
        load_posts(tmp_path / "bad.ndjson")
    with pytest.raises(FileNotFoundError):
        load_posts(tmp_path / "absent.ndjson")


def test_cli_serves_until_terminated(tmp_path):
    pidfile = tmp_path / "fake.pid"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smpp.devtools.fake_reddit",
            "--sample",
            str(SAMPLE),
            "--port",
            "0",
            "--pidfile",
            str(pidfile),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert pidfile.read_text().strip() == str(process.pid)
        response = requests.post(
            f"{base_url}/api/v1/access_token",
            auth=("smpp-test", "smpp-secret"),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
    assert not pidfile.exists()


def test_malformed_bodies_and_held_responses(server):
    bearer = token(server)
    server.malformed_next("invalid_json")
    server.malformed_next("html", status=502)
    server.malformed_next("html", after=1)
    broken = api(server, "/r/pics/new", bearer)
    assert broken.status_code == 200 and broken.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        broken.json()
    cdn = api(server, "/r/pics/new", bearer)
    assert cdn.status_code == 502 and cdn.text.startswith("<!doctype html>")
    assert api(server, "/r/pics/new", bearer).json()["kind"] == "Listing"  # `after` let one through
    page = api(server, "/r/pics/new", bearer)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        server.malformed_next("xml")  # type: ignore[arg-type]

    server.hold_next(0.5)
    headers = {"Authorization": f"bearer {bearer}"}
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{server.base_url}/r/pics/new", headers=headers, timeout=0.1)
    assert api(server, "/r/pics/new", bearer).status_code == 200  # the hold was for one response only
    assert server.statuses[200] >= 3 and server.statuses[502] == 1


def test_overridden_fields_and_deleted_accounts(server):
    from smpp.devtools.fake_reddit import DROP

    bearer = token(server)
    server.override_fields("t3_a002", id=DROP, score="abc", created_utc=None, title=7)
    listed = {c["data"].get("name"): c["data"] for c in api(server, "/r/aww/new", bearer).json()["data"]["children"]}
    odd = listed["t3_a002"]
    assert "id" not in odd and odd["score"] == "abc" and odd["created_utc"] is None and odd["title"] == 7
    info = api(server, "/api/info", bearer, id="t3_a002").json()["data"]["children"][0]["data"]
    assert info == odd
    with pytest.raises(KeyError):
        server.override_fields("nope", score=1)

    server.delete_account("user3")
    gone = api(server, "/api/info", bearer, id="t3_a003").json()["data"]["children"][0]["data"]
    assert gone["author"] == "[deleted]" and "author_fullname" not in gone and gone["removed_by_category"] is None
    assert gone["title"] == "title 3"  # the post itself stays up
    lookup = api(server, "/api/user_data_by_account_ids", bearer, ids=author_fullname_for("user3"))
    assert lookup.status_code == 404


def test_reset_header_is_truncated_and_retry_after_is_not():
    with FakeRedditServer(posts("pics", 5, "p"), rate_limit_per_window=2, window_s=3) as server:
        bearer = token(server)
        assert api(server, "/r/pics/new", bearer).headers["x-ratelimit-reset"] == "3"  # opens the window
        assert api(server, "/r/pics/new", bearer).headers["x-ratelimit-reset"] == "2"  # 2.99 s left
        limited = api(server, "/r/pics/new", bearer)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        assert server.statuses == {200: 2, 429: 1}
