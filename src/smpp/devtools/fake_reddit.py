"""A local fake of the Reddit OAuth API that PRAW talks to unmodified.

It serves archive-format posts (Pushshift-style dicts) with Reddit's JSON envelopes,
OAuth token flow, rate-limit headers, the ~1000-item listing cap, removals, deleted
accounts, fault injection (error statuses, malformed bodies, malformed records, held
responses, a revoked app answered 401 with or without www-authenticate) and deterministic
JPEGs for image posts. Tests and `make demo` use it; production never does.

    python -m smpp.devtools.fake_reddit --sample tests/data/sample_archive.ndjson.zst --port 8765
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

IMAGE_DOMAINS = frozenset({"i.imgur.com", "i.redd.it", "imgur.com"})
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif")
MAX_PAGE = 100
DEFAULT_PAGE = 25
REDDIT_LISTING_CAP = 1000
RemovalKind = Literal["moderator", "deleted", "reddit", "automod_filtered", "copyright_takedown"]
MalformedBody = Literal["invalid_json", "html"]
# A refused API request (revoke_api_access): 401 with Reddit's www-authenticate header, or a bare 401
# without it (a proxy, or an answer prawcore cannot map to an exception class).
Refusal = Literal["invalid_token", "bare"]
DROP = object()  # override_fields(post_id, field=DROP) removes the field from the served post

_CDN_ERROR_PAGE = (
    "<!doctype html><html><head><title>Reddit - Dive into anything</title></head><body>"
    "<h1>Our CDN was unable to reach our servers</h1><p>Please try again in a few minutes.</p>"
    "</body></html>"
)

_FILLER = (
    "the quick brown fox jumps over the lazy dog while a curious cat watches from the "
    "window and wonders whether anyone on this subreddit has seen anything like it before "
)


def load_posts(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Read archive-format posts from NDJSON (optionally .zst, streamed); blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fake reddit sample not found: {path}")
    posts: list[dict[str, Any]] = []
    with path.open("rb") as raw:
        if path.suffix == ".zst":
            import zstandard

            # Pushshift-style dumps use long windows.
            stream: Any = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw)
        else:
            stream = raw
        with io.TextIOWrapper(stream, encoding="utf-8") as text:
            for line_no, line in enumerate(text, 1):
                if limit is not None and len(posts) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    posts.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
    return posts


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if number == 0:
            return out


def author_fullname_for(name: str) -> str:
    """Deterministic t2_ id for an author name (archives do not carry one)."""
    return "t2_" + _base36(_digest("author:" + name) % 36**8)


def subreddit_fullname_for(name: str) -> str:
    return "t5_" + _base36(_digest("subreddit:" + name.lower()) % 36**6)


def is_image_url(url: str | None, domain: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    host = (domain or parts.netloc or "").lower()
    if host.startswith("www."):
        host = host[4:]
    return host in IMAGE_DOMAINS or parts.path.lower().endswith(IMAGE_SUFFIXES)


def image_size(post_id: str) -> tuple[int, int]:
    rng = random.Random(_digest("image:" + post_id))
    return rng.randint(200, 600), rng.randint(200, 600)


@lru_cache(maxsize=256)
def render_image(post_id: str) -> bytes:
    """A deterministic JPEG for a post id: size, colours and shapes all derive from the id."""
    from PIL import Image, ImageDraw

    rng = random.Random(_digest("image:" + post_id))
    width, height = rng.randint(200, 600), rng.randint(200, 600)

    def colour() -> tuple[int, int, int]:
        return rng.randrange(256), rng.randrange(256), rng.randrange(256)

    image = Image.new("RGB", (width, height), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 9)):
        x0, x1 = sorted(rng.randrange(width) for _ in range(2))
        y0, y1 = sorted(rng.randrange(height) for _ in range(2))
        shape = rng.choice(("rectangle", "ellipse", "polygon", "line"))
        if shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        elif shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour(), outline=colour())
        elif shape == "polygon":
            points = [(rng.randrange(width), rng.randrange(height)) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=colour())
        else:
            draw.line((x0, y0, x1, y1), fill=colour(), width=rng.randint(2, 12))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _filler_text(length: int) -> str:
    return (_FILLER * (length // len(_FILLER) + 1))[:length]


def _reddit_fields(post: Mapping[str, Any], subscribers: int) -> dict[str, Any]:
    """Archive dict -> the fields Reddit's t3 `data` carries (image fields added at serve time)."""
    post_id = str(post.get("id") or str(post.get("name") or "").removeprefix("t3_"))
    if not post_id or post.get("created_utc") is None or not post.get("subreddit"):
        raise ValueError(f"archive post lacks id, created_utc or subreddit: {dict(post)!r:.200}")
    subreddit = str(post["subreddit"])
    author = str(post.get("author") or "[deleted]")
    ups = int(post.get("ups") or max(int(post.get("score") or 0), 0))
    downs = int(post.get("downs") or 0)
    rng = random.Random(_digest("post:" + post_id))
    ratio = round(ups / (ups + downs), 2) if ups + downs > 0 else round(rng.uniform(0.6, 0.99), 2)
    is_self = bool(post.get("is_self"))
    selftext = post.get("selftext")
    if not isinstance(selftext, str):
        selftext = _filler_text(int(post.get("selftext_len") or 0)) if is_self else ""
    created = float(post["created_utc"])
    data: dict[str, Any] = {
        "id": post_id,
        "name": f"t3_{post_id}",
        "title": str(post.get("title") or ""),
        "author": author,
        "subreddit": subreddit,
        "subreddit_id": subreddit_fullname_for(subreddit),
        "subreddit_name_prefixed": f"r/{subreddit}",
        "subreddit_type": "public",
        "subreddit_subscribers": subscribers,
        "created_utc": created,
        "created": created,
        "score": int(post.get("score") or 0),
        "ups": ups,
        "downs": 0,  # Reddit stopped exposing downvotes
        "upvote_ratio": ratio,
        "num_comments": int(post.get("num_comments") or 0),
        "num_crossposts": 0,
        "over_18": bool(post.get("over_18")),
        "is_self": is_self,
        "is_video": False,
        "is_original_content": False,
        "spoiler": False,
        "locked": False,
        "stickied": False,
        "archived": False,
        "hidden": False,
        "saved": False,
        "url": post.get("url"),
        "domain": post.get("domain") or (f"self.{subreddit}" if is_self else None),
        "permalink": post.get("permalink") or f"/r/{subreddit}/comments/{post_id}/",
        "selftext": selftext,
        "selftext_html": None,
        "link_flair_text": post.get("link_flair_text"),
        "link_flair_type": "text",
        "author_flair_text": None,
        "thumbnail": post.get("thumbnail") or ("self" if is_self else "default"),
        "removed_by_category": None,
        "banned_by": None,
        "total_awards_received": 0,
        "gilded": 0,
        "media": None,
        "secure_media": None,
        "edited": False,
        "distinguished": None,
    }
    if author != "[deleted]":
        data["author_fullname"] = post.get("author_fullname") or author_fullname_for(author)
    # Extra archive keys (gallery_data, media_metadata, preview...) pass through untouched.
    for key, value in post.items():
        if key not in data and key not in ("selftext_len", "retrieved_on"):
            data[key] = value
    return data


