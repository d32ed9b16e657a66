"""Issue 14: a hostile image server must never hold a worker past the deadline, bloat memory past
the decode budget, or steer a fetch to a private address, and offline runs contact no outside host."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from smpp.images.fetch import count_reasons, fetch_images
from smpp.settings import ImageSettings, Settings

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]


def _load_hostile_images():
    # --import-mode=importlib puts no test folder on sys.path: load the helper module by path.
    spec = importlib.util.spec_from_file_location("hostile_images", _HERE / "hostile_images.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hostile_images", module)
    spec.loader.exec_module(module)
    return module


hostile_images = _load_hostile_images()
HostileImageServer = hostile_images.HostileImageServer

DEADLINE_S = 2.0


@pytest.fixture
def hostile() -> Iterator[HostileImageServer]:
    with HostileImageServer(drip_interval_s=0.2, drip_hold_s=8.0) as server:
        yield server


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    image = dict(
        connect_timeout_s=1.0,
        read_timeout_s=1.0,  # each drip byte comes well inside this: only the deadline can cut it
        total_timeout_s=DEADLINE_S,
        max_retries=1,
        retry_backoff_s=0.01,
        retry_backoff_max_s=0.05,
        max_side=256,
        workers=4,
        per_host_concurrency=4,
        allowed_private_hosts=["127.0.0.1"],
    )
    image.update(overrides)
    return Settings(data_dir=tmp_path / "data", images=ImageSettings(**image))


def fetch(settings: Settings, *urls: str) -> pd.DataFrame:
    frame = pd.DataFrame({"post_id": [f"p{i}" for i in range(len(urls))], "image_url": list(urls)})
    return fetch_images(settings, frame)


def test_header_drip_is_cut_at_the_total_deadline(hostile, tmp_path):
    started = time.monotonic()
    frame = fetch(make_settings(tmp_path), hostile.url("/header-drip"))
    elapsed = time.monotonic() - started
    assert frame.loc[0, "status"] == "unreachable"
    assert elapsed < DEADLINE_S + 1.0, f"header drip held the worker {elapsed:.1f} s"


def test_body_drip_is_cut_at_the_total_deadline(hostile, tmp_path):
    started = time.monotonic()
    frame = fetch(make_settings(tmp_path), hostile.url("/body-drip"))
    assert frame.loc[0, "status"] == "unreachable"
    assert time.monotonic() - started < DEADLINE_S + 1.0


def test_pixel_heavy_png_is_refused_before_decoding(hostile, tmp_path):
    hostile_images.one_colour_png(9400, 9400)  # build (cached) outside the timed part
    started = time.monotonic()
    frame = fetch(make_settings(tmp_path), hostile.url("/pixels.png"))
    assert frame.loc[0, "status"] == "over_decode_budget"  # 9400x9400 RGB: ~353 MB > 256 MB default
    assert time.monotonic() - started < 1.5  # decoding it alone takes ~2.5 s here
    assert hostile.hits["/pixels.png"] == 1


@pytest.mark.parametrize("path", ["/redirect/private", "/redirect/lan", "/redirect/metadata", "/redirect/localhost"])
def test_redirect_to_private_address_is_refused_before_connecting(hostile, tmp_path, path):
    # The socket guard (conftest) fails the test on any lookup or connect outside loopback.
    frame = fetch(make_settings(tmp_path), hostile.url(path))
    assert frame.loc[0, "status"] == "blocked_address"
    assert hostile.hits[path] == 1 and hostile.hits["/ok.jpg"] == 0


def test_offline_skips_outside_hosts_without_any_lookup(hostile, tmp_path, socket_guard):
    settings = make_settings(tmp_path, offline=True)
    urls = [
        "https://i.imgur.com/abc123.jpg",
        "http://93.184.216.34/a.png",  # an address literal: no DNS, but still outside contact
        "https://preview.redd.it/x.jpg?width=640",
        hostile.url("/ok.jpg"),
        hostile.url("/redirect/metadata"),  # a private literal hop: blocked as such, before any connect
        hostile.url("/redirect/outside"),  # a named hop outside: skipped before any lookup
    ]
    frame = fetch(settings, *urls)
    assert frame["status"].tolist() == ["offline", "offline", "offline", "ok", "blocked_address", "offline"]
    assert socket_guard == []


def test_every_hostile_endpoint_is_refused_with_its_reason_in_one_batch(hostile, tmp_path):
    hostile_images.one_colour_png(9400, 9400)
    urls = {path: hostile.url(path) for path in HostileImageServer.PATHS}
    started = time.monotonic()
    frame = fetch(make_settings(tmp_path, workers=8), *urls.values())
    elapsed = time.monotonic() - started
    by_path = dict(zip(urls, frame["status"]))
    assert by_path == {
        "/header-drip": "unreachable",
        "/body-drip": "unreachable",
        "/pixels.png": "over_decode_budget",
        "/bomb.png": "decompression_bomb",
        "/redirect/private": "blocked_address",
        "/redirect/lan": "blocked_address",
        "/redirect/metadata": "blocked_address",
        "/redirect/localhost": "blocked_address",
        "/html.jpg": "not_an_image",
        "/ok.jpg": "ok",
    }
    assert count_reasons(frame)["blocked_address"] == 4
    assert elapsed < DEADLINE_S + 1.5


_RSS_CHILD = r"""
import json, sys
import pandas as pd
from smpp.images.fetch import fetch_images
from smpp.settings import ImageSettings, Settings

def peak_rss_mb():
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a big test process starts high.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")

args = json.loads(sys.argv[1])
settings = Settings(data_dir=args["data_dir"], images=ImageSettings(**args["images"]))
fetch_images(settings, pd.DataFrame({"post_id": ["w"], "image_url": [args["warmup"]]}))
before = peak_rss_mb()
frame = fetch_images(settings, pd.DataFrame({"post_id": [str(i) for i in range(len(args["urls"]))],
                                             "image_url": args["urls"]}))
after = peak_rss_mb()
print(json.dumps({"status": frame["status"].tolist(), "peak_mb": after - before}))
"""


def test_concurrent_decodes_stay_within_the_stage_memory_budget(hostile, tmp_path):
    # Four 4500x4500 RGB PNGs (~81 MB decoded each, 0.1 MB sent) fetched by four workers under a
    # 100 MB stage budget: one decode at a time. Unbounded, the four decoded together (~1 GB).
    body = hostile_images.one_colour_png(4500, 4500)
    urls = [hostile.add_png(f"/heavy-{i}.png", body) for i in range(4)]
    args = {
        "data_dir": str(tmp_path / "data"),
        "images": dict(
            max_side=256,
            workers=4,
            per_host_concurrency=4,
            total_timeout_s=30.0,
            allowed_private_hosts=["127.0.0.1"],
            offline=True,
            max_decode_mb=100,
            decode_budget_mb=100,
        ),
        "warmup": hostile.url("/ok.jpg"),
        "urls": urls,
    }
    env = {**os.environ, "PYTHONPATH": str(_REPO / "src")}
    env.pop("SMPP_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == ["ok"] * 4
    # the budget (100 MB) plus the 4 small bodies, thumbnails and allocator slack
    assert result["peak_mb"] < 100 + 60, result
