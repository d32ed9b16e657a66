"""The live source: Reddit's OAuth API through PRAW.

Every request (one listing page, one /api/info batch, one author batch) goes through one
retry policy: a 429 waits Retry-After (else the rate-limit reset) up to
`max_429_retries` times; 5xx and timeouts, which prawcore already retries twice, get a
few more tries with bounded backoff; a rejected credential fails at once with a message
naming the settings to fix and never the secret.
"""

from __future__ import annotations

import configparser
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import prawcore
import requests
from tenacity import RetryCallState, Retrying, retry_base, stop_never

from smpp.settings import RedditSettings, Settings
from smpp.sources.records import AuthorRecord, PostRecord

if TYPE_CHECKING:
    import praw

log = logging.getLogger(__name__)

T = TypeVar("T")
ScrapeStatus = Literal["ok", "missing", "private", "banned", "gap"]

BATCH_SIZE = 100  # Reddit's cap for a listing page, /api/info and user_data_by_account_ids
DEFAULT_MAX_429_RETRIES = RedditSettings.model_fields["max_429_retries"].default
SERVER_ERROR_RETRIES = 2  # on top of prawcore's own two retries
MAX_BACKOFF_S = 30.0
MAX_429_WAIT_S = 610.0  # Reddit's rate-limit window is 600 s
RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 522})
NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

CREDENTIAL_SETTINGS = "SMPP_REDDIT__CLIENT_ID / SMPP_REDDIT__CLIENT_SECRET (or SMPP_REDDIT__SITE)"


class RedditConfigError(RuntimeError):
    """Reddit credentials are missing or the praw.ini site cannot be used."""


class RedditAuthError(RuntimeError):
    """Reddit rejected the configured credentials."""


@dataclass
class ScrapeResult:
    posts: list[PostRecord]
    subreddit: str
    status: ScrapeStatus
    uncovered_span: tuple[int, int] | None  # [start, end) the listing could not reach
    subscribers: int | None
    requests: int


def make_reddit(settings: Settings) -> "praw.Reddit":
    """A read-only (or script, with username/password) PRAW client from settings.reddit."""
    import praw
    from praw.exceptions import MissingRequiredAttributeException

    cfg = settings.reddit
    kwargs: dict[str, Any] = {
        "user_agent": cfg.user_agent,
        "check_for_updates": False,
        "requestor_kwargs": {"timeout": cfg.timeout_s},
    }
    for name in ("client_id", "client_secret", "username", "password", "oauth_url", "reddit_url", "short_url"):
        value = getattr(cfg, name)
        if value:
            kwargs[name] = value
    if not cfg.site and not (cfg.client_id and cfg.client_secret):
        raise RedditConfigError(
            "No Reddit API credentials configured: set SMPP_REDDIT__CLIENT_ID and "
            "SMPP_REDDIT__CLIENT_SECRET, or SMPP_REDDIT__SITE to a praw.ini section "
            "(or use source=archive)."
        )
    try:
        reddit = praw.Reddit(cfg.site, **kwargs) if cfg.site else praw.Reddit(**kwargs)
    except (configparser.Error, MissingRequiredAttributeException) as exc:
        raise RedditConfigError(
            f"Reddit client cannot be configured ({type(exc).__name__}); check "
            f"SMPP_REDDIT__SITE={cfg.site!r} in praw.ini or set {CREDENTIAL_SETTINGS}."
        ) from None
    if not reddit.config.client_secret:
        raise RedditConfigError(
            f"The praw.ini site {cfg.site!r} has no client_secret; set it there or set {CREDENTIAL_SETTINGS}."
        )
    return reddit


