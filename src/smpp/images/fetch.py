"""Safe image fetching: SSRF-guarded, size- and time-bounded downloads, normalised JPEG storage.

Storage: ``settings.images_dir / sha[:2] / f"{sha}.jpg"`` where sha is the SHA-256 of the
*stored* bytes (the normalised JPEG), so a file's name verifies its content and the same image
fetched again from any URL maps to the same file. Trap: Pillow's JPEG encoder is deterministic
for one Pillow/libjpeg build, but an upgrade may encode the same source to other bytes, so a
repost fetched after an upgrade can get a new sha (files already stored stay valid).

Columns describe: ``file_bytes``, ``format`` and ``frames`` the downloaded source (format
sniffed from the bytes by Pillow, never from the extension or Content-Type); ``width`` and
``height`` the stored image (after EXIF orientation and the ``max_side`` cap).

SSRF guard: only http/https; before every hop (redirects are followed by hand, at most
``max_redirects``) the host is resolved and refused when any address is private, loopback,
link-local, reserved, multicast, unspecified or otherwise not global, unless the host name is in
``allowed_private_hosts``; an address literal (``http://10.0.0.1/``) is judged as written, with no
lookup at all. ``offline`` skips every host not in ``allowed_private_hosts`` before any lookup.
DNS rebinding: the connection itself resolves again and opens the
socket only to an address it has just checked, so a name that turns private between the check
and the connect is refused, never followed. Limits: environment proxies are ignored
(``trust_env=False``) because a proxy would resolve names itself; an allow-listed host is trusted
whatever it resolves to; TLS certificates are still checked against the host name.

Time bounds: every socket operation is bounded by the (connect, read) timeouts, and a wall
deadline per image (``total_timeout_s``) covers connect, TLS, headers, body, retries and
redirects: socket timeouts restart on every read, so a watchdog timer shuts down the fetch's
sockets when the deadline passes (a server dripping its headers a byte a second is cut off there;
requests reads headers before any code here could look at the clock). DNS lookups are not
interruptible and stay bounded by the system resolver only.

Memory bounds: a decode's peak (every full-size copy, estimated from the header, after JPEG's
draft reduction) must fit ``max_decode_mb``, and all workers' decodes together hold at most
``decode_budget_mb`` (a FIFO byte budget, _DecodeBudget). Downloaded bodies are bounded
separately: ``workers`` x about 2 x ``max_bytes``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import io
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pandas as pd
import requests
import tenacity
from PIL import Image, ImageOps, UnidentifiedImageError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.util import connection as urllib3_connection

from smpp.settings import ImageSettings, Settings
from smpp.storage import atomic_write_bytes

logger = logging.getLogger(__name__)

OK = "ok"
FAILURE_REASONS = (
    "not_http",
    "blocked_address",
    "unresolvable",
    "unreachable",
    "http_error",
    "too_large",
    "empty",
    "not_an_image",
    "truncated",
    "decompression_bomb",
    "too_many_redirects",
    "over_decode_budget",
    "offline",
)
# Formats Reddit and imgur serve; the rest of Pillow's plugins (EPS runs Ghostscript, exotic
# scientific formats) are a needless attack surface for untrusted bytes.
DECODE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "AVIF")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
JPEG_QUALITY = 90
CHUNK_BYTES = 64 * 1024
REQUEST_HEADERS = {
    "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8",
    # Images gain nothing from transfer compression, and this keeps bytes read == bytes sent.
    "Accept-Encoding": "identity",
}


@dataclass(frozen=True)
class FetchedImage:
    post_id: str
    url: str
    status: str  # "ok" or one of FAILURE_REASONS
    sha256: str | None
    path: str | None
    width: int | None
    height: int | None
    file_bytes: int | None
    format: str | None
    frames: int | None


FETCHED_DTYPES = {
    "post_id": "string",
    "url": "string",
    "status": "string",
    "sha256": "string",
    "path": "string",
    "width": "Int64",
    "height": "Int64",
    "file_bytes": "Int64",
    "format": "string",
    "frames": "Int64",
}


class FetchFailure(Exception):
    """A counted, expected failure of one image; `reason` is one of FAILURE_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BlockedAddressError(Exception):
    """Raised at connect time; deliberately not an OSError so urllib3 neither wraps nor retries it."""


