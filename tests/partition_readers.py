"""Test-side readers of day partitions (the product streams partitions; tests want whole frames)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd
import pyarrow.parquet as pq

from smpp import storage
from smpp.settings import Settings


def partition_metadata(settings: Settings, stage: str, day: date | str) -> dict[str, str]:
    meta = pq.read_schema(storage.partition_path(settings, stage, day)).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"pandas")}


def read_partitions(settings: Settings, stage: str, days: Iterable[date] | None = None) -> pd.DataFrame:
    chosen = storage.list_partition_days(settings, stage) if days is None else list(days)
    frames = [storage.read_partition(settings, stage, d) for d in chosen if storage.has_partition(settings, stage, d)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
