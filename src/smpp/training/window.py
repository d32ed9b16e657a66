"""Which feature partitions a training on a day reads: the window, from Parquet footers only."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from smpp import storage
from smpp.settings import Settings
from smpp.training.cadence import newest_partitions


def training_partitions(settings: Settings, day: date) -> list[Path]:
    """Feature partitions of the training window ending with `day`.

    The newest partitions that hold `train_window_rows` matured rows (their Parquet row counts,
    read from the footers), within `train_window_days` if set; None for both = all history. Only
    these are read by the first pass and the label query, so a day's cost follows the window.
    """
    training = settings.training
    days = [d for d in storage.list_partition_days(settings, "features") if d <= day]
    if training.train_window_days is not None:
        days = [d for d in days if d > day - timedelta(days=training.train_window_days)]
    paths = [storage.partition_path(settings, "features", d) for d in days]
    if training.train_window_rows is not None and paths:
        # days ending more than label_age before the run's end have all their labels
        matured_before = day + timedelta(days=1) - timedelta(days=math.ceil(settings.label_age_hours / 24))
        # footers opened newest first, only as far back as the window reaches
        first = newest_partitions(
            days, lambda i: pq.ParquetFile(paths[i]).metadata.num_rows, training.train_window_rows, matured_before
        )
        paths = paths[first:]
    return paths


def window_start_utc(settings: Settings, paths: list[Path]) -> int | None:
    """Created-time floor of the label query: the window's first day (None: all history is read)."""
    training = settings.training
    if (training.train_window_days is None and training.train_window_rows is None) or not paths:
        return None
    first = storage.as_day(paths[0].parent.name.removeprefix("ds="))
    return int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp())