def _default_subscribers(name: str, posts: list[Mapping[str, Any]]) -> int:
    # Roughly tracks how big a subreddit must be to produce posts this popular.
    scores = sorted(int(p.get("score") or 0) for p in posts)
    median = scores[len(scores) // 2] if scores else 0
    jitter = 1 + (_digest("subs:" + name.lower()) % 1000) / 2000
    return max(1_000, int((median * 120 + len(posts) * 50) * jitter))


@dataclass(frozen=True)
class _Fault:
    status: int | None = None  # None: answer normally (after hold_s)
    retry_after: float | None = None
    body: MalformedBody | None = None
    hold_s: float = 0.0


class _Reply:
    def __init__(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode("utf-8"), "application/json; charset=UTF-8", headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> _Reply:
    return _json_reply(status, {"message": message, "error": status, **extra}, headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; avoid 40 ms ACK stalls
    server: _Server

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.server.fake._handle(method, self.path, self.headers, body)
        except Exception:  # a bug in the fake must surface as a 500, not a dropped socket
            log.exception("fake reddit failed on %s %s", method, self.path)
            reply = _error(500, "Internal Server Error")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            # the client timed out while a held response waited
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # `format` is the base class's parameter name
        log.debug("fake reddit: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeRedditServer):
        self.fake = fake
        super().__init__(address, _Handler)


class FakeRedditServer:
    """Reddit's OAuth API over plain HTTP on a local port, fed with archive-format posts."""

    def __init__(
        self,
        posts: Iterable[Mapping[str, Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = "smpp-test",
        client_secret: str = "smpp-secret",
        rate_limit_per_window: int = 600,
        window_s: int = 600,
        private_subreddits: Iterable[str] = (),
        banned_subreddits: Iterable[str] = (),
        listing_cap: int = REDDIT_LISTING_CAP,
        token_ttl_s: int = 86400,
        username: str | None = None,
        password: str | None = None,
        subscribers: Mapping[str, int] | None = None,
        refuse_api: Refusal | None = None,
    ):
        self.host = host
        self._requested_port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.rate_limit_per_window = rate_limit_per_window
        self.window_s = window_s
        self.private_subreddits = {s.lower() for s in private_subreddits}
        self.banned_subreddits = {s.lower() for s in banned_subreddits}
        self.listing_cap = listing_cap
        self.token_ttl_s = token_ttl_s
        self.username = username
        self.password = password
        self.delay_s = 0.0
        self.refuse_api: Refusal | None = refuse_api  # every API request answers 401 (tokens still granted)
        self.requests_log: list[str] = []
        self.statuses: Counter[int] = Counter()  # API (not token, not image) answers by HTTP status

        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._faults: deque[_Fault] = deque()
        self._removed: dict[str, str] = {}
        self._overrides: dict[str, dict[str, Any]] = {}
        self._deleted_accounts: set[str] = set()
        self._window_started: float | None = None
        self._used = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        # Raw archive dicts are kept; Reddit's fields are built per response (cheap, and
        # loading the 270k-post dev file stays a few seconds).
        by_sub: dict[str, list[Mapping[str, Any]]] = {}
        self._posts: dict[str, Mapping[str, Any]] = {}
        for post in posts:
            post_id = _reddit_id(post)
            sub = str(post.get("subreddit") or "")
            if not post_id or not sub or post.get("created_utc") is None:
                raise ValueError(f"archive post lacks id, created_utc or subreddit: {dict(post)!r:.200}")
            self._posts[post_id] = post
            by_sub.setdefault(sub.lower(), []).append(post)
        overrides = {k.lower(): v for k, v in (subscribers or {}).items()}
        self._subreddit_names: dict[str, str] = {}
        self._subscribers: dict[str, int] = {}
        self._newest_first: dict[str, list[str]] = {}
        for key, sub_posts in by_sub.items():
            self._subreddit_names[key] = str(sub_posts[0]["subreddit"])
            self._subscribers[key] = overrides.get(key) or _default_subscribers(key, sub_posts)
            ordered = sorted(sub_posts, key=lambda p: (float(p["created_utc"]), _reddit_id(p)), reverse=True)
            self._newest_first[key] = [_reddit_id(p) for p in ordered]
        self._authors: dict[str, tuple[str, list[Mapping[str, Any]]]] = {}
        for post in self._posts.values():
            author = str(post.get("author") or "[deleted]")
            if author != "[deleted]":
                fullname = post.get("author_fullname") or author_fullname_for(author)
                self._authors.setdefault(fullname, (author, []))[1].append(post)

    # lifecycle
    def start(self) -> FakeRedditServer:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-reddit", daemon=True
        )
        self._thread.start()
        log.info("fake reddit serving %d posts at %s", len(self._posts), self.base_url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeRedditServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fake reddit server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def praw_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that point praw.Reddit at this server."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "oauth_url": self.base_url,
            "reddit_url": self.base_url,
            "short_url": self.base_url,
        }

    # test hooks
    def fail_next(self, status: int, count: int = 1, *, retry_after: float | None = None, after: int = 0) -> None:
        """Answer `count` API requests (not token, not images) with `status`, once `after` more were served."""
        self._queue(_Fault(status=status, retry_after=retry_after), count, after)

    def malformed_next(self, body: MalformedBody, count: int = 1, *, status: int = 200, after: int = 0) -> None:
        """Answer `count` API requests with a broken body: "invalid_json" (a truncated JSON
        document) or "html" (a CDN error page), under `status` (200 or an error)."""
        if body not in ("invalid_json", "html"):
            raise ValueError(f"unknown malformed body {body!r}")
        self._queue(_Fault(status=status, body=body), count, after)

    def hold_next(self, seconds: float, count: int = 1, *, after: int = 0) -> None:
        """Hold `count` API responses for `seconds` before answering normally (client timeouts)."""
        self._queue(_Fault(hold_s=seconds), count, after)

    def _queue(self, fault: _Fault, count: int, after: int) -> None:
        with self._lock:
            self._faults.extend([_Fault()] * after + [fault] * count)

    def revoke_api_access(self, *, www_authenticate: bool = True) -> None:
        """Answer every API request 401 from now on, as for a revoked app (the token endpoint still grants);
        www_authenticate=False leaves out the header (error="invalid_token") Reddit sends with it."""
        self.refuse_api = "invalid_token" if www_authenticate else "bare"

    def restore_api_access(self) -> None:
        self.refuse_api = None

    def set_delay(self, seconds: float) -> None:
        """Delay every API and image response by `seconds` (timeouts, slow networks)."""
        self.delay_s = seconds

    def mark_removed(self, post_id: str, kind: RemovalKind = "moderator") -> None:
        """Remove a post the way Reddit shows it afterwards; kind="deleted" = deleted by its author."""
        post_id = post_id.removeprefix("t3_")
        if post_id not in self._posts:
            raise KeyError(f"unknown post id {post_id}")
        with self._lock:
            self._removed[post_id] = kind

    def override_fields(self, post_id: str, **fields: Any) -> None:
        """Serve these field values in the post's t3 `data` (malformed records); DROP removes a field."""
        post_id = post_id.removeprefix("t3_")
        if post_id not in self._posts:
            raise KeyError(f"unknown post id {post_id}")
        with self._lock:
            self._overrides.setdefault(post_id, {}).update(fields)

    def delete_account(self, author: str) -> None:
        """The author deleted their account: posts stay up as "[deleted]", the account lookup ends."""
        with self._lock:
            self._deleted_accounts.add(author)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def reset_rate_limit(self) -> None:
        with self._lock:
            self._window_started = None
            self._used = 0

    def requests_to(self, prefix: str) -> list[str]:
        with self._lock:
            return [path for path in self.requests_log if path.startswith(prefix)]

    # serving
    def _handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> _Reply:
        with self._lock:
            self.requests_log.append(raw_path)
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/").removesuffix(".json")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if path == "/api/v1/access_token":
            if method != "POST":
                return _error(405, "Method Not Allowed")
            return self._access_token(headers, body)
        if self.delay_s:
            time.sleep(self.delay_s)
        if path.startswith("/i/") and method in ("GET", "HEAD"):
            return self._image(path)
        if self.refuse_api == "bare":
            return _error(401, "Unauthorized")
        if not self._authorized(headers) or self.refuse_api is not None:
            return _error(
                401, "Unauthorized", headers={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'}
            )
        fault = self._next_fault()
        rate_headers, retry_after = self._count_request()
        if fault is not None and fault.hold_s:
            time.sleep(fault.hold_s)
        if fault is not None and fault.status is not None:
            reply = self._fault_reply(fault, rate_headers)
        elif retry_after is not None:
            reply = _error(429, "Too Many Requests", headers={**rate_headers, "Retry-After": str(retry_after)})
        else:
            reply = self._route(method, path, query)
            reply.headers.update(rate_headers)
        with self._lock:
            self.statuses[reply.status] += 1
        return reply

    def _route(self, method: str, path: str, query: dict[str, str]) -> _Reply:
        if method not in ("GET", "HEAD"):
            return _error(405, "Method Not Allowed")
        segments = path.strip("/").split("/")
        if len(segments) == 3 and segments[0] == "r" and segments[2] == "new":
            return self._listing_new(segments[1], query)
        if len(segments) == 3 and segments[0] == "r" and segments[2] == "about":
            return self._about(segments[1])
        if path == "/api/info":
            return self._info(query)
        if path == "/api/user_data_by_account_ids":
            return self._user_data(query)
        return _error(404, "Not Found")

    def _access_token(self, headers: Any, body: bytes) -> _Reply:
        client_id, client_secret = _basic_auth(headers.get("Authorization"))
        if client_id != self.client_id or client_secret != self.client_secret:
            return _error(401, "Unauthorized")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
        grant = form.get("grant_type")
        if grant == "password":
            if self.username is not None and (form.get("username"), form.get("password")) != (
                self.username,
                self.password,
            ):
                return _json_reply(200, {"error": "invalid_grant"})
        elif grant not in ("client_credentials", "https://oauth.reddit.com/grants/installed_client"):
            return _json_reply(200, {"error": "unsupported_grant_type"})
        token = "fake-" + base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_s
        return _json_reply(
            200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_s, "scope": "*"}
        )

    def _authorized(self, headers: Any) -> bool:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            expiry = self._tokens.get(token.strip())
        return expiry is not None and expiry > time.monotonic()

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _count_request(self) -> tuple[dict[str, str], int | None]:
        """Rate-limit headers for this request, and Retry-After seconds when it is over budget."""
        with self._lock:
            now = time.monotonic()
            if self._window_started is None or now - self._window_started >= self.window_s:
                self._window_started, self._used = now, 0
            self._used += 1
            left_s = max(self.window_s - (now - self._window_started), 0.0)
            remaining = max(self.rate_limit_per_window - self._used, 0)
            headers = {
                "x-ratelimit-used": str(self._used),
                "x-ratelimit-remaining": f"{float(remaining):.1f}",
                # whole seconds, truncated: Reddit answers reset 0 while the window still runs
                # (prawcore#198), so a client must not take it as the exact end
                "x-ratelimit-reset": str(int(left_s)),
            }
            over = self._used > self.rate_limit_per_window
            return headers, (max(math.ceil(left_s), 1) if over else None)

    @staticmethod
    def _fault_reply(fault: _Fault, rate_headers: dict[str, str]) -> _Reply:
        status = fault.status or 200
        if fault.body == "invalid_json":
            body = b'{"kind": "Listing", "data": {"after": null, "dist": 3, "children": [{"kind": "t3", "da'
            return _Reply(status, body, "application/json; charset=UTF-8", dict(rate_headers))
        if fault.body == "html":
            return _Reply(status, _CDN_ERROR_PAGE.encode(), "text/html; charset=UTF-8")
        if status == 429:
            headers = dict(rate_headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return _error(429, "Too Many Requests", headers=headers)
        if status in (502, 503, 504):
            page = f"<html><body><h1>{status} Service Unavailable</h1>all servers are busy</body></html>"
            return _Reply(status, page.encode(), "text/html; charset=UTF-8")
        return _error(status, "fault injected")

    def _image(self, path: str) -> _Reply:
        name = path.removeprefix("/i/")
        post_id = name.removesuffix(".jpg")
        data = self._posts.get(post_id)
        if not name.endswith(".jpg") or data is None or not _is_image_post(data):
            return _error(404, "Not Found")
        return _Reply(200, render_image(post_id), "image/jpeg", {"Cache-Control": "max-age=86400"})

    def _subreddit_error(self, key: str) -> _Reply | None:
        if key in self.banned_subreddits:
            return _error(404, "Not Found", reason="banned")
        if key in self.private_subreddits:
            return _error(403, "Forbidden", reason="private")
        if key not in self._newest_first:
            return _error(404, "Not Found")
        return None

    def _listing_new(self, subreddit: str, query: dict[str, str]) -> _Reply:
        keys = [s.lower() for s in subreddit.split("+") if s]
        for key in keys:
            if (problem := self._subreddit_error(key)) is not None:
                return problem
        with self._lock:
            removed = set(self._removed)
        ids = [i for key in keys for i in self._newest_first[key] if i not in removed]
        if len(keys) > 1:
            ids.sort(key=lambda i: (float(self._posts[i]["created_utc"]), i), reverse=True)
        ids = ids[: self.listing_cap]
        try:
            limit = int(query.get("limit") or DEFAULT_PAGE)
        except ValueError:
            limit = DEFAULT_PAGE
        limit = min(max(limit, 1), MAX_PAGE)
        after, before = query.get("after"), query.get("before")
        position = {post_id: n for n, post_id in enumerate(ids)}
        if after:
            anchor = position.get(after.removeprefix("t3_"))
            start = anchor + 1 if anchor is not None else len(ids)
            stop = start + limit
        elif before:
            anchor = position.get(before.removeprefix("t3_"))
            stop = anchor if anchor is not None else 0
            start = max(stop - limit, 0)
        else:
            start, stop = 0, limit
        page = ids[start:stop]
        return _json_reply(
            200,
            _listing(
                [self._t3(i) for i in page],
                after=f"t3_{page[-1]}" if page and stop < len(ids) else None,
                before=f"t3_{page[0]}" if page and start > 0 else None,
            ),
        )

    def _about(self, subreddit: str) -> _Reply:
        key = subreddit.lower()
        if (problem := self._subreddit_error(key)) is not None:
            return problem
        name = self._subreddit_names[key]
        oldest = float(self._posts[self._newest_first[key][-1]]["created_utc"])
        fullname = subreddit_fullname_for(name)
        return _json_reply(
            200,
            {
                "kind": "t5",
                "data": {
                    "id": fullname.removeprefix("t5_"),
                    "name": fullname,
                    "display_name": name,
                    "display_name_prefixed": f"r/{name}",
                    "title": name,
                    "url": f"/r/{name}/",
                    "subscribers": self._subscribers[key],
                    "active_user_count": self._subscribers[key] // 500,
                    "created_utc": float(int(oldest) - 86400 * 365),
                    "over18": False,
                    "subreddit_type": "public",
                    "lang": "en",
                    "public_description": f"A fake r/{name} served from an archive sample.",
                    "quarantine": False,
                },
            },
        )

    def _info(self, query: dict[str, str]) -> _Reply:
        fullnames = [f for f in (query.get("id") or "").split(",") if f]
        if len(fullnames) > MAX_PAGE:
            return _error(400, "Bad Request")
        children = [self._t3(f[3:]) for f in fullnames if f.startswith("t3_") and f[3:] in self._posts]
        return _json_reply(200, _listing(children, after=None, before=None))

    def _user_data(self, query: dict[str, str]) -> _Reply:
        fullnames = [f for f in (query.get("ids") or "").split(",") if f]
        if len(fullnames) > MAX_PAGE:
            return _error(400, "Bad Request")
        found: dict[str, dict[str, Any]] = {}
        for fullname in fullnames:
            if fullname not in self._authors:
                continue
            name, posts = self._authors[fullname]
            if name in self._deleted_accounts:
                continue
            rng = random.Random(_digest("karma:" + fullname))
            first_post = min(float(p["created_utc"]) for p in posts)
            found[fullname] = {
                "name": name,
                "created_utc": float(int(first_post) - rng.randint(1, 2000) * 86400),
                "link_karma": sum(max(int(p.get("score") or 0), 0) for p in posts) + rng.randint(1, 5000),
                "comment_karma": rng.randint(0, 50000),
                "profile_img": "https://www.redditstatic.com/avatars/defaults/v2/avatar_default_1.png",
                "profile_color": "",
                "profile_over_18": False,
            }
        if not found:
            return _error(404, "Not Found")
        return _json_reply(200, found)

    def _t3(self, post_id: str) -> dict[str, Any]:
        raw = self._posts[post_id]
        data = _reddit_fields(raw, self._subscribers[str(raw["subreddit"]).lower()])
        if _is_image_post(raw):
            url = f"{self.base_url}/i/{post_id}.jpg"
            width, height = image_size(post_id)
            data["url"] = url
            data["url_overridden_by_dest"] = url
            data["post_hint"] = "image"
            data["thumbnail"] = url
            data["preview"] = {
                "images": [
                    {
                        "id": hashlib.sha1(post_id.encode()).hexdigest()[:16],
                        "source": {"url": url, "width": width, "height": height},
                        "resolutions": [],
                        "variants": {},
                    }
                ],
                "enabled": True,
            }
        with self._lock:
            kind = self._removed.get(post_id)
            overrides = dict(self._overrides.get(post_id, {}))
            account_deleted = data["author"] in self._deleted_accounts
        if account_deleted:
            data["author"] = "[deleted]"
            data.pop("author_fullname", None)
        if kind == "deleted":
            data.update(title="[deleted]", selftext="[deleted]", author="[deleted]", removed_by_category="deleted")
            data.pop("author_fullname", None)
        elif kind is not None:
            data.update(selftext="[removed]" if data["is_self"] else "", removed_by_category=kind)
        for key, value in overrides.items():
            if value is DROP:
                data.pop(key, None)
            else:
                data[key] = value
        return {"kind": "t3", "data": data}


def _reddit_id(post: Mapping[str, Any]) -> str:
    return str(post.get("id") or str(post.get("name") or "").removeprefix("t3_"))


def _is_image_post(data: Mapping[str, Any]) -> bool:
    return not data.get("is_self") and is_image_url(data.get("url"), data.get("domain"))


def _listing(children: list[dict[str, Any]], *, after: str | None, before: str | None) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "before": before,
            "dist": len(children),
            "modhash": None,
            "geo_filter": "",
            "children": children,
        },
    }


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, secret = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve archive posts through a fake Reddit OAuth API.")
    parser.add_argument("--sample", required=True, type=Path, help="NDJSON(.zst) of archive-format posts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--max-posts", type=int, help="read at most this many posts")
    parser.add_argument("--listing-cap", type=int, default=REDDIT_LISTING_CAP)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=600,
        help="requests per window; prawcore spreads its requests evenly over it (raise it for a fast demo)",
    )
    parser.add_argument("--window", type=int, default=600, help="rate-limit window in seconds")
    parser.add_argument("--client-id", default="smpp-test")
    parser.add_argument("--client-secret", default="smpp-secret")
    parser.add_argument(
        "--refuse-api",
        choices=["invalid_token", "bare"],
        help="answer every API request 401, with Reddit's www-authenticate header or without it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    posts = load_posts(args.sample, limit=args.max_posts)
    server = FakeRedditServer(
        posts,
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        listing_cap=args.listing_cap,
        rate_limit_per_window=args.rate_limit,
        window_s=args.window,
        refuse_api=args.refuse_api,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        if args.pidfile:
            args.pidfile.parent.mkdir(parents=True, exist_ok=True)
            args.pidfile.write_text(f"{os.getpid()}\n")
        print(server.base_url, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if args.pidfile:
                args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