class _ServerError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


# ---------------------------------------------------------------- address guard


def is_blocked_ip(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _literal_address_infos(host: str, port: int) -> list[tuple] | None:
    """getaddrinfo-shaped results for an IP address literal, None for a name: a literal needs no
    lookup, and judging it as written keeps a redirect to 10.0.0.1 off the resolver entirely."""
    try:
        ip = ipaddress.ip_address(_normal_host(host))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(ip), port, 0, 0))]
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(ip), port))]


def checked_addresses(host: str, port: int, allowed_hosts: frozenset[str]) -> list[tuple]:
    """getaddrinfo results for host, or BlockedAddressError if any is private (socket.gaierror
    when the name does not resolve)."""
    infos = _literal_address_infos(host, port)
    if infos is None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if _normal_host(host) in allowed_hosts:
        return infos
    blocked = sorted({info[4][0] for info in infos if is_blocked_ip(info[4][0])})
    if blocked:
        raise BlockedAddressError(f"{host} resolves to non-public address(es) {blocked}")
    return infos


class _Watchdog:
    """Shuts down every socket of one image fetch once its wall deadline passes.

    A socket timeout restarts on every read, so a server sending one header byte per second holds
    a blocked read forever; shutdown() from the timer thread ends that read at once (EOF), whatever
    phase (status line, headers, body) it is in. download() then reports the fetch as past its
    deadline, never as a short body. The TLS handshake needs no watchdog: CPython bounds the whole
    handshake by the socket timeout (the connect timeout, capped at the time left).
    """

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not self.fired:
                if not any(known is sock for known in self._sockets):
                    self._sockets.append(sock)
                return
        _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets = []


def _shutdown(sock: socket.socket) -> None:
    try:
        # the plain socket's shutdown, also for an SSLSocket: its own shutdown() would tear down
        # the TLS object under the worker thread's read
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


# The watchdog of the fetch running on this thread: connections are opened (and reused) on the
# thread that asked for them, so this is how a pooled connection finds the current deadline.
_fetch_context = threading.local()


