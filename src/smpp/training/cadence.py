"""Which days retrain, and which rows a day trains on: the bounds that keep the daily step's cost flat.

Both depend only on the day and the data, never on the order runs happen in, so a backfill run in
any order (or a re-run) trains on the same days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

EPOCH = date(1970, 1, 1)


def is_training_day(day: date, every_days: int) -> bool:
    """True on days whose number since 1970-01-01 is a multiple of `every_days` (1: every day)."""
    if every_days < 1:
        raise ValueError(f"retrain_every_days must be >= 1, got {every_days}")
    return (day - EPOCH).days % every_days == 0


def days_until_training(day: date, every_days: int) -> int:
    """Days from `day` to the next training day (0 when `day` trains)."""
    return (-(day - EPOCH).days) % every_days


def newest_partitions(
    days: list[date], row_count: Callable[[int], int], window_rows: int | None, matured_before: date | None = None
) -> int:
    """The index of the first of the newest day partitions that hold the row window.

    `days` ascending; `row_count(i)` the feature rows of partition i (asked newest first, only as far
    as needed). Partitions are taken newest first until the rows of days before `matured_before`
    (whose labels have all matured) reach `window_rows`; newer days are always taken but not
    counted, since many of their rows have no label yet. The first pass then keeps exactly the
    newest `window_rows` labelled rows of what was read.
    """
    if window_rows is None:
        return 0
    counted = 0
    for position in range(len(days) - 1, -1, -1):
        if matured_before is None or days[position] < matured_before:
            counted += row_count(position)
            if counted >= window_rows:
                return position
    return 0
