"""The live source: Reddit's OAuth API through PRAW.

Every request (one listing page, one /api/info batch, one author batch) goes through one
retry policy: a 429 waits Retry-After (else the rate-limit reset) up to
`max_429_retries` times; 5xx, timeouts and unparseable bodies (invalid JSON, an HTML error
page, JSON of the wrong shape), which prawcore retries in part, get a few more tries with
bounded backoff; a rejected credential fails at once with a message naming the settings to
fix and never the secret. What still fails after that is reported, never raised: a
subreddit gets status "error", a refresh batch's ids come back as failed. A malformed
record is skipped, counted by reason and logged; the rest of its page is kept.

Answers are parsed from Reddit's JSON here rather than by PRAW's objector, which turns a
whole page into an exception when one record is odd.

Pacing: prawcore spaces each client's requests from the x-ratelimit headers; RateBudget
adds what it lacks (a new client knows nothing of a spent window; Reddit truncates the
reset header to whole seconds) and _PacedRequestor applies the configured timeout, which
prawcore otherwise replaces with its own 16 s on every API call.
"""

from __future__ import annotations

import configparser
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import prawcore
import requests
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_base, stop_never

from smpp.settings import RedditSettings, Settings
from smpp.sources.records import AuthorRecord, InvalidRecord, PostRecord

if TYPE_CHECKING:
    import praw

log = logging.getLogger(__name__)

T = TypeVar("T")
ScrapeStatus = Literal["ok", "missing", "private", "banned", "gap", "error"]

BATCH_SIZE = 100  # Reddit's cap for a listing page, /api/info and user_data_by_account_ids
DEFAULT_MAX_429_RETRIES = RedditSettings.model_fields["max_429_retries"].default
SERVER_ERROR_RETRIES = 2  # on top of prawcore's own two retries
MAX_BACKOFF_S = 30.0
MAX_429_WAIT_S = 610.0  # Reddit's rate-limit window is 600 s
RATE_WINDOW_S = 600
RESET_SLACK_S = 1.0  # x-ratelimit-reset is truncated: the window may run up to a second longer
MAX_FAILED_BATCHES_IN_A_ROW = 3  # then Reddit is down: report the rest instead of retrying each
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


class MalformedResponse(ValueError):
    """Reddit answered 200 with JSON that is not the expected envelope."""


@dataclass
class ScrapeResult:
    posts: list[PostRecord]
    subreddit: str
    status: ScrapeStatus
    uncovered_span: tuple[int, int] | None  # [start, end) the listing could not reach
    subscribers: int | None
    requests: int
    skipped: dict[str, int] = field(default_factory=dict)  # malformed records by reason
    error: str | None = None  # why status is "error"


@dataclass
class BatchReport:
    """What a refresh_posts / fetch_authors call could not deliver (ids without t3_/t2_ prefix kept as sent)."""

    requested: int = 0
    requests: int = 0
    missing: list[str] = field(default_factory=list)  # absent from Reddit's answer (gone, or never existed)
    malformed: list[str] = field(default_factory=list)  # came back unusable
    failed: list[str] = field(default_factory=list)  # their batch failed after all retries
    skipped: dict[str, int] = field(default_factory=dict)  # unusable records by reason
    errors: list[str] = field(default_factory=list)  # one line per failed batch

    @property
    def not_returned(self) -> list[str]:
        return self.missing + self.malformed + self.failed

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class RateBudget:
    """Reddit's x-ratelimit state as last seen, shared by all clients of one OAuth app in this process.

    prawcore paces each client on its own; a fresh client sends at once, so after another
    client spent the window it would draw a 429. And Reddit truncates x-ratelimit-reset,
    so a spent window is waited out for reset + RESET_SLACK_S.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self.waits = 0
        self.waited_s = 0.0

    def acquire(self) -> None:
        """Wait while the window's budget is spent, then reserve one request."""
        while True:
            with self._lock:
                now = self._clock()
                if self.reset_at is not None and now >= self.reset_at:
                    self.remaining = self.reset_at = None
                if self.remaining is None or self.remaining >= 1:
                    if self.remaining is not None:
                        self.remaining -= 1  # concurrent clients see the reservation
                    return
                wait = (self.reset_at or now) - now
                self.waits += 1
                self.waited_s += wait
            log.info("Reddit rate budget spent; waiting %.1f s for the window to reset", wait)
            self._sleep(wait)

    def update(self, headers: Mapping[str, str]) -> None:
        try:
            remaining = float(headers["x-ratelimit-remaining"])
            reset_s = float(headers["x-ratelimit-reset"])
        except (KeyError, TypeError, ValueError):
            return  # token answers and CDN error pages carry no rate-limit headers
        with self._lock:
            self.remaining = remaining
            self.reset_at = self._clock() + max(reset_s, 0.0) + RESET_SLACK_S


