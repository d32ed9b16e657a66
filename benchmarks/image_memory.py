"""Peak memory of fetch_images on pixel-heavy PNGs, per worker count and decode budget (issue 14).

A local server (tests/faults/hostile_images.py, 127.0.0.1) serves `--count` one-colour PNGs of
`--side` x `--side` RGB pixels: ~0.1-0.3 MB each on the wire, side^2 x 4 bytes decoded. Each run is
a fresh process that warms up on one small JPEG and then fetches all of them in one fetch_images
call; it reports its peak RSS above the warmed-up baseline (VmHWM, Linux). Prints numbers only.

    PYTHONPATH=src .venv/bin/python benchmarks/image_memory.py [--side 6000 --count 8]
        [--workers 1 2 4 8] [--budgets 768 100000]

A budget of 100000 MB is "unbounded" (no two decodes ever wait), the pre-issue-14 behaviour as far
as the stage budget goes (the leaner decode pipeline stays).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import pandas as pd
from smpp.images.fetch import count_reasons, fetch_images
from smpp.settings import ImageSettings, Settings

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

args = json.loads(sys.argv[1])
settings = Settings(data_dir=args["data_dir"], images=ImageSettings(**args["images"]))
fetch_images(settings, pd.DataFrame({"post_id": ["w"], "image_url": [args["warmup"]]}))
before = peak_mb()
started = time.monotonic()
frame = fetch_images(settings, pd.DataFrame({"post_id": [str(i) for i in range(len(args["urls"]))],
                                             "image_url": args["urls"]}))
print(json.dumps({"reasons": count_reasons(frame), "peak_mb": peak_mb() - before,
                  "baseline_mb": before, "seconds": time.monotonic() - started}))
"""


def _hostile_images():
    spec = importlib.util.spec_from_file_location("hostile_images", REPO / "tests" / "faults" / "hostile_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(workers: int, budget_mb: int, max_decode_mb: int, urls: list[str], warmup: str, data_dir: str) -> dict:
    args = {
        "data_dir": data_dir,
        "images": {
            "workers": workers,
            "per_host_concurrency": workers,  # one local host: let the workers all reach it
            "decode_budget_mb": budget_mb,
            "max_decode_mb": max_decode_mb,
            "total_timeout_s": 120.0,
            "allowed_private_hosts": ["127.0.0.1"],
            "offline": True,
        },
        "urls": urls,
        "warmup": warmup,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("SMPP_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=6000)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--budgets", type=int, nargs="+", default=[768, 100_000])
    parser.add_argument("--max-decode-mb", type=int, default=256)
    options = parser.parse_args()

    hostile = _hostile_images()
    body = hostile.one_colour_png(options.side, options.side)
    decoded_mb = options.side * options.side * 4 / 2**20
    print(
        f"{options.count} PNGs {options.side}x{options.side} RGB: {len(body) / 1e6:.2f} MB sent, "
        f"{decoded_mb:.0f} MB decoded each; max_decode_mb={options.max_decode_mb}"
    )
    print(f"{'workers':>7} {'budget_mb':>10} {'peak_rss_mb':>12} {'seconds':>8}  reasons")
    with hostile.HostileImageServer() as server, tempfile.TemporaryDirectory() as tmp:
        urls = [server.add_png(f"/heavy-{i}.png", body) for i in range(options.count)]
        for budget in options.budgets:
            for workers in options.workers:
                started = time.monotonic()
                result = run(
                    workers,
                    budget,
                    options.max_decode_mb,
                    urls,
                    server.url("/ok.jpg"),
                    str(Path(tmp) / f"w{workers}-b{budget}"),
                )
                print(
                    f"{workers:>7} {budget:>10} {result['peak_mb']:>12.0f} {result['seconds']:>8.1f}  "
                    f"{result['reasons']}  (run {time.monotonic() - started:.1f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
