"""All-of-Reddit dump scan for a few subreddits: smpp's scan + index build against the floor.

    .venv/bin/python benchmarks/archive_scan.py [--posts 1000000] [--days 2] [--dump FILE]
        [--subreddits pics aww EarthPorn] [--work-dir DIR] [--dag-day] [--no-json-filter]

Writes a synthetic monthly dump (benchmarks/synthetic_dump.py: 2-4 KB real-shaped lines, ~20k
subreddits with Zipf sizes, decoys, zstd level 3 with a 2 GiB window) unless --dump is given, then
prints side by side, each phase in its own process (wall time, peak RSS = ru_maxrss of that process):
  floor        `zstd -dc --long=31 FILE | wc -l` (python zstandard decompress-and-count if no zstd CLI)
  json_filter  what most people run today (Watchful1's PushshiftDumps filter_file.py): zstandard
               stream_reader, 128 MiB reads, stdlib json.loads of every line, compare the subreddit
  smpp_scan    smpp.sources.archive_index.ensure_day_index for the subreddits: prefilter on raw
               bytes, msgspec parse of the candidates, per-subreddit day index written
  dag_day      (--dag-day) one `airflow dags test smpp_pipeline <day>` archive day for the same
               subreddits on the same file (tiny models, fresh AIRFLOW_HOME and data dir)
Targets (issue 13; nothing is asserted): smpp_scan <= 1.5x floor and >= 3x faster than json_filter,
dag_day <= 3x floor + 2 min, peak RSS < 500 MB, index disk < 2 % of the decompressed dump.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))


def child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def self_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_floor(dump: Path, _subs: list[str], _work: Path) -> dict:
    started = time.monotonic()
    if shutil.which("zstd"):
        out = subprocess.run(
            f"zstd -dc --long=31 {dump} | wc -l", shell=True, check=True, capture_output=True, text=True
        )
        return {
            "seconds": time.monotonic() - started,
            "lines": int(out.stdout.strip()),
            "rss_mb": child_rss_mb(),
            "how": "zstd -dc --long=31 | wc -l",
        }
    import zstandard

    lines = 0
    with dump.open("rb") as fh:
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh)
        while chunk := reader.read(1 << 24):
            lines += chunk.count(b"\n")
    return {
        "seconds": time.monotonic() - started,
        "lines": lines,
        "rss_mb": self_rss_mb(),
        "how": "python zstandard decompress + count (no zstd CLI)",
    }


def phase_json_filter(dump: Path, subs: list[str], _work: Path) -> dict:
    """PushshiftDumps filter_file.py's loop: read_and_decode 128 MiB chunks, json.loads every line."""
    import zstandard

    wanted = {s.lower() for s in subs}
    started = time.monotonic()
    lines = kept = 0
    buffer = ""
    with dump.open("rb") as fh:
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh)
        while True:
            chunk = reader.read(2**27)
            if not chunk:
                break
            parts = (buffer + chunk.decode(errors="ignore")).split("\n")
            for line in parts[:-1]:
                lines += 1
                obj = json.loads(line)
                if obj.get("subreddit", "").lower() in wanted:
                    kept += 1
            buffer = parts[-1]
    return {"seconds": time.monotonic() - started, "lines": lines, "kept": kept, "rss_mb": self_rss_mb()}


def phase_smpp_scan(dump: Path, subs: list[str], work: Path) -> dict:
    from smpp.sources.archive_index import ensure_day_index

    root = work / "archive_index"
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    index = ensure_day_index(dump, root, subreddits=subs, progress_every_s=1e9)
    seconds = time.monotonic() - started
    manifest = index.shards[0].manifest
    return {
        "seconds": seconds,
        "lines": manifest["lines"],
        "parsed": manifest["parsed"],
        "kept": index.manifest["indexed"],
        "scan_skips": manifest["scan_skips"],
        "index_bytes": index.disk_bytes(),
        "decompressed_bytes": manifest["decompressed_bytes"],
        "rss_mb": max(self_rss_mb(), child_rss_mb()),
        "python_rss_mb": self_rss_mb(),
        "zstd_rss_mb": child_rss_mb(),
    }