_BUDGETS: dict[tuple[str, str], RateBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def rate_budget(oauth_url: str, client: str) -> RateBudget:
    """The process-wide RateBudget of one OAuth client at one API endpoint."""
    with _BUDGETS_LOCK:
        return _BUDGETS.setdefault((oauth_url, client), RateBudget())


class _PacedRequestor(prawcore.Requestor):
    def __init__(self, *, budget: RateBudget, **kwargs: Any):
        super().__init__(**kwargs)
        self.budget = budget

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        url = str(args[1] if len(args) > 1 else kwargs.get("url", ""))
        api_call = not url.endswith(prawcore.const.ACCESS_TOKEN_PATH)  # token requests are not rate limited
        if api_call:
            self.budget.acquire()
        # prawcore passes timeout=16 on every API call; the configured one must win
        response = super().request(*args, timeout=self.timeout, **kwargs)
        if api_call:
            self.budget.update(response.headers)
        return response


def make_reddit(settings: Settings, *, rate_window_s: int = RATE_WINDOW_S) -> praw.Reddit:
    """A read-only (or script, with username/password) PRAW client from settings.reddit.

    rate_window_s: the rate-limit window prawcore paces over (only a fake API uses another).
    """
    import praw
    from praw.exceptions import MissingRequiredAttributeException

    cfg = settings.reddit
    client_id = _secret(cfg.client_id)
    budget = rate_budget(cfg.oauth_url or "https://oauth.reddit.com", client_id or f"site:{cfg.site}")
    kwargs: dict[str, Any] = {
        "user_agent": cfg.user_agent,
        "check_for_updates": False,
        "window_size": rate_window_s,
        "requestor_class": _PacedRequestor,
        "requestor_kwargs": {"timeout": cfg.timeout_s, "budget": budget},
    }
    for name in ("client_id", "client_secret", "username", "password", "oauth_url", "reddit_url", "short_url"):
        value = _secret(getattr(cfg, name))  # PRAW needs the real values; nothing else gets them
        if value:
            kwargs[name] = value
    if not cfg.site and not (client_id and _secret(cfg.client_secret)):
        raise RedditConfigError(
            "No Reddit API credentials configured: set SMPP_REDDIT__CLIENT_ID and "
            "SMPP_REDDIT__CLIENT_SECRET, or SMPP_REDDIT__SITE to a praw.ini section "
            "(or, for days a dump holds, source=archive or auto with SMPP_ARCHIVE_PATH)."
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


def _secret(value: SecretStr | str | None) -> str | None:
    """The plain value of a SecretStr setting (other settings pass through)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def scrape_new(
    reddit: praw.Reddit,
    subreddit: str,
    start_utc: int,
    end_utc: int,
    *,
    limit: int,
    cap_floor: int = 900,
    max_429_retries: int = DEFAULT_MAX_429_RETRIES,
) -> ScrapeResult:
    """Posts of r/`subreddit` created in [start_utc, end_utc), paging /new newest first.

    Raises only for credentials (RedditAuthError) and an exhausted 429 budget; everything
    else that stops the listing is a status ("missing", "private", "banned", "error").
    """
    from praw.const import API_PATH

    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if end_utc <= start_utc:
        raise ValueError(f"empty interval [{start_utc}, {end_utc})")
    call = _Caller(max_429_retries)
    about_path = API_PATH["subreddit_about"].format(subreddit=subreddit)
    try:
        about = call(f"r/{subreddit}/about", lambda: _thing(reddit.request(method="GET", path=about_path), "t5"))
    except _REQUEST_FAILURES as exc:
        return _failed(subreddit, exc, call.requests, start_utc, end_utc)
    subscribers = _optional_int(about.get("subscribers"))

    listing_path = API_PATH["subreddit"].format(subreddit=subreddit) + "new"
    kept: dict[str, PostRecord] = {}
    skipped: dict[str, int] = {}
    seen = 0
    oldest_seen: int | None = None
    reached_start = False
    after: str | None = None
    while seen < limit and not reached_start:
        params: dict[str, Any] = {"limit": min(BATCH_SIZE, limit - seen)}
        if after:
            params["after"] = after
        what = f"r/{subreddit}/new"
        try:
            children, after = call(
                what, lambda params=params: _listing(reddit.request(method="GET", path=listing_path, params=params))
            )
        except _REQUEST_FAILURES as exc:
            uncovered_end = end_utc if oldest_seen is None else min(oldest_seen, end_utc)
            return _failed(subreddit, exc, call.requests, start_utc, uncovered_end, kept, skipped, subscribers)
        seen += len(children)
        records, _ = _post_records(children, int(time.time()), skipped, what)
        for record in records:
            oldest_seen = record.created_utc if oldest_seen is None else min(oldest_seen, record.created_utc)
            if record.created_utc < start_utc:
                reached_start = True
            elif record.created_utc < end_utc:
                kept[record.id] = record
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
            subreddit,
            seen,
            *uncovered,
        )
    posts = _in_order(kept)
    log.info(
        "r/%s: %d posts in [%d, %d) from %d listed, %d skipped, %d requests",
        subreddit,
        len(posts),
        start_utc,
        end_utc,
        seen,
        sum(skipped.values()),
        call.requests,
    )
    return ScrapeResult(posts, subreddit, status, uncovered, subscribers, call.requests, skipped)


def refresh_posts(
    reddit: praw.Reddit,
    post_ids: Sequence[str],
    *,
    max_429_retries: int = DEFAULT_MAX_429_RETRIES,
    report: BatchReport | None = None,
) -> list[PostRecord]:
    """Current state of posts via /api/info (100 per request); removals come back removed=True.

    Ids that come back missing or malformed, or whose batch failed after all retries, are
    listed in `report` (ids without t3_); only an exhausted 429 budget raises.
    """
    from praw.const import API_PATH

    report = report if report is not None else BatchReport()
    fullnames = _unique(f"t3_{str(i).removeprefix('t3_')}" for i in post_ids)
    report.requested += len(fullnames)
    call = _Caller(max_429_retries)
    records: list[PostRecord] = []
    for batch in _answered_batches(fullnames, report, "api/info"):
        ids = [f.removeprefix("t3_") for f in batch]
        try:
            children, _ = call(
                "api/info",
                lambda batch=batch: _listing(
                    reddit.request(method="GET", path=API_PATH["info"], params={"id": ",".join(batch)})
                ),
            )
        except _REQUEST_FAILURES as exc:
            _batch_failed(report, "api/info", ids, exc)
            continue
        finally:
            report.requests = call.requests
        batch_records, malformed_ids = _post_records(children, int(time.time()), report.skipped, "api/info")
        wanted = set(ids)
        batch_records = [r for r in batch_records if r.id in wanted]
        returned = {r.id for r in batch_records} | set(malformed_ids)
        report.malformed += [i for i in ids if i in set(malformed_ids)]
        report.missing += [i for i in ids if i not in returned]
        records += batch_records
    if report.missing:
        log.info("refresh: %d of %d posts no longer exist on Reddit", len(report.missing), len(fullnames))
    return records


def fetch_authors(
    reddit: praw.Reddit,
    fullnames: Sequence[str],
    *,
    max_429_retries: int = DEFAULT_MAX_429_RETRIES,
    report: BatchReport | None = None,
) -> list[AuthorRecord]:
    """Account age and karma of authors by t2_ fullname (100 per request); unknown ids are omitted.

    Failed batches and malformed entries are listed in `report`; only an exhausted 429 budget raises.
    """
    from praw.const import API_PATH

    report = report if report is not None else BatchReport()
    wanted = _unique(f"t2_{str(f).removeprefix('t2_')}" for f in fullnames if f)
    report.requested += len(wanted)
    call = _Caller(max_429_retries)
    authors: list[AuthorRecord] = []
    what = "api/user_data_by_account_ids"
    for batch in _answered_batches(wanted, report, what):
        try:
            found = call(what, lambda batch=batch: _user_data(reddit, API_PATH["user_by_fullname"], batch))
        except _REQUEST_FAILURES as exc:
            _batch_failed(report, what, batch, exc)
            continue
        finally:
            report.requests = call.requests
        observed_at = int(time.time())
        for fullname in batch:
            data = found.get(fullname)
            if data is None:
                report.missing.append(fullname)
                continue
            try:
                authors.append(_author_record(fullname, data, observed_at))
            except InvalidRecord as exc:
                report.skip(exc.reason)
                report.malformed.append(fullname)
                log.warning("%s: skipped a malformed author: %s", what, exc)
    return authors


_REQUEST_FAILURES = (prawcore.ResponseException, prawcore.RequestException, MalformedResponse)


def _listing(payload: Any) -> tuple[list[Any], str | None]:
    """The children and `after` cursor of a Listing envelope."""
    data = payload.get("data") if isinstance(payload, Mapping) and payload.get("kind") == "Listing" else None
    children = data.get("children") if isinstance(data, Mapping) else None
    if not isinstance(children, list):
        raise MalformedResponse(f"expected a Listing, got {_describe(payload)}")
    after = data.get("after")
    return children, (after if isinstance(after, str) and after else None)


def _thing(payload: Any, kind: str) -> Mapping[str, Any]:
    data = payload.get("data") if isinstance(payload, Mapping) and payload.get("kind") == kind else None
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"expected a {kind}, got {_describe(payload)}")
    return data


def _user_data(reddit: praw.Reddit, path: str, batch: list[str]) -> Mapping[str, Any]:
    try:
        payload = reddit.request(method="GET", path=path, params={"ids": ",".join(batch)})
    except prawcore.NotFound:
        return {}  # none of the ids is a live account
    if not isinstance(payload, Mapping):
        raise MalformedResponse(f"expected accounts by fullname, got {_describe(payload)}")
    return payload


def _describe(payload: Any) -> str:
    if isinstance(payload, Mapping):
        return f"an object with kind={payload.get('kind')!r:.30} and keys {sorted(map(str, payload))[:6]}"
    return f"{type(payload).__name__} {payload!r:.60}"


def _post_records(
    children: list[Any], observed_at: int, skipped: dict[str, int], what: str
) -> tuple[list[PostRecord], list[str]]:
    """Records of a page's t3 children; malformed ones are counted by reason, logged and left out."""
    records: list[PostRecord] = []
    malformed_ids: list[str] = []
    for child in children:
        data = child.get("data") if isinstance(child, Mapping) and child.get("kind") == "t3" else None
        try:
            if not isinstance(data, Mapping):
                raise InvalidRecord("not_a_post", f"listing child is not a t3 post: {child!r:.80}")
            records.append(PostRecord.from_reddit_json(data, observed_at=observed_at, source="reddit"))
        except InvalidRecord as exc:
            skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            post_id = _known_id(data)
            if post_id:
                malformed_ids.append(post_id)
            log.warning("%s: skipped malformed post %s (%s): %s", what, post_id or "of unknown id", exc.reason, exc)
    return records, malformed_ids


def _known_id(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    raw = data.get("id") or str(data.get("name") or "").removeprefix("t3_")
    return str(raw).removeprefix("t3_") or None if raw else None


def _author_record(fullname: str, data: Any, observed_at: int) -> AuthorRecord:
    if not isinstance(data, Mapping) or not data.get("name"):
        raise InvalidRecord("not_an_author", f"account {fullname}: no name in {data!r:.80}")
    values: dict[str, int | None] = {}
    for key in ("created_utc", "link_karma", "comment_karma"):
        try:
            values[key] = _optional_int(data.get(key), strict=True)
        except ValueError:
            raise InvalidRecord(
                f"bad_{key}", f"account {fullname}: {key} is not a number: {data.get(key)!r:.40}"
            ) from None
    return AuthorRecord(name=str(data["name"]), fullname=fullname, observed_at=observed_at, **values)


def _answered_batches(items: list[str], report: BatchReport, what: str) -> Iterator[list[str]]:
    """Batches of 100, until MAX_FAILED_BATCHES_IN_A_ROW have failed in a row: the rest are reported failed."""
    in_a_row = 0
    for start in range(0, len(items), BATCH_SIZE):
        batch = list(items[start : start + BATCH_SIZE])
        if in_a_row >= MAX_FAILED_BATCHES_IN_A_ROW:
            rest = [i.removeprefix("t3_") for i in items[start:]]
            report.failed += rest
            report.errors.append(f"{what}: {len(rest)} ids not tried after {in_a_row} failed batches in a row")
            log.error("%s: %d batches failed in a row; %d ids left unrequested", what, in_a_row, len(rest))
            return
        failed_before = len(report.failed)
        yield batch
        in_a_row = in_a_row + 1 if len(report.failed) > failed_before else 0


def _batch_failed(report: BatchReport, what: str, ids: list[str], exc: Exception) -> None:
    if isinstance(exc, prawcore.TooManyRequests):
        raise exc
    reason = _failure_reason(exc)
    report.failed += ids
    report.errors.append(f"{what}: {reason}")
    log.error("%s: batch of %d ids failed after retries (%s); reported as not refreshed", what, len(ids), reason)


def _failed(
    subreddit: str,
    exc: Exception,
    requests_made: int,
    start_utc: int,
    uncovered_end: int,
    kept: Mapping[str, PostRecord] | None = None,
    skipped: dict[str, int] | None = None,
    subscribers: int | None = None,
) -> ScrapeResult:
    """The result of a listing that a failed request stopped: a status, or re-raised for a spent 429 budget."""
    if isinstance(exc, prawcore.TooManyRequests):
        raise exc
    status: ScrapeStatus
    reason = _error_reason(exc) if isinstance(exc, prawcore.ResponseException) else None
    if isinstance(exc, prawcore.Redirect) or (isinstance(exc, prawcore.NotFound) and reason != "banned"):
        status = "missing"
    elif reason == "banned":
        status = "banned"
    elif isinstance(exc, prawcore.Forbidden):
        status = "private"  # private, quarantined or gold-only: unreadable to this client
    else:
        error = _failure_reason(exc)
        posts = _in_order(kept or {})
        uncovered = (start_utc, uncovered_end) if uncovered_end > start_utc else None
        log.error(
            "r/%s: listing failed after retries (%s); keeping %d posts, [%s) uncovered",
            subreddit,
            error,
            len(posts),
            "" if uncovered is None else f"{uncovered[0]}, {uncovered[1]}",
        )
        return ScrapeResult(
            posts, subreddit, "error", uncovered, subscribers, requests_made, dict(skipped or {}), error
        )
    assert isinstance(exc, prawcore.ResponseException)
    log.warning(
        "r/%s is %s (HTTP %s%s); skipped", subreddit, status, exc.response.status_code, f", {reason}" if reason else ""
    )
    return ScrapeResult([], subreddit, status, None, None, requests_made, dict(skipped or {}))


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, prawcore.BadJSON):
        response = exc.response
        kind = response.headers.get("content-type", "?").split(";")[0]
        return f"HTTP {response.status_code} body is not JSON ({kind}, {len(response.content)} bytes)"
    if isinstance(exc, prawcore.ResponseException):
        return f"HTTP {exc.response.status_code} ({type(exc).__name__})"
    if isinstance(exc, prawcore.RequestException):
        return f"{type(exc.original_exception).__name__}: {exc.original_exception}"
    return f"{type(exc).__name__}: {exc}"


def _in_order(records: Mapping[str, PostRecord]) -> list[PostRecord]:
    return sorted(records.values(), key=lambda p: (p.created_utc, p.id))


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
    if isinstance(exc, (prawcore.BadJSON, MalformedResponse)):
        return True  # an HTML error page or a cut-off body: a proxy or CDN hiccup
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
    backoff = min(2.0**retry_state.attempt_number, MAX_BACKOFF_S)
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
        except KeyError as exc:
            status = _unmapped_auth_status(exc)
            if status is None:
                raise
            raise RedditAuthError(
                f"Reddit answered {status} without a usable www-authenticate header while requesting {what}: "
                f"the credentials were refused (wrong or revoked client id / secret, or a proxy in between); "
                f"check {CREDENTIAL_SETTINGS}."
            ) from None


def _unmapped_auth_status(exc: KeyError) -> str | None:
    """The status line of a 401/403 that prawcore could not map to an exception; None for any other KeyError.

    prawcore picks the exception of a 401/403 by the error named in its www-authenticate header and
    raises a bare KeyError (the status, or the unknown error name) when there is none it knows.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or Path(frames[-1].filename).parent != Path(prawcore.__file__).parent:
        return None
    key = exc.args[0] if exc.args else None
    if isinstance(key, int):
        return f"HTTP {key}"
    return f"HTTP 401/403 (www-authenticate error {str(key)[:40]!r})"


def _unique(items: Iterator[str] | Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _optional_int(value: Any, *, strict: bool = False) -> int | None:
    """int of a number or numeric string; None for None, and for junk unless strict."""
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        if strict:
            raise ValueError(f"not a number: {value!r:.40}") from None
        return None
