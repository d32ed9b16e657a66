from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import threading
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import urllib3.util.connection
from PIL import Image

from smpp.images.fetch import (
    FAILURE_REASONS,
    FETCHED_DTYPES,
    FetchedImage,
    count_reasons,
    fetch_images,
    is_blocked_ip,
)


def fetch(settings, *urls):
    frame = fetch_images(
        settings, pd.DataFrame({"post_id": [f"p{i}" for i in range(len(urls))], "image_url": list(urls)})
    )
    assert len(frame) == len(urls)
    return frame


def status_of(settings, url):
    return fetch(settings, url).loc[0, "status"]


@pytest.fixture
def connect_log(monkeypatch):
    """Every address a socket was opened to (the guard connects through this function)."""
    opened = []
    original = urllib3.util.connection.create_connection

    def recording(address, *args, **kwargs):
        opened.append(address[0])
        return original(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return opened


def test_jpeg_and_png_are_stored_as_content_addressed_jpeg(image_server, make_settings, imaging):
    settings = make_settings()
    jpeg = imaging.encode(imaging.noise(64, 48), "JPEG", quality=95)
    transparent = Image.new("RGBA", (30, 20), (0, 0, 255, 255))
    transparent.paste((0, 0, 0, 0), (0, 0, 15, 20))  # left half fully transparent
    png = imaging.encode(transparent, "PNG")
    a = image_server.add_bytes("/a.jpg", jpeg)
    copy = image_server.add_bytes("/copy-of-a", jpeg, content_type="application/octet-stream")
    p = image_server.add_bytes("/b.png", png, content_type="image/png")

    frame = fetch_images(
        settings,
        pd.DataFrame({"post_id": ["x", "y", "z", "w"], "image_url": [a, copy, p, a]}),
    )
    assert frame["post_id"].tolist() == ["x", "y", "z", "w"]
    assert frame["status"].tolist() == ["ok"] * 4
    assert frame["format"].tolist() == ["JPEG", "JPEG", "PNG", "JPEG"]
    assert frame.loc[0, "sha256"] == frame.loc[1, "sha256"] == frame.loc[3, "sha256"]
    assert frame.loc[2, "sha256"] != frame.loc[0, "sha256"]
    assert image_server.hits["/a.jpg"] == 1  # a URL asked for twice is fetched once
    assert frame.loc[0, "file_bytes"] == len(jpeg) and frame.loc[2, "file_bytes"] == len(png)
    assert (frame.loc[0, "width"], frame.loc[0, "height"]) == (64, 48)

    for row in frame.itertuples():
        stored = settings.images_dir / row.sha256[:2] / f"{row.sha256}.jpg"
        assert row.path == str(stored)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256
        with Image.open(stored) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
    assert len(list(settings.images_dir.rglob("*.jpg"))) == 2
    assert not list(settings.images_dir.rglob("*.tmp"))

    with Image.open(frame.loc[2, "path"]) as stored_png:
        assert min(stored_png.getpixel((3, 10))) > 240  # transparency composited onto white
        red, green, blue = stored_png.getpixel((25, 10))
        assert blue > 200 and red < 40

    # a repost of the same bytes later: same sha, file not rewritten
    inode = Path(frame.loc[0, "path"]).stat().st_ino
    again = fetch(settings, image_server.add_bytes("/repost.jpg", jpeg))
    assert again.loc[0, "sha256"] == frame.loc[0, "sha256"]
    assert Path(again.loc[0, "path"]).stat().st_ino == inode


def test_longest_side_is_capped(image_server, make_settings, imaging):
    settings = make_settings(max_side=64)
    url = image_server.add_bytes("/wide.png", imaging.encode(imaging.noise(300, 100), "PNG"))
    row = fetch(settings, url).iloc[0]
    assert row["status"] == "ok"
    assert (row["width"], row["height"]) == (64, 21)
    with Image.open(row["path"]) as image:
        assert image.size == (64, 21)


def test_exif_orientation_is_applied(image_server, make_settings, imaging):
    picture = Image.new("RGB", (40, 20), (255, 0, 0))
    picture.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    url = image_server.add_bytes("/rotated.jpg", imaging.encode(picture, "JPEG", exif=exif.tobytes()))
    row = fetch(make_settings(), url).iloc[0]
    assert row["status"] == "ok"
    assert (row["width"], row["height"]) == (20, 40)
    with Image.open(row["path"]) as image:
        assert image.size == (20, 40)
        assert not image.getexif().get(0x0112)
        top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the red left half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_animated_gif_keeps_the_first_frame(image_server, make_settings, imaging):
    frames = [Image.new("RGB", (16, 16), colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    gif = imaging.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    row = fetch(make_settings(), image_server.add_bytes("/anim.gif", gif, "image/gif")).iloc[0]
    assert (row["status"], row["format"], row["frames"]) == ("ok", "GIF", 3)
    with Image.open(row["path"]) as image:
        red, green, blue = image.getpixel((8, 8))
    assert red > 200 and green < 60 and blue < 60


def test_decompression_bomb_declared_in_header(image_server, make_settings, imaging):
    url = image_server.add_bytes("/bomb.png", imaging.png_declaring_size(60000, 60000), "image/png")
    assert status_of(make_settings(), url) == "decompression_bomb"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_between_one_and_two_times_the_limit(image_server, make_settings, imaging, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x30 = 1200 pixels: Pillow only warns
    url = image_server.add_bytes("/big.png", imaging.encode(imaging.noise(40, 30), "PNG"), "image/png")
    assert status_of(make_settings(), url) == "decompression_bomb"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"<!doctype html><html><body>Moved</body></html>", "image/jpeg", "not_an_image"),
        (b"", "image/jpeg", "empty"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "image/jpeg", "not_an_image"),
    ],
)
def test_bad_bodies(image_server, make_settings, body, content_type, reason):
    assert status_of(make_settings(), image_server.add_bytes("/bad", body, content_type)) == reason


def test_truncated_jpeg(image_server, make_settings, imaging):
    jpeg = imaging.encode(imaging.noise(128, 128), "JPEG", quality=95)
    url = image_server.add_bytes("/cut.jpg", jpeg[: len(jpeg) // 2])
    assert status_of(make_settings(), url) == "truncated"


def test_body_cut_short_of_content_length_is_truncated(image_server, make_settings, imaging):
    jpeg = imaging.encode(imaging.noise(64, 64), "JPEG")

    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.end_headers()
        handler.wfile.write(jpeg[:1000])

    assert status_of(make_settings(), image_server.add("/short.jpg", route)) == "truncated"


def test_too_large_stream_is_aborted_early(image_server, make_settings):
    limit = 256 * 1024
    total = 256 * 1024 * 1024

    def route(handler):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")  # no Content-Length: ends at close
        handler.end_headers()
        block = b"\xff" * 65536
        for _ in range(total // len(block)):
            handler.wfile.write(block)
            image_server.bytes_sent["/huge.jpg"] += len(block)

    started = time.monotonic()
    assert status_of(make_settings(max_bytes=limit), image_server.add("/huge.jpg", route)) == "too_large"
    assert image_server.finished.setdefault("/huge.jpg", threading.Event()).wait(5)
    assert time.monotonic() - started < 5
    # bytes the server managed to hand to the kernel: the limit plus socket buffers, not 256 MiB
    assert image_server.bytes_sent["/huge.jpg"] < limit + 4 * 1024 * 1024


def test_too_large_content_length_is_refused_before_reading(image_server, make_settings):
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(10**9))
        handler.end_headers()
        time.sleep(3)  # would stall the test if the client waited for a body

    started = time.monotonic()
    url = image_server.add("/declared.jpg", route)
    assert status_of(make_settings(max_bytes=1000, read_timeout_s=5, total_timeout_s=10), url) == "too_large"
    assert time.monotonic() - started < 1.5


def test_not_found_is_not_retried(image_server, make_settings):
    assert status_of(make_settings(), image_server.url("/missing.jpg")) == "http_error"
    assert image_server.hits["/missing.jpg"] == 1


def test_server_error_then_success_is_retried(image_server, make_settings, imaging):
    jpeg = imaging.encode(imaging.noise(8, 8), "JPEG")

    def route(handler):
        if image_server.hits["/flaky.jpg"] == 1:
            handler.send_error(500)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.end_headers()
        handler.wfile.write(jpeg)

    assert status_of(make_settings(), image_server.add("/flaky.jpg", route)) == "ok"
    assert image_server.hits["/flaky.jpg"] == 2


def test_persistent_server_error_gives_up_after_retries(image_server, make_settings):
    url = image_server.add_bytes("/down.jpg", b"oops", "text/plain", status=503)
    assert status_of(make_settings(max_retries=2), url) == "http_error"
    assert image_server.hits["/down.jpg"] == 3


@pytest.mark.parametrize("target", ["http://10.0.0.1/x.jpg", "http://169.254.169.254/latest/meta-data/"])
def test_redirect_to_private_address_is_blocked_without_connecting(image_server, make_settings, connect_log, target):
    url = image_server.add_redirect("/hop", target)
    assert status_of(make_settings(), url) == "blocked_address"
    assert image_server.hits["/hop"] == 1
    assert connect_log == ["127.0.0.1"]  # only the allowed first hop was ever connected to


def test_redirects_are_followed_relative_and_absolute(image_server, make_settings, imaging):
    image_server.add_bytes("/final.jpg", imaging.encode(imaging.noise(8, 8), "JPEG"))
    image_server.add_redirect("/second", image_server.url("/final.jpg"), status=301)
    url = image_server.add_redirect("/first", "/second", status=307)
    row = fetch(make_settings(), url).iloc[0]
    assert row["status"] == "ok" and row["url"] == url


def test_too_many_redirects(image_server, make_settings):
    url = image_server.add_redirect("/loop", "/loop")
    assert status_of(make_settings(max_redirects=5), url) == "too_many_redirects"
    assert image_server.hits["/loop"] == 6


def test_private_address_is_blocked_unless_allow_listed(image_server, make_settings, imaging, connect_log):
    url = image_server.add_bytes("/a.jpg", imaging.encode(imaging.noise(8, 8), "JPEG"))
    settings = make_settings(allowed_private_hosts=[])
    assert status_of(settings, url) == "blocked_address"
    assert status_of(settings, image_server.url("/a.jpg", host="localhost")) == "blocked_address"
    assert image_server.hits["/a.jpg"] == 0 and connect_log == []


def test_dns_rebinding_is_caught_at_connect_time(image_server, make_settings, connect_log, monkeypatch):
    real_getaddrinfo = socket.getaddrinfo
    answers = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        answers.append(host)
        ip = "93.184.216.34" if len(answers) == 1 else "127.0.0.1"  # public at check, private later
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://rebind.test:{image_server.port}/a.jpg"
    assert status_of(make_settings(allowed_private_hosts=[]), url) == "blocked_address"
    assert len(answers) == 2  # checked before the request, and again by the connection itself
    assert connect_log == [] and image_server.hits["/a.jpg"] == 0


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/a.jpg", "file:///etc/passwd", "javascript:alert(1)", "", None, "http://"]
)
def test_non_http_urls(make_settings, url):
    assert status_of(make_settings(), url) == "not_http"


def test_redirect_to_file_scheme_is_refused(image_server, make_settings):
    assert status_of(make_settings(), image_server.add_redirect("/f", "file:///etc/passwd")) == "not_http"


@pytest.mark.parametrize(
    ("drip_s", "read_timeout_s", "total_timeout_s", "bound_s"),
    [
        (20.0, 0.5, 1.0, 1.6),  # a byte every 50 ms: each read is well inside the read timeout
        (1.0, 2.5, 2.0, 2.5),  # drip, then stall: the stalled read itself must end at the deadline
    ],
)
def test_slow_drip_is_cut_at_the_wall_deadline(
    image_server, make_settings, drip_s, read_timeout_s, total_timeout_s, bound_s
):
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        started = time.monotonic()
        while time.monotonic() - started < drip_s:
            handler.wfile.write(b"\xff")
            time.sleep(0.05)
        time.sleep(5)

    started = time.monotonic()
    settings = make_settings(read_timeout_s=read_timeout_s, total_timeout_s=total_timeout_s)
    assert status_of(settings, image_server.add("/drip.jpg", route)) == "unreachable"
    assert time.monotonic() - started < bound_s


def test_silent_server_times_out_after_retries(image_server, make_settings):
    image_server.add("/silent.jpg", lambda handler: time.sleep(3))
    started = time.monotonic()
    settings = make_settings(read_timeout_s=0.2, total_timeout_s=2.0, max_retries=2)
    assert status_of(settings, image_server.url("/silent.jpg")) == "unreachable"
    assert image_server.hits["/silent.jpg"] == 3
    assert time.monotonic() - started < 1.5


def test_unresolvable_host(make_settings, monkeypatch):
    import smpp.images.fetch as fetch_module

    def no_such_name(host, *args, **kwargs):  # the machine's resolver is never asked in tests
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetch_module, "_dns_failures", {})
    monkeypatch.setattr(fetch_module.socket, "getaddrinfo", no_such_name)
    assert status_of(make_settings(), "http://no-such-host.invalid/a.jpg") == "unresolvable"


def test_offline_skips_every_host_not_allow_listed_before_any_lookup(
    image_server, make_settings, imaging, monkeypatch, connect_log
):
    import smpp.images.fetch as fetch_module

    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(fetch_module.socket, "getaddrinfo", recording)
    ok = image_server.add_bytes("/a.jpg", imaging.encode(imaging.noise(8, 8), "JPEG"))
    away = image_server.add_redirect("/away", "https://i.imgur.com/x.jpg")
    frame = fetch(make_settings(offline=True), "https://i.imgur.com/a.jpg", "http://8.8.8.8/b.png", ok, away)
    assert frame["status"].tolist() == ["offline", "offline", "ok", "offline"]
    # urllib3 passes the address literal it connects to through getaddrinfo (numeric, no DNS)
    assert set(lookups) <= {"127.0.0.1"} and connect_log == ["127.0.0.1", "127.0.0.1"]
    assert count_reasons(frame) == {"offline": 3, "ok": 1}


def test_online_is_the_default():
    from smpp.settings import ImageSettings

    assert ImageSettings().offline is False


def test_address_literals_are_judged_without_a_lookup(monkeypatch):
    import smpp.images.fetch as fetch_module

    def no_lookups(*args, **kwargs):
        raise AssertionError("looked up an address literal")

    monkeypatch.setattr(fetch_module.socket, "getaddrinfo", no_lookups)
    for url in ["http://10.0.0.1/x", "http://[::1]:8080/x", "http://169.254.169.254/", "http://[fd00::1]/"]:
        with pytest.raises(fetch_module.FetchFailure, match="blocked_address"):
            fetch_module.check_url(url, frozenset())
    assert fetch_module.check_url("http://93.184.216.34/x", frozenset()) == "93.184.216.34"
    assert fetch_module.checked_addresses("[::1]", 80, frozenset({"::1"}))[0][4][:2] == ("::1", 80)


def test_dead_host_is_looked_up_once_per_batch(make_settings, monkeypatch):
    import smpp.images.fetch as fetch_module

    lookups = []

    def failing_lookup(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetch_module, "_dns_failures", {})
    monkeypatch.setattr(fetch_module.socket, "getaddrinfo", failing_lookup)
    frame = pd.DataFrame(
        {"post_id": [f"p{i}" for i in range(20)], "image_url": [f"http://dead-host.example/{i}.jpg" for i in range(20)]}
    )
    out = fetch_images(make_settings(workers=1), frame)
    assert out["status"].tolist() == ["unresolvable"] * 20
    assert lookups == ["dead-host.example"]


def test_refused_connection_is_unreachable(make_settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert status_of(make_settings(), f"http://127.0.0.1:{port}/a.jpg") == "unreachable"


def test_per_host_concurrency_is_bounded(image_server, make_settings, imaging, monkeypatch):
    # Counted where the bound lives. The old count (image_server.active, decremented when the
    # handler thread returned) saw 3-4 on a loaded machine: the client had read the last byte and
    # released its slot, and the next request had arrived, before the finished handler thread got
    # the CPU back to decrement. Client side: slots held; server side: from the request to just
    # before the last byte (a client cannot release before it has that byte).
    import smpp.images.fetch as fetch_module

    jpeg = imaging.encode(imaging.noise(8, 8), "JPEG")
    lock = threading.Condition()
    counts = {"held": 0, "max_held": 0, "serving": 0, "max_serving": 0}
    real_hold = fetch_module._HostLimiter.hold

    @contextlib.contextmanager
    def counting_hold(self, host):
        with real_hold(self, host):
            with lock:
                counts["held"] += 1
                counts["max_held"] = max(counts["max_held"], counts["held"])
            try:
                yield
            finally:
                with lock:
                    counts["held"] -= 1

    monkeypatch.setattr(fetch_module._HostLimiter, "hold", counting_hold)

    def route(handler):
        with lock:
            counts["serving"] += 1
            counts["max_serving"] = max(counts["max_serving"], counts["serving"])
            lock.notify_all()
            lock.wait_for(lambda: counts["serving"] >= 2, timeout=0.5)  # let the bound fill up
        time.sleep(0.1)  # room for a third request, were the bound leaking
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.end_headers()
        with lock:
            counts["serving"] -= 1
        handler.wfile.write(jpeg)

    image_server.add("/slow.jpg", route)
    urls = [image_server.url(f"/slow.jpg?n={i}") for i in range(6)]
    frame = fetch(make_settings(per_host_concurrency=2, workers=6), *urls)
    assert count_reasons(frame) == {"ok": 6}
    assert counts["max_held"] == 2
    assert counts["max_serving"] == 2


def test_failures_are_logged_counted_and_typed(image_server, make_settings, caplog):
    urls = [image_server.url("/nope"), "gopher://x/", None, image_server.add_bytes("/e", b"")]
    with caplog.at_level(logging.WARNING, logger="smpp.images.fetch"):
        frame = fetch(make_settings(), *urls)
    assert count_reasons(frame) == {"empty": 1, "http_error": 1, "not_http": 2}
    assert set(frame["status"]) <= set(FAILURE_REASONS) | {"ok"}
    assert sum(record.levelno == logging.WARNING for record in caplog.records) == 4
    assert frame[["sha256", "path", "width", "frames"]].isna().all().all()
    assert {c: str(t) for c, t in frame.dtypes.items()} == FETCHED_DTYPES


def test_output_columns_are_the_fetched_image_fields():
    assert list(FETCHED_DTYPES) == [field.name for field in fields(FetchedImage)]


def test_empty_input_and_missing_columns(make_settings):
    settings = make_settings()
    empty = fetch_images(settings, pd.DataFrame({"post_id": [], "image_url": []}))
    assert len(empty) == 0
    assert {c: str(t) for c, t in empty.dtypes.items()} == FETCHED_DTYPES
    assert count_reasons(empty) == {}
    with pytest.raises(ValueError, match="image_url"):
        fetch_images(settings, pd.DataFrame({"post_id": ["a"]}))


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("10.0.0.1", True),
        ("127.0.0.1", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("::1", True),
        ("fe80::1%eth0", True),
        ("::ffff:127.0.0.1", True),
        ("fd00::1", True),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_is_blocked_ip(address, blocked):
    assert is_blocked_ip(address) is blocked


def test_image_over_the_decode_budget_is_refused_from_its_header(image_server, make_settings, imaging):
    # 3000x3000 RGB: ~34 MB decoded. The header alone decides; a reduced JPEG decode still fits.
    png = image_server.add_bytes("/big.png", imaging.png_declaring_size(3000, 3000), "image/png")
    jpeg = image_server.add_bytes("/big.jpg", imaging.encode(Image.new("RGB", (3000, 3000)), "JPEG"))
    frame = fetch(make_settings(max_decode_mb=16, max_side=256), png, jpeg)
    assert frame["status"].tolist() == ["over_decode_budget", "ok"]
    assert (frame.loc[1, "width"], frame.loc[1, "height"]) == (256, 256)


def test_per_image_limit_never_exceeds_the_stage_budget(image_server, make_settings, imaging):
    png = image_server.add_bytes("/big.png", imaging.png_declaring_size(3000, 3000), "image/png")
    assert status_of(make_settings(max_decode_mb=1000, decode_budget_mb=16), png) == "over_decode_budget"


def test_decode_cost_covers_each_mode():
    from smpp.images.fetch import MB, decode_cost_bytes

    def cost(mode, fmt="PNG", alpha=False, transpose_first=False):
        # bytes per source pixel; thumbnail's copies add ~0.3 at this size (max_side 256)
        return decode_cost_bytes(4000, 4000, mode, fmt, 256, alpha=alpha, transpose_first=transpose_first) / 16e6

    assert cost("RGB") == pytest.approx(4.3, abs=0.05)  # the source is the RGB image itself
    assert cost("RGB", "JPEG", transpose_first=True) == pytest.approx(8.0, abs=0.05)
    assert cost("L") == pytest.approx(5.0, abs=0.05)
    assert cost("P", alpha=True) == pytest.approx(10.0, abs=0.05)
    assert cost("RGBA", alpha=True) == pytest.approx(9.0, abs=0.05)
    assert cost("RGBA", "WEBP", alpha=True) == pytest.approx(9.0, abs=0.05)
    assert cost("RGB", "WEBP") == pytest.approx(8.0, abs=0.05)
    assert MB == 1024 * 1024


def test_decode_budget_bounds_concurrent_holders_in_arrival_order():
    from smpp.images.fetch import _DecodeBudget

    budget = _DecodeBudget(100)
    order = []
    big_started = threading.Event()
    release = threading.Event()

    def take(name, nbytes, hold_s=0.0, started=None):
        with budget.hold(nbytes):
            order.append(name)
            if started is not None:
                started.set()
            release.wait(hold_s)

    first = threading.Thread(target=take, args=("small-1", 60, 5.0))
    first.start()
    while budget.used != 60:
        time.sleep(0.005)
    big = threading.Thread(target=take, args=("big", 100, 0.0, big_started))
    big.start()
    while not budget._queue:
        time.sleep(0.005)
    late_small = threading.Thread(target=take, args=("small-2", 10))  # would fit now, but is behind big
    late_small.start()
    time.sleep(0.1)
    assert order == ["small-1"]
    release.set()
    for thread in (first, big, late_small):
        thread.join(5)
    assert order == ["small-1", "big", "small-2"]
    assert budget.peak == 100 and budget.used == 0
    with budget.hold(10**9):  # clamped to the total: an oversize request cannot wait forever
        assert budget.used == 100


def _old_pipeline(data: bytes, max_side: int) -> bytes:
    """normalise_image before issue 14 (three full-size copies), as the reference for its bytes."""
    import io

    from PIL import ImageOps

    from smpp.images.fetch import JPEG_QUALITY

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        image.draft("RGB", (max_side, max_side))
        image.load()
        oriented = ImageOps.exif_transpose(image)
        if oriented.mode in ("RGBA", "LA", "PA") or (oriented.mode == "P" and "transparency" in oriented.info):
            rgba = oriented.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        else:
            rgb = oriented.convert("RGB")
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["jpeg", "jpeg-rotated", "png-rgb", "png-rgba", "png-palette", "gif"])
def test_leaner_decode_stores_the_same_bytes_as_before(imaging, kind):
    # Stored files are named by their sha: the same source must keep mapping to the same file.
    from smpp.images.fetch import normalise_image

    picture = imaging.noise(700, 400, seed=3)
    if kind == "jpeg":
        data = imaging.encode(picture, "JPEG", quality=92)
    elif kind == "jpeg-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        data = imaging.encode(picture, "JPEG", quality=92, exif=exif.tobytes())
    elif kind == "png-rgb":
        data = imaging.encode(picture, "PNG")
    elif kind == "png-rgba":
        rgba = picture.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        data = imaging.encode(rgba, "PNG")
    elif kind == "png-palette":
        data = imaging.encode(picture.quantize(64), "PNG", transparency=0)
    else:
        data = imaging.encode(picture.quantize(64), "GIF")
    assert normalise_image(data, 256).jpeg == _old_pipeline(data, 256)


def test_png_exif_orientation_is_applied(image_server, make_settings, imaging):
    picture = Image.new("RGB", (40, 20), (255, 0, 0))
    picture.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6
    url = image_server.add_bytes("/rotated.png", imaging.encode(picture, "PNG", exif=exif.tobytes()), "image/png")
    row = fetch(make_settings(), url).iloc[0]
    assert (row["status"], row["width"], row["height"]) == ("ok", 20, 40)
    with Image.open(row["path"]) as image:
        top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and bottom[2] > 200  # the red left half is now on top