def scrape_new(
    reddit: "praw.Reddit",
    subreddit: str,
    start_utc: int,
    end_utc: int,
    *,
    limit: int,
    cap_floor: int = 900,
    max_429_retries: int = DEFAULT_MAX_429_RETRIES,
) -> ScrapeResult:
    """Posts of r/`subreddit` created in [start_utc, end_utc), paging /new newest first."""
    from praw.const import API_PATH

    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if end_utc <= start_utc:
        raise ValueError(f"empty interval [{start_utc}, {end_utc})")
    call = _Caller(max_429_retries)
    try:
        about = call(f"r/{subreddit}/about", lambda: reddit.get(API_PATH["subreddit_about"].format(subreddit=subreddit)))
    except prawcore.ResponseException as exc:
        return _unavailable(subreddit, exc, call.requests)
    raw_subscribers = vars(about).get("subscribers")
    subscribers = int(raw_subscribers) if raw_subscribers is not None else None

    listing_path = API_PATH["subreddit"].format(subreddit=subreddit) + "new"
    kept: dict[str, PostRecord] = {}
    seen = 0
    oldest_seen: int | None = None
    reached_start = False
    after: str | None = None
    while seen < limit and not reached_start:
        params: dict[str, Any] = {"limit": min(BATCH_SIZE, limit - seen)}
        if after:
            params["after"] = after
        try:
            listing = call(f"r/{subreddit}/new", lambda: reddit.get(listing_path, params=params))
        except prawcore.ResponseException as exc:
            return _unavailable(subreddit, exc, call.requests)
        observed_at = int(time.time())
        children = list(listing)
        for submission in children:
            seen += 1
            record = _to_record(submission, observed_at)
            if record is None:
                continue
            oldest_seen = record.created_utc if oldest_seen is None else min(oldest_seen, record.created_utc)
            if record.created_utc < start_utc:
                reached_start = True
            elif record.created_utc < end_utc:
                kept[record.id] = record
        after = getattr(listing, "after", None)
        if not children or not after:
            break

    status: ScrapeStatus = "ok"
    uncovered: tuple[int, int] | None = None
    # A listing that ends early with few items is complete (the subreddit has nothing older);
    # only one cut at our limit or near Reddit's ~1000-item cap leaves time uncovered.
    truncated = seen >= limit or seen >= cap_floor
    if truncated and not reached_start and oldest_seen is not None and min(oldest_seen, end_utc) > start_utc:
        status, uncovered = "gap", (start_utc, min(oldest_seen, end_utc))
        log.warning(
            "r/%s: /new ran out after %d posts before reaching the interval start; [%d, %d) is uncovered",
            subreddit, seen, *uncovered,
        )
    posts = sorted(kept.values(), key=lambda p: (p.created_utc, p.id))
    log.info("r/%s: %d posts in [%d, %d) from %d listed, %d requests", subreddit, len(posts), start_utc, end_utc, seen, call.requests)
    return ScrapeResult(posts, subreddit, status, uncovered, subscribers, call.requests)


def refresh_posts(
    reddit: "praw.Reddit", post_ids: Sequence[str], *, max_429_retries: int = DEFAULT_MAX_429_RETRIES
) -> list[PostRecord]:
    """Current state of posts via /api/info (100 per request); removals come back removed=True."""
    fullnames = _unique(f"t3_{str(i).removeprefix('t3_')}" for i in post_ids)
    call = _Caller(max_429_retries)
    records: list[PostRecord] = []
    for batch in _batches(fullnames):
        submissions = call("api/info", lambda: list(reddit.info(fullnames=batch)))
        observed_at = int(time.time())
        records.extend(r for r in (_to_record(s, observed_at) for s in submissions) if r is not None)
    if len(records) < len(fullnames):
        log.info("refresh: %d of %d posts no longer exist on Reddit", len(fullnames) - len(records), len(fullnames))
    return records


def fetch_authors(
    reddit: "praw.Reddit", fullnames: Sequence[str], *, max_429_retries: int = DEFAULT_MAX_429_RETRIES
) -> list[AuthorRecord]:
    """Account age and karma of authors by t2_ fullname (100 per request); unknown ids are omitted."""
    wanted = _unique(f"t2_{str(f).removeprefix('t2_')}" for f in fullnames if f)
    call = _Caller(max_429_retries)
    authors: list[AuthorRecord] = []
    for batch in _batches(wanted):
        partials = call("api/user_data_by_account_ids", lambda: list(reddit.redditors.partial_redditors(batch)))
        observed_at = int(time.time())
        for partial in partials:
            data = vars(partial)
            if not data.get("name"):
                continue
            authors.append(AuthorRecord(
                name=str(data["name"]),
                fullname=data.get("fullname"),
                created_utc=_int_or_none(data.get("created_utc")),
                link_karma=_int_or_none(data.get("link_karma")),
                comment_karma=_int_or_none(data.get("comment_karma")),
                observed_at=observed_at,
            ))
    return authors


