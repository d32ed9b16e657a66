"""Synthetic feature frames with a planted multimodal signal, and one trained version shared by the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smpp.features import schema

SUBREDDIT_EFFECTS = {"pics": 2.0, "aww": 1.0, "EarthPorn": 0.0, "funny": -1.0}
TITLE_DIM = 32
IMAGE_DIM = 16
START_UTC = 1_780_000_000


def synthetic_features(
    n_rows: int = 720, seed: int = 0, title_dim: int = TITLE_DIM, image_dim: int = IMAGE_DIM
) -> pd.DataFrame:
    """A feature table shaped like smpp.features.schema whose label depends on subreddit, title and image.

    label = 3 + subreddit effect + 0.8 * title.w_title + 0.8 * image.w_image (image posts only) + noise.
    The image term is invisible to the title ridge and metadata baselines, so only a
    multimodal model can rank within a subreddit beyond them. ~5% of titles and all joint
    embeddings are missing; caption and image exist only for image posts (~60%).
    """
    rng = np.random.default_rng(seed)
    subreddits = rng.choice(list(SUBREDDIT_EFFECTS), size=n_rows)
    created = START_UTC + np.sort(rng.integers(0, 30 * 86400, size=n_rows))
    has_image = rng.random(n_rows) < 0.6
    has_title = rng.random(n_rows) > 0.05
    w_title = rng.normal(size=title_dim)
    w_title /= np.linalg.norm(w_title)
    w_image = rng.normal(size=image_dim)
    w_image /= np.linalg.norm(w_image)
    titles = rng.normal(size=(n_rows, title_dim)).astype(np.float32)
    images = rng.normal(size=(n_rows, image_dim)).astype(np.float32)
    captions = rng.normal(size=(n_rows, title_dim)).astype(np.float32)
    label = (
        3.0
        + np.array([SUBREDDIT_EFFECTS[s] for s in subreddits])
        + 0.8 * np.where(has_title, titles @ w_title, 0.0)
        + 0.8 * np.where(has_image, images @ w_image, 0.0)
        + 0.2 * rng.normal(size=n_rows)
    )
    frame = pd.DataFrame(
        {
            "post_id": [f"p{i:05d}" for i in range(n_rows)],
            "subreddit": subreddits,
            "author": [None if i % 7 == 0 else f"user{i % 50}" for i in range(n_rows)],
            "created_utc": created.astype("int64"),
            "label": np.clip(label, 0, None),
        }
    )
    for column in schema.META_COLUMNS:
        frame[column] = rng.normal(size=n_rows).astype(np.float32)
    frame["has_image"] = has_image.astype(np.float32)
    for column in schema.IMAGE_FEATURE_COLUMNS:
        frame[column] = np.where(has_image, rng.normal(size=n_rows), np.nan).astype(np.float32)
    frame["title_emb"] = [titles[i] if has_title[i] else None for i in range(n_rows)]
    frame["caption_emb"] = [captions[i] if has_image[i] else None for i in range(n_rows)]
    frame["image_emb"] = [images[i] if has_image[i] else None for i in range(n_rows)]
    frame["joint_emb"] = [None] * n_rows
    return frame


def training_settings(data_dir, **training_overrides):
    from smpp.settings import Settings, TrainingSettings

    # 720 synthetic rows (~470 train, ~140 test) are below the production evidence minimums; the
    # planted signal makes them enough here (tests/faults/test_champion_faults.py checks the minimums)
    training = {
        "epochs": 40,
        "batch_size": 32,
        "patience": 8,
        "learning_rate": 3e-3,
        "min_rows": 30,
        "promotion_min_train_rows": 100,
        "promotion_min_test_rows": 50,
    }
    training.update(training_overrides)
    return Settings(data_dir=data_dir, model_profile="offline", training=TrainingSettings(**training))


@pytest.fixture(scope="session")
def make_features():
    return synthetic_features


@pytest.fixture(scope="session")
def make_settings():
    return training_settings


@pytest.fixture(scope="session")
def features() -> pd.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="session")
def trained(tmp_path_factory, features):
    """(settings, report) of one version trained on the synthetic frame, shared by the module's tests."""
    from smpp.lifecycle.registry import new_version_id, version_dir
    from smpp.training import train_and_evaluate

    settings = training_settings(tmp_path_factory.mktemp("trained") / "data")
    version = new_version_id()
    report = train_and_evaluate(
        settings,
        features,
        version_dir(settings, version),
        lineage={"partitions": ["2026-11-01"], "code_version": "test"},
    )
    return settings, report
