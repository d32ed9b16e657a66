"""Chronological train / validation / test split (never random: the model must predict the future)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from smpp.settings import Settings


@dataclass
class ChronoSplit:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def rows(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def labelled_rows(features: pd.DataFrame) -> pd.DataFrame:
    """Rows with a finite label (immature posts have none)."""
    if "label" not in features:
        raise ValueError("feature frame has no 'label' column")
    labels = pd.to_numeric(features["label"], errors="coerce")
    return features.loc[np.isfinite(labels.to_numpy(dtype=float, na_value=np.nan))].reset_index(drop=True)


def within_window(features: pd.DataFrame, window_days: int | None, window_rows: int | None = None) -> pd.DataFrame:
    """Keep the newest `window_days` of history and at most the newest `window_rows` rows (None: no bound).

    The row cut falls on a timestamp boundary (posts sharing the cut's created_utc are all dropped),
    so the window never holds more than `window_rows` and the split's strict time order still holds.
    """
    if features.empty:
        return features
    keep = np.ones(len(features), dtype=bool)
    times = features["created_utc"].to_numpy()
    if window_days is not None:
        keep &= times >= int(times.max()) - window_days * 86400
    if window_rows is not None and keep.sum() > window_rows:
        ordered = np.sort(times[keep])
        # strictly after the newest time that would not fit: ties at the boundary go together
        keep &= times > ordered[len(ordered) - window_rows - 1]
    if keep.all():
        return features
    return features.loc[keep].reset_index(drop=True)


def chronological_split(features: pd.DataFrame, val_fraction: float, test_fraction: float) -> ChronoSplit:
    """Oldest rows train, the next slice validates, the newest slice tests.

    Cuts fall on timestamp boundaries, so posts sharing a `created_utc` stay in one slice and
    max(train) < min(val) <= max(val) < min(test) holds strictly.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"bad split fractions: val={val_fraction}, test={test_fraction}")
    ordered = features.sort_values(["created_utc", "post_id"], kind="stable").reset_index(drop=True)
    n = len(ordered)
    if n == 0:
        return ChronoSplit(ordered, ordered, ordered)
    times = ordered["created_utc"].to_numpy()
    n_test = max(1, int(round(n * test_fraction)))
    n_val = max(1, int(round(n * val_fraction)))
    test_start_time = times[max(0, n - n_test)]
    val_start_time = times[max(0, n - n_test - n_val)]
    is_test = times >= test_start_time
    is_val = (times >= val_start_time) & ~is_test
    is_train = times < val_start_time
    return ChronoSplit(
        train=ordered.loc[is_train].reset_index(drop=True),
        val=ordered.loc[is_val].reset_index(drop=True),
        test=ordered.loc[is_test].reset_index(drop=True),
    )


def skip_reason(n_labelled: int, split: ChronoSplit | None, settings: Settings) -> str | None:
    """Why a training on this split must not run and what to do about it (after the dash); None when it can."""
    matures = f"a post's label matures {settings.label_age_hours:g} h after it was posted"
    if n_labelled < settings.training.min_rows:
        return (
            f"too few labelled rows: {n_labelled} < min_rows={settings.training.min_rows}"
            f" — backfill more days ({matures}), or lower training.min_rows"
        )
    if split is None:
        return f"no labelled rows in the training window — backfill more days ({matures})"
    empty = [name for name, count in split.rows.items() if count == 0]
    if empty:
        return (
            f"the chronological split left {', '.join(empty)} empty: too few distinct post times ({split.rows})"
            " — backfill more days"
        )
    return None