def _watch(sock: socket.socket | None) -> None:
    watchdog: _Watchdog | None = getattr(_fetch_context, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(sock)


def _guarded_connection_class(base: type[HTTPConnection], allowed_hosts: frozenset[str]) -> type:
    class GuardedConnection(base):  # type: ignore[valid-type, misc]
        """Connects only to an address checked in the same resolution (defeats DNS rebinding)."""

        io_socket: socket.socket | None = None

        def connect(self) -> None:
            super().connect()
            # http.client drops .sock on "Connection: close" while the body still streams from it.
            self.io_socket = self.sock

        def request(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            _watch(self.sock)  # a reused keep-alive connection joins this fetch's watchdog
            super().request(*args, **kwargs)

        def _new_conn(self) -> socket.socket:
            try:
                infos = checked_addresses(self.host, self.port, allowed_hosts)
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            error: Exception = NewConnectionError(self, f"no address for {self.host}")
            for info in infos:
                try:
                    sock = urllib3_connection.create_connection(
                        (info[4][0], self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                    _watch(sock)  # plain HTTP; TLS wraps (detaches) it and request() adds the TLS socket
                    return sock
                except TimeoutError as exc:
                    error = ConnectTimeoutError(self, f"connect to {self.host} timed out: {exc}")
                except OSError as exc:
                    error = NewConnectionError(self, f"failed to connect to {self.host}: {exc}")
            raise error

    GuardedConnection.__name__ = f"Guarded{base.__name__}"
    return GuardedConnection


class GuardedAdapter(HTTPAdapter):
    """requests adapter whose connection pools open sockets only to checked public addresses."""

    def __init__(self, allowed_hosts: frozenset[str], **kwargs) -> None:
        self.allowed_hosts = allowed_hosts  # set before super().__init__, which builds the pools
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_conn = _guarded_connection_class(HTTPConnection, self.allowed_hosts)
        https_conn = _guarded_connection_class(HTTPSConnection, self.allowed_hosts)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


def _allowed_hosts(image_settings: ImageSettings) -> frozenset[str]:
    return frozenset(_normal_host(h) for h in image_settings.allowed_private_hosts)


def _new_session(image_settings: ImageSettings, user_agent: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # a proxy from the environment would resolve names past the guard
    adapter = GuardedAdapter(
        _allowed_hosts(image_settings),
        pool_connections=16,
        pool_maxsize=max(1, image_settings.per_host_concurrency),
    )
    for prefix in list(session.adapters):
        session.mount(prefix, adapter)
    session.headers.update(REQUEST_HEADERS)
    session.headers["User-Agent"] = user_agent
    return session


# Dead hosts are common (archived imgur links): remember failed lookups briefly so a day with
# hundreds of links to one dead host pays for one DNS timeout, not hundreds.
DNS_FAILURE_TTL_S = 300.0
_dns_failures: dict[str, float] = {}
_dns_failures_lock = threading.Lock()


def _recent_dns_failure(host: str) -> bool:
    with _dns_failures_lock:
        failed_at = _dns_failures.get(host)
        return failed_at is not None and time.monotonic() - failed_at < DNS_FAILURE_TTL_S


def _blocked_literal(host: str) -> bool:
    """A private address literal, judged as written: offline or not, it is a blocked_address."""
    try:
        return is_blocked_ip(host)
    except ValueError:
        return False  # a name


def check_url(url: str, allowed_hosts: frozenset[str], offline: bool = False) -> str:
    """The host to fetch from, after the scheme and address checks; FetchFailure otherwise.

    offline: only allowed_hosts may be contacted; the rest fail as "offline" here, decided from
    the URL text before the DNS-failure cache or any lookup."""
    try:
        split = urlsplit(url)
        port = split.port
        host = split.hostname
    except ValueError as exc:
        raise FetchFailure("not_http", f"malformed URL {url!r}: {exc}") from exc
    scheme = split.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchFailure("not_http", f"scheme {scheme!r} in {url!r}")
    if not host:
        raise FetchFailure("not_http", f"no host in {url!r}")
    if offline and _normal_host(host) not in allowed_hosts and not _blocked_literal(_normal_host(host)):
        raise FetchFailure("offline", f"{host} is not an allowed host and images.offline is set")
    if _recent_dns_failure(host):
        raise FetchFailure("unresolvable", f"{host}: lookup failed moments ago")
    try:
        checked_addresses(host, port or (443 if scheme == "https" else 80), allowed_hosts)
    except BlockedAddressError as exc:
        raise FetchFailure("blocked_address", str(exc)) from exc
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        if isinstance(exc, socket.gaierror):
            with _dns_failures_lock:
                _dns_failures[host] = time.monotonic()
        raise FetchFailure("unresolvable", f"{host}: {exc}") from exc
    return _normal_host(host)


# ---------------------------------------------------------------- download


class _HostLimiter:
    """One semaphore per host, so many workers never pile onto one server."""

    def __init__(self, per_host: int) -> None:
        self._per_host = max(1, per_host)
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def hold(self, host: str) -> Iterator[None]:
        with self._lock:
            semaphore = self._semaphores.setdefault(host, threading.BoundedSemaphore(self._per_host))
        with semaphore:
            yield


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchFailure("unreachable", "wall deadline per image passed")
    return left


def _request(session: requests.Session, url: str, image_settings: ImageSettings, deadline: float) -> requests.Response:
    """GET with retries on connection errors, timeouts and 5xx (bounded exponential backoff)."""

    def attempt() -> requests.Response:
        left = _time_left(deadline)
        timeout = (
            min(image_settings.connect_timeout_s, left),
            min(image_settings.read_timeout_s, left),
        )
        response = session.get(url, stream=True, allow_redirects=False, timeout=timeout)
        if response.status_code >= 500:
            response.close()  # no draining: a hostile 5xx body must not be read
            raise _ServerError(response.status_code)
        return response

    def no_time_for_next(state: tenacity.RetryCallState) -> bool:
        return time.monotonic() + (state.upcoming_sleep or 0.0) >= deadline

    def transient(exc: BaseException) -> bool:
        if isinstance(exc, requests.exceptions.SSLError):  # a bad certificate stays bad
            return False
        return isinstance(exc, (_ServerError, requests.ConnectionError, requests.Timeout))

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(transient),
        stop=tenacity.stop_any(tenacity.stop_after_attempt(image_settings.max_retries + 1), no_time_for_next),
        wait=tenacity.wait_exponential(
            multiplier=image_settings.retry_backoff_s, max=image_settings.retry_backoff_max_s
        ),
        reraise=True,
    )
    return retrying(attempt)


def _set_read_timeout(response: requests.Response, seconds: float) -> None:
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "io_socket", None) or getattr(connection, "sock", None)
    if sock is not None and sock.fileno() != -1:
        sock.settimeout(seconds)


def _read_body(response: requests.Response, image_settings: ImageSettings, deadline: float) -> bytes:
    """The body, aborting as soon as it passes max_bytes or the wall deadline."""
    max_bytes = image_settings.max_bytes
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise FetchFailure("too_large", f"Content-Length {declared} > {max_bytes}")
    body = bytearray()
    while True:
        # read1 returns what one socket read gives, so the deadline is checked between reads.
        _set_read_timeout(response, min(image_settings.read_timeout_s, _time_left(deadline)))
        chunk = response.raw.read1(CHUNK_BYTES, decode_content=True)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            raise FetchFailure("too_large", f"body passed {max_bytes} bytes")


def download(
    session: requests.Session,
    url: str,
    image_settings: ImageSettings,
    limiter: _HostLimiter,
) -> bytes:
    """Bytes of `url` after the SSRF checks on every hop; FetchFailure for every expected failure."""
    allowed = _allowed_hosts(image_settings)
    deadline = time.monotonic() + image_settings.total_timeout_s
    watchdog = _Watchdog(deadline)
    _fetch_context.watchdog = watchdog
    try:
        return _download_hops(session, url, image_settings, limiter, allowed, deadline, watchdog)
    except FetchFailure as failure:
        # a read the watchdog cut short fails as whatever it saw (a short body, a bad header)
        if watchdog.fired and failure.reason in ("truncated", "http_error"):
            raise FetchFailure("unreachable", f"wall deadline per image passed ({failure})") from None
        raise
    except Exception as exc:
        if watchdog.fired:
            raise FetchFailure("unreachable", f"wall deadline per image passed ({exc})") from exc
        raise
    finally:
        _fetch_context.watchdog = None
        watchdog.cancel()


def _download_hops(
    session: requests.Session,
    url: str,
    image_settings: ImageSettings,
    limiter: _HostLimiter,
    allowed: frozenset[str],
    deadline: float,
    watchdog: _Watchdog,
) -> bytes:
    current = url
    for hop in range(image_settings.max_redirects + 1):
        host = check_url(current, allowed, image_settings.offline)
        with limiter.hold(host):
            try:
                response = _request(session, current, image_settings, deadline)
            except _ServerError as exc:
                raise FetchFailure("http_error", f"{exc} after retries for {current}") from exc
            with response:
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchFailure("http_error", f"redirect without Location from {current}")
                    if hop == image_settings.max_redirects:
                        raise FetchFailure("too_many_redirects", f"more than {hop} redirects from {url}")
                    current = urljoin(current, location)
                    continue
                if not 200 <= response.status_code < 300:
                    raise FetchFailure("http_error", f"HTTP {response.status_code} for {current}")
                try:
                    body = _read_body(response, image_settings, deadline)
                    if watchdog.fired:  # the socket was shut: the body may be cut short
                        raise FetchFailure("unreachable", "wall deadline per image passed")
                    return body
                except (ReadTimeoutError, requests.Timeout, TimeoutError) as exc:
                    raise FetchFailure("unreachable", f"read timed out: {exc}") from exc
                except (ProtocolError, Urllib3HTTPError, requests.RequestException, OSError) as exc:
                    raise FetchFailure("truncated", f"body cut off: {exc}") from exc
    raise AssertionError("the redirect loop always returns or raises")


# ---------------------------------------------------------------- decode and store


@dataclass(frozen=True)
class NormalisedImage:
    jpeg: bytes
    width: int
    height: int
    format: str
    frames: int


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparency composited onto white (a plain convert would turn it black).
    An RGB image comes back as itself: a copy would double the peak for nothing."""
    if image.mode == "RGB":
        return image
    if not _has_alpha(image):
        return image.convert("RGB")
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _decode_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(name for name in DECODE_FORMATS if name in Image.OPEN)  # AVIF is build-dependent


MB = 1024 * 1024
EXIF_ORIENTATION = 0x0112
# Pillow's own table (ImageOps.exif_transpose), for orienting the already capped image.
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _bytes_per_pixel(mode: str) -> int:
    # Pillow keeps "1", "L" and "P" in 1 byte a pixel, "I;16*" in 2 and every other mode (RGB too) in 4.
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def decode_cost_bytes(
    width: int,
    height: int,
    mode: str,
    image_format: str,
    max_side: int,
    *,
    alpha: bool,
    transpose_first: bool,
) -> int:
    """Peak bytes normalise_image holds for one width x height image in `mode` (sizes after draft).

    Stage 1: the decoded source, plus the largest full-size working copy: the library's own
    output buffer (WebP, AVIF), the transposed copy, or the RGB conversion (alpha: an RGBA copy,
    the white canvas and the alpha mask). Stage 2: the RGB image, plus thumbnail's reduced and
    resized copies (at most (4 max_side)^2 pixels after its integer reduce, and the output).
    """
    pixels = width * height
    source = pixels * _bytes_per_pixel(mode)
    if mode == "RGB":
        convert = 0
    elif alpha:
        convert = pixels * ((0 if mode == "RGBA" else 4) + 4 + 1)
    elif mode in ("1", "L", "P", "CMYK", "YCbCr"):
        convert = pixels * 4
    else:
        convert = pixels * 8  # other modes may convert through an intermediate mode
    decoder = pixels * 4 if image_format in ("WEBP", "AVIF") else 0
    transposed = source if transpose_first else 0
    resize = 4 * min(pixels, 16 * max_side * max_side) + 4 * max_side * max_side
    return max(source + max(decoder, transposed, convert), 4 * pixels + resize)


# Freed decode buffers stay in the worker thread's own glibc malloc arena, not given back to the
# OS: with one arena per thread, RSS grew by about one large image per worker although the budget
# held the live bytes (4 workers, 4 x 81 MB images one at a time: 175 MB peak, 78 MB with one
# thread). malloc_trim(0) returns every arena's free pages; called after large decodes only.
TRIM_AFTER_BYTES = 32 * MB


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def _return_freed_memory(nbytes: int) -> None:
    trim = _malloc_trim() if nbytes >= TRIM_AFTER_BYTES else None
    if trim is not None:
        trim(0)


class _DecodeBudget:
    """Decode working memory shared by one stage's workers, in bytes. Waiters are served in
    arrival order, so a large image waits for room but is never starved by a stream of small ones."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.used = 0
        self.peak = 0  # the most ever held at once (for tests and benchmarks)
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.total)  # callers refuse larger images; never wait forever
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or self.used + nbytes > self.total:
                self._cond.wait()
            self._queue.popleft()
            self.used += nbytes
            self.peak = max(self.peak, self.used)
            self._cond.notify_all()  # the next in line may fit as well
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


def normalise_image(
    data: bytes,
    max_side: int,
    max_decode_bytes: int | None = None,
    budget: _DecodeBudget | None = None,
) -> NormalisedImage:
    """Decode untrusted bytes (first frame), orient, cap the longest side, re-encode as JPEG.

    Refused as "over_decode_budget", from the header alone, when the decode would need more than
    max_decode_bytes (default: ImageSettings' max_decode_mb); the decode itself runs holding its
    estimated bytes of `budget`, when given.
    """
    if not data:
        raise FetchFailure("empty", "zero bytes")
    if max_decode_bytes is None:
        max_decode_bytes = ImageSettings.model_fields["max_decode_mb"].default * MB
    try:
        with Image.open(io.BytesIO(data), formats=_decode_formats()) as image:
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and image.width * image.height > limit:
                # Pillow only warns between 1x and 2x the limit; both count as a bomb here.
                raise FetchFailure("decompression_bomb", f"{image.width}x{image.height} > {limit} pixels")
            source_format = str(image.format)
            frames = int(getattr(image, "n_frames", 1))
            image.seek(0)
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
            # EXIF read at open (JPEG, WebP): orient the full image first, as before (same bytes
            # stored for the same source). Otherwise reading it now would decode (PNG): orient the
            # capped image after load instead.
            early = image.getexif().get(EXIF_ORIENTATION, 1) if "exif" in image.info else 1
            transpose_first = early in ORIENTATION_TRANSPOSE
            cost = decode_cost_bytes(
                image.width,
                image.height,
                image.mode,
                source_format,
                max_side,
                alpha=_has_alpha(image),
                transpose_first=transpose_first,
            )
            if cost > max_decode_bytes:
                raise FetchFailure(
                    "over_decode_budget",
                    f"{image.width}x{image.height} {image.mode} {source_format} needs ~{cost // MB} MB "
                    f"to decode > {max_decode_bytes // MB} MB",
                )
            with budget.hold(cost) if budget is not None else nullcontext():
                image.load()
                if transpose_first:
                    ImageOps.exif_transpose(image, in_place=True)
                    late = 1
                else:
                    late = image.getexif().get(EXIF_ORIENTATION, 1)
                rgb = _to_rgb(image)
                if rgb is not image:
                    image.close()  # free the decoded source before resizing
                rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                if late in ORIENTATION_TRANSPOSE:
                    rgb = rgb.transpose(ORIENTATION_TRANSPOSE[late])
                buffer = io.BytesIO()
                rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)  # no EXIF copied: GPS etc. stripped
                _return_freed_memory(cost)  # the full-size copies are gone; before the next holder
    except FetchFailure:
        raise
    except Image.DecompressionBombError as exc:
        raise FetchFailure("decompression_bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise FetchFailure("not_an_image", f"not a {'/'.join(DECODE_FORMATS)} image") from exc
    except Exception as exc:  # any decoder error on untrusted bytes is a bad file, not a bug here
        raise FetchFailure("truncated", f"{type(exc).__name__}: {exc}") from exc
    return NormalisedImage(buffer.getvalue(), rgb.width, rgb.height, source_format, frames)


def image_path(settings: Settings, sha256: str) -> Path:
    return settings.images_dir / sha256[:2] / f"{sha256}.jpg"


def store_image(settings: Settings, jpeg: bytes) -> tuple[str, Path]:
    """Content-addressed write; an existing file (same sha, same bytes) is left alone."""
    sha = hashlib.sha256(jpeg).hexdigest()
    path = image_path(settings, sha)
    if not path.exists():
        atomic_write_bytes(path, jpeg)
    return sha, path


# ---------------------------------------------------------------- batch


def _failed(url: str, reason: str) -> FetchedImage:
    return FetchedImage("", url, reason, None, None, None, None, None, None, None)


def fetch_one(
    settings: Settings,
    session: requests.Session,
    url: str | None,
    limiter: _HostLimiter,
    budget: _DecodeBudget | None = None,
) -> FetchedImage:
    """Fetch, normalise and store one image; never raises for bad input or a bad server."""
    if url is None or not str(url).strip():
        logger.warning("image fetch failed: not_http (no URL)")
        return _failed("", "not_http")
    url = str(url).strip()
    try:
        data = download(session, url, settings.images, limiter)
        images = settings.images
        max_decode_mb = min(images.max_decode_mb, images.decode_budget_mb)
        normalised = normalise_image(data, images.max_side, max_decode_mb * MB, budget)
        sha, path = store_image(settings, normalised.jpeg)
    except FetchFailure as failure:
        logger.warning("image fetch failed: %s %s (%s)", failure.reason, url, failure.detail)
        return _failed(url, failure.reason)
    except BlockedAddressError as exc:
        logger.warning("image fetch failed: blocked_address %s (at connect: %s)", url, exc)
        return _failed(url, "blocked_address")
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as exc:
        logger.warning("image fetch failed: not_http %s (%s)", url, exc)
        return _failed(url, "not_http")
    except (requests.RequestException, Urllib3HTTPError, OSError) as exc:
        logger.warning("image fetch failed: unreachable %s (%s)", url, exc)
        return _failed(url, "unreachable")
    return FetchedImage(
        post_id="",
        url=url,
        status=OK,
        sha256=sha,
        path=str(path),
        width=normalised.width,
        height=normalised.height,
        file_bytes=len(data),
        format=normalised.format,
        frames=normalised.frames,
    )


def _as_url(value: object) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


def fetch_images(settings: Settings, requests_: pd.DataFrame) -> pd.DataFrame:
    """One row per input row (`post_id`, `image_url`) with the FetchedImage fields as columns.

    Each distinct URL is fetched once; workers share a per-host concurrency bound and one decode
    memory budget (decode_budget_mb).
    """
    missing = {"post_id", "image_url"} - set(requests_.columns)
    if missing:
        raise ValueError(f"fetch_images needs columns {sorted(missing)}")
    urls = [_as_url(v) for v in requests_["image_url"].tolist()]
    unique_urls = list(dict.fromkeys(urls))
    limiter = _HostLimiter(settings.images.per_host_concurrency)
    budget = _DecodeBudget(settings.images.decode_budget_mb * MB)
    local = threading.local()
    sessions: list[requests.Session] = []
    sessions_lock = threading.Lock()

    def worker(url: str | None) -> FetchedImage:
        session = getattr(local, "session", None)
        if session is None:  # requests.Session is not thread-safe: one per worker thread
            session = local.session = _new_session(settings.images, settings.reddit.user_agent)
            with sessions_lock:
                sessions.append(session)
        return fetch_one(settings, session, url, limiter, budget)

    try:
        with ThreadPoolExecutor(max_workers=max(1, settings.images.workers)) as pool:
            by_url = dict(zip(unique_urls, pool.map(worker, unique_urls)))
    finally:
        for session in sessions:
            session.close()
    rows = [
        asdict(replace(by_url[url], post_id=str(post_id))) for post_id, url in zip(requests_["post_id"].tolist(), urls)
    ]
    frame = pd.DataFrame(rows, columns=list(FETCHED_DTYPES)).astype(FETCHED_DTYPES)
    if len(frame):
        logger.info("fetched %d image rows: %s", len(frame), count_reasons(frame))
    return frame


def count_reasons(frame: pd.DataFrame) -> dict[str, int]:
    """Rows per status ("ok" and each failure reason present)."""
    counts = Counter(str(s) for s in frame["status"].dropna().tolist()) if "status" in frame else Counter()
    return dict(sorted(counts.items()))
