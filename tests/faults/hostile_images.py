"""A hostile image server on 127.0.0.1 (port 0): every way a server can hold, bloat or misdirect
an image fetch. Used by test_image_faults.py and benchmarks/image_memory.py.

Endpoints (paths in HostileImageServer.PATHS):
  /header-drip        "HTTP/1.1 200 OK\\r\\nX-Slow: " then one byte per `drip_interval_s`
  /body-drip          complete headers (Content-Length 100000), then one body byte per interval
  /pixels.png         one-colour 9400x9400 RGB PNG, ~0.3 MB on the wire, ~350 MB decoded
  /bomb.png           PNG whose header declares 60000x60000 pixels (past Pillow's pixel cap)
  /redirect/private   302 to http://10.0.0.1/x.jpg
  /redirect/lan       302 to http://192.168.1.1/x.jpg
  /redirect/metadata  302 to http://169.254.169.254/latest/meta-data/ (cloud metadata)
  /redirect/localhost 302 to http://localhost:<port>/ok.jpg (a name that resolves to loopback)
  /redirect/outside   302 to https://i.imgur.com/x.jpg (offline tests only: not in PATHS)
  /html.jpg           an HTML page served as image/jpeg
  /ok.jpg             a small valid JPEG (control)
Drips stop after `drip_hold_s` (then the connection closes) or when the server closes.
"""

from __future__ import annotations

import functools
import io
import struct
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

PIXEL_HEAVY_SIDE = 9400


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A small PNG whose IHDR declares width x height RGB pixels (the body is a token IDAT)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


@functools.lru_cache(maxsize=8)
def one_colour_png(width: int, height: int, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid one-colour RGB PNG, deflated row by row so building it never holds the pixels
    (Pillow would allocate width*height*4 bytes just to save it). 9400x9400: ~0.3 MB."""
    compressor = zlib.compressobj(6)
    row = b"\x00" + bytes(rgb) * width  # filter byte 0, then the pixels
    block = row * 64
    parts = [compressor.compress(block) for _ in range(height // 64)]
    parts.append(compressor.compress(row * (height % 64)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


class HostileImageServer:
    PATHS = (
        "/header-drip",
        "/body-drip",
        "/pixels.png",
        "/bomb.png",
        "/redirect/private",
        "/redirect/lan",
        "/redirect/metadata",
        "/redirect/localhost",
        "/html.jpg",
        "/ok.jpg",
    )

    def __init__(self, drip_interval_s: float = 0.2, drip_hold_s: float = 8.0) -> None:
        self.drip_interval_s = drip_interval_s
        self.drip_hold_s = drip_hold_s
        self.hits: Counter[str] = Counter()
        self.extra: dict[str, bytes] = {}  # path -> PNG body, for pixel-heavy variants
        self.closing = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] += 1
                try:
                    server.serve(self, path)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def add_png(self, path: str, body: bytes) -> str:
        self.extra[path] = body
        return self.url(path)

    def __enter__(self) -> HostileImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _drip(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        while not self.closing.is_set() and time.monotonic() - started < self.drip_hold_s:
            handler.wfile.write(b"x")
            handler.wfile.flush()
            self.closing.wait(self.drip_interval_s)

    def _send(self, handler: BaseHTTPRequestHandler, body: bytes, content_type: str, status: int = 200) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _redirect(self, handler: BaseHTTPRequestHandler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def serve(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/header-drip":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._drip(handler)
        elif path == "/body-drip":
            handler.send_response(200)
            handler.send_header("Content-Type", "image/jpeg")
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            self._drip(handler)
        elif path == "/pixels.png":
            self._send(handler, one_colour_png(PIXEL_HEAVY_SIDE, PIXEL_HEAVY_SIDE), "image/png")
        elif path in self.extra:
            self._send(handler, self.extra[path], "image/png")
        elif path == "/bomb.png":
            self._send(handler, png_header_only(60000, 60000), "image/png")
        elif path == "/redirect/private":
            self._redirect(handler, "http://10.0.0.1/x.jpg")
        elif path == "/redirect/lan":
            self._redirect(handler, "http://192.168.1.1/x.jpg")
        elif path == "/redirect/metadata":
            self._redirect(handler, "http://169.254.169.254/latest/meta-data/")
        elif path == "/redirect/outside":
            self._redirect(handler, "https://i.imgur.com/x.jpg")
        elif path == "/redirect/localhost":
            self._redirect(handler, f"http://localhost:{self.port}/ok.jpg")
        elif path == "/html.jpg":
            self._send(handler, b"<!doctype html><html><body>Moved</body></html>", "image/jpeg")
        elif path == "/ok.jpg":
            self._send(handler, small_jpeg(), "image/jpeg")
        else:
            handler.send_error(404)