def phase_dag_day(dump: Path, subs: list[str], work: Path) -> dict:
    """One archive day through `airflow dags test` (as tests/e2e/test_pipeline.py runs it)."""
    home, data = work / "airflow", work / "dag_data"
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    airflow = Path(sys.executable).parent / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO / "src"),
        "SMPP_DATA_DIR": str(data),
        "SMPP_MODEL_PROFILE": "tiny",
        "SMPP_IMAGES__OFFLINE": "true",
        "SMPP_SOURCE": "archive",
        "SMPP_ARCHIVE_PATH": str(dump),
        "SMPP_SUBREDDITS": json.dumps(subs),
        "SMPP_TASK_RETRIES": "0",
        "HF_HUB_OFFLINE": "1",
        "SMPP_IMAGES__MAX_RETRIES": "0",
        "SMPP_IMAGES__CONNECT_TIMEOUT_S": "1",
    }
    env.pop("SMPP_CONFIG", None)
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    from datetime import datetime

    from synthetic_dump import START_UTC

    interval_end = datetime.fromtimestamp(START_UTC + 86_400, UTC).date().isoformat()  # runs day 1
    log = work / "dag_day.log"
    started = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.run(
            [str(airflow), "dags", "test", "smpp_pipeline", interval_end],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=3600,
        )
    seconds = time.monotonic() - started
    states = [line.split("state=")[-1].strip() for line in log.read_text().splitlines() if "state=" in line]
    return {
        "seconds": seconds,
        "rc": proc.returncode,
        "failed_states": states.count("failed"),
        "log": str(log),
        "rss_mb": child_rss_mb(),
    }


PHASES = {
    "floor": phase_floor,
    "json_filter": phase_json_filter,
    "smpp_scan": phase_smpp_scan,
    "dag_day": phase_dag_day,
}


def run_phase(name: str, dump: Path, subs: list[str], work: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--dump",
        str(dump),
        "--work-dir",
        str(work),
        "--subreddits",
        *subs,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    if out.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--subreddits", nargs="+", default=["pics", "aww", "EarthPorn"])
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--dag-day", action="store_true", help="also run one airflow dags test archive day")
    parser.add_argument("--no-json-filter", action="store_true", help="skip the (slow) json.loads filter")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="smpp-archive-scan-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.dump, args.subreddits, work)))
        return
    dump = args.dump
    if dump is None:
        from synthetic_dump import generate

        dump = work / "RS_2024-03.zst"
        print("generating", json.dumps(generate(dump, args.posts, args.days)), flush=True)
    names = (
        ["floor", "smpp_scan"]
        + ([] if args.no_json_filter else ["json_filter"])
        + (["dag_day"] if args.dag_day else [])
    )
    results = {}
    for name in names:
        results[name] = run_phase(name, dump, args.subreddits, work)
        print(name, json.dumps(results[name]), flush=True)
    floor, scan = results["floor"]["seconds"], results["smpp_scan"]["seconds"]
    decompressed = results["smpp_scan"]["decompressed_bytes"]
    print(
        f"\ndump {dump}: {dump.stat().st_size / 1e6:.0f} MB compressed, {decompressed / 1e6:.0f} MB decompressed, "
        f"{results['floor']['lines']:,} lines; subreddits {args.subreddits}"
    )
    print(f"{'phase':<12} {'wall s':>8} {'x floor':>8} {'peak RSS MB':>12}  notes")
    for name, r in results.items():
        note = r.get("how", "")
        if name == "smpp_scan":
            note = (
                f"kept {r['kept']:,}, parsed {r['parsed']:,} of {r['lines']:,} lines, "
                f"index {r['index_bytes'] / 1e6:.2f} MB "
                f"= {100 * r['index_bytes'] / decompressed:.3f} % of decompressed; "
                f"RSS python {r['python_rss_mb']:.0f} MB, "
                f"zstd child {r['zstd_rss_mb']:.0f} MB"
            )
        elif name == "json_filter":
            note = f"kept {r['kept']:,}; smpp_scan is {r['seconds'] / scan:.1f}x faster"
        elif name == "dag_day":
            note = f"rc {r['rc']}, failed tasks {r['failed_states']}; target {3 * floor + 120:.0f} s; log {r['log']}"
        print(f"{name:<12} {r['seconds']:>8.2f} {r['seconds'] / floor:>8.2f} {r['rss_mb']:>12.0f}  {note}")


if __name__ == "__main__":
    main()
