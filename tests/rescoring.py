"""Test helpers (not the product's): the test rows a training holds out, and a version re-scored on them."""

from __future__ import annotations

import pandas as pd

from smpp.lifecycle.registry import version_dir
from smpp.settings import Settings
from smpp.training.metrics import scored_or_error
from smpp.training.model import load_model, predict_frame
from smpp.training.split import labelled_rows
from smpp.training.train import split_for_training


def held_out_rows(settings: Settings, features: pd.DataFrame) -> pd.DataFrame:
    """The test rows train_and_evaluate would hold out of `features`."""
    return split_for_training(settings, features).test


def rescore_version(settings: Settings, version: str, rows: pd.DataFrame) -> dict:
    """A registered version's metrics on `rows` (e.g. another version's test slice)."""
    labelled = labelled_rows(rows)
    return scored_or_error(
        labelled["label"].to_numpy(float),
        predict_frame(load_model(version_dir(settings, version)), labelled),
        labelled["subreddit"].to_numpy(),
        settings.training.within_subreddit_min_posts,
    )
