"""Data-root layout, day partitions and atomic writes.

Every stage writes one Parquet file per day: partitions/<stage>/ds=YYYY-MM-DD/part-0.parquet.
Writes go to a temp file in the same directory and are renamed into place (os.replace is
atomic on POSIX), so a reader never sees a half-written partition and re-running a day
replaces it instead of appending.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smpp.settings import Settings

log = logging.getLogger(__name__)

PART_FILE = "part-0.parquet"
# a folder being built (a model version): <parent>/.tmp-<name>@<host>@<pid>/<name>/
STAGING_PREFIX = ".tmp-"
STAGING_PATTERN = re.compile(r"^\.tmp-(?P<name>.+)@(?P<host>[^@]+)@(?P<pid>\d+)$")


def as_day(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def partition_dir(settings: Settings, stage: str, day: date | str) -> Path:
    return settings.partitions_dir / stage / f"ds={as_day(day).isoformat()}"


def partition_path(settings: Settings, stage: str, day: date | str) -> Path:
    return partition_dir(settings, stage, day) / PART_FILE


STALE_TEMP_S = 3600.0  # a temp file this old is a killed writer's; a live one renames in seconds


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a writer killed between writing and renaming leaves its temp file: the next write removes it
    cutoff = time.time() - STALE_TEMP_S
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except FileNotFoundError:
            pass  # another writer removed it first
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_table(path: Path, table: pa.Table) -> Path:
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_partition(
    settings: Settings,
    stage: str,
    day: date | str,
    frame: pd.DataFrame,
    schema: pa.Schema | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Replace the day's partition of `stage` with `frame` (an empty frame is a valid result)."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): str(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    return atomic_write_table(partition_path(settings, stage, day), table)


def has_partition(settings: Settings, stage: str, day: date | str) -> bool:
    return partition_path(settings, stage, day).is_file()


def read_partition(settings: Settings, stage: str, day: date | str) -> pd.DataFrame:
    path = partition_path(settings, stage, day)
    if not path.is_file():
        raise FileNotFoundError(f"missing partition {stage} for {as_day(day)} ({path}): run the upstream stage first")
    return pq.read_table(path).to_pandas()


def list_partition_days(settings: Settings, stage: str) -> list[date]:
    root = settings.partitions_dir / stage
    if not root.is_dir():
        return []
    days = []
    for child in root.iterdir():
        if child.name.startswith("ds=") and (child / PART_FILE).is_file():
            days.append(date.fromisoformat(child.name[3:]))
    return sorted(days)


def run_metrics_path(settings: Settings, day: date | str, stage: str) -> Path:
    return settings.runs_dir / f"ds={as_day(day).isoformat()}" / f"{stage}.json"


def write_run_metrics(settings: Settings, day: date | str, stage: str, metrics: dict) -> Path:
    """Counts a stage reports for a day (the UI reads these); replaced on re-run."""
    return atomic_write_json(run_metrics_path(settings, day, stage), metrics)


def read_run_metrics(settings: Settings, day: date | str) -> dict[str, dict]:
    folder = settings.runs_dir / f"ds={as_day(day).isoformat()}"
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def vectors_to_arrow(vectors: list, dim: int) -> pa.FixedSizeListArray:
    """Cells of float vectors (or None for a missing modality) as fixed_size_list<float32>[dim]."""
    import numpy as np

    flat = np.zeros((len(vectors), dim), dtype=np.float32)
    mask = np.zeros(len(vectors), dtype=bool)
    for i, vec in enumerate(vectors):
        if vec is None:
            mask[i] = True
            continue
        vec = np.asarray(vec, dtype=np.float32)
        if vec.shape != (dim,):
            raise ValueError(f"vector {i} has shape {vec.shape}, expected ({dim},)")
        flat[i] = vec
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), type=pa.float32()), dim, mask=pa.array(mask))


# Mapped tasks (one per chunk) stage their outputs here; build_features merges them.
def chunk_dir(settings: Settings, stage: str, day: date | str) -> Path:
    return settings.partitions_dir / "_chunks" / stage / f"ds={as_day(day).isoformat()}"


def plan_chunks(settings: Settings, stage: str, day: date | str, chunks: int) -> None:
    """Start a fresh chunked write of `stage` for the day (stale chunks of earlier runs go)."""
    import shutil

    folder = chunk_dir(settings, stage, day)
    shutil.rmtree(folder, ignore_errors=True)
    atomic_write_json(folder / "plan.json", {"chunks": chunks})


def write_chunk(settings: Settings, stage: str, day: date | str, chunk: int, table: pa.Table) -> Path:
    folder = chunk_dir(settings, stage, day)
    plan = json.loads((folder / "plan.json").read_text())
    if not 0 <= chunk < plan["chunks"]:
        raise ValueError(f"{stage} chunk {chunk} outside the plan of {plan['chunks']} chunks")
    return atomic_write_table(folder / f"chunk-{chunk:05d}.parquet", table)


def merge_chunks(settings: Settings, stage: str, day: date | str) -> bool:
    """Concatenate a planned stage's chunks into its day partition; False if nothing planned."""
    import shutil

    folder = chunk_dir(settings, stage, day)
    if not (folder / "plan.json").is_file():
        return False
    chunks = json.loads((folder / "plan.json").read_text())["chunks"]
    paths = [folder / f"chunk-{i:05d}.parquet" for i in range(chunks)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{stage} for {as_day(day)}: chunks {missing} not written (a mapped task failed?)")
    tables = [pq.read_table(p) for p in paths]
    merged = pa.concat_tables(tables).replace_schema_metadata(tables[0].schema.metadata)
    atomic_write_table(partition_path(settings, stage, day), merged)
    shutil.rmtree(folder)
    return True


# ---------------------------------------------------------------- folders built under a staging name


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_staging(models_dir: Path, max_age_hours: float) -> list[str]:
    """Remove the staging folders of builds that died (kill -9, OOM, lost worker); returns their names.

    Stale: its process is gone (a build on this host), or it is older than `max_age_hours` (a build
    on any host: another worker's pid cannot be checked from here).
    """
    if not models_dir.is_dir():
        return []
    host, now, removed = socket.gethostname(), time.time(), []
    for folder in models_dir.iterdir():
        match = STAGING_PATTERN.match(folder.name)
        if match is None or not folder.is_dir():
            continue
        pid = int(match["pid"])
        dead = match["host"] == host and pid != os.getpid() and not _process_alive(pid)
        try:
            old = now - folder.stat().st_mtime > max_age_hours * 3600
        except FileNotFoundError:
            continue  # another cleanup got there first
        if dead or old:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.warning("removed %d stale model staging folders: %s", len(removed), removed)
    return removed


@contextmanager
def staged_version(final: Path, max_age_hours: float) -> Iterator[Path]:
    """Build a version folder under a temp name beside `final`; it appears at `final` only when complete.

    Yields `<parent>/.tmp-<name>@<host>@<pid>/<name>/` (same name, so what is written inside can say
    its version), renamed to `final` (atomic: same filesystem) when the block ends; removed on an error.
    A killed build leaves only the staging folder, which the next build's remove_stale_staging clears.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final.parent, max_age_hours)
    holder = final.parent / f"{STAGING_PREFIX}{final.name}@{socket.gethostname()}@{os.getpid()}"
    shutil.rmtree(holder, ignore_errors=True)
    building = holder / final.name
    building.mkdir(parents=True)
    try:
        yield building
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()  # an empty folder made by the caller: take its place
        if final.exists():
            raise FileExistsError(f"{final} already exists: a version folder is never overwritten")
        os.rename(building, final)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