def _to_record(submission: Any, observed_at: int) -> PostRecord | None:
    # vars(), not attribute access: a missing attribute makes PRAW fetch the post again.
    data = dict(vars(submission))
    author = data.get("author")
    data["author"] = "[deleted]" if author is None else str(author)
    subreddit = data.get("subreddit")
    data["subreddit"] = getattr(subreddit, "display_name", None) or str(subreddit or "")
    try:
        return PostRecord.from_reddit_json(data, observed_at=observed_at, source="reddit")
    except (ValueError, TypeError) as exc:
        log.warning("skipped a malformed post %r: %s", data.get("id"), exc)
        return None


def _unavailable(subreddit: str, exc: prawcore.ResponseException, requests_made: int) -> ScrapeResult:
    status: ScrapeStatus
    reason = _error_reason(exc)
    if isinstance(exc, prawcore.Redirect) or (isinstance(exc, prawcore.NotFound) and reason != "banned"):
        status = "missing"
    elif reason == "banned":
        status = "banned"
    elif isinstance(exc, prawcore.Forbidden):
        status = "private"  # private, quarantined or gold-only: unreadable to this client
    else:
        raise exc
    log.warning("r/%s is %s (HTTP %s%s); skipped", subreddit, status, exc.response.status_code, f", {reason}" if reason else "")
    return ScrapeResult([], subreddit, status, None, None, requests_made)


def _error_reason(exc: prawcore.ResponseException) -> str | None:
    try:
        body = exc.response.json()
    except ValueError:
        return None
    return str(body.get("reason")) if isinstance(body, Mapping) and body.get("reason") else None


class _RetryBudget(retry_base):
    """Retry 429s up to max_429_retries times and transient server/network errors a few times."""

    def __init__(self, max_429_retries: int):
        self.max_429_retries = max_429_retries
        self.rate_limited = 0
        self.transient = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.outcome is None or not retry_state.outcome.failed:
            return False
        exc = retry_state.outcome.exception()
        if isinstance(exc, prawcore.TooManyRequests):
            self.rate_limited += 1
            return self.rate_limited <= self.max_429_retries
        if _is_transient(exc):
            self.transient += 1
            return self.transient <= SERVER_ERROR_RETRIES
        return False


def _is_transient(exc: BaseException | None) -> bool:
    if isinstance(exc, prawcore.RequestException):
        return isinstance(exc.original_exception, NETWORK_ERRORS)
    if isinstance(exc, prawcore.ResponseException) and not isinstance(exc, prawcore.TooManyRequests):
        return exc.response.status_code in RETRYABLE_STATUSES
    return False


def _wait_seconds(retry_state: RetryCallState) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, prawcore.TooManyRequests):
        headers = exc.response.headers
        for header in ("retry-after", "x-ratelimit-reset"):
            try:
                return min(max(float(headers[header]), 0.0), MAX_429_WAIT_S)
            except (KeyError, TypeError, ValueError):
                continue
    backoff = min(2.0 ** retry_state.attempt_number, MAX_BACKOFF_S)
    return backoff * random.uniform(0.5, 1.0)


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning("%s: %s; retrying in %.1f s (attempt %d)", what, exc, wait, retry_state.attempt_number + 1)

    return before_sleep


class _Caller:
    """Runs one API request under the retry policy and counts the attempts."""

    def __init__(self, max_429_retries: int):
        self.max_429_retries = max_429_retries
        self.requests = 0

    def __call__(self, what: str, request: Callable[[], T]) -> T:
        def attempt() -> T:
            self.requests += 1
            return request()

        retrying = Retrying(
            retry=_RetryBudget(self.max_429_retries),
            wait=_wait_seconds,
            stop=stop_never,  # the retry budget bounds the attempts
            before_sleep=_log_retry(what),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except prawcore.OAuthException as exc:
            raise RedditAuthError(
                f"Reddit refused the OAuth grant ({exc.error}) while requesting {what}: check "
                f"{CREDENTIAL_SETTINGS}, and SMPP_REDDIT__USERNAME / SMPP_REDDIT__PASSWORD for script apps."
            ) from None
        except prawcore.ResponseException as exc:
            if exc.response.status_code != 401:
                raise
            raise RedditAuthError(
                f"Reddit answered 401 Unauthorized while requesting {what}: the client id or "
                f"secret is wrong or revoked; check {CREDENTIAL_SETTINGS}."
            ) from None


def _batches(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield list(items[start : start + BATCH_SIZE])


def _unique(items: Iterator[str] | Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _int_or_none(value: Any) -> int | None:
    return int(float(value)) if value is not None else None
