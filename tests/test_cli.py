"""`python -m smpp predict` and `python -m smpp evaluate` end to end on tiny inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from smpp import cli
from smpp.features import schema

SUBREDDITS = {"pics": 3.0, "aww": 2.0, "funny": 1.0}


def _feature_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A labelled feature table without embeddings: subreddit level + title length signal."""
    rng = np.random.default_rng(seed)
    subs = rng.choice(list(SUBREDDITS), size=n)
    frame = pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n)],
            "subreddit": subs,
            "author": [f"u{i % 20}" for i in range(n)],
            "created_utc": 1_700_000_000 + np.sort(rng.integers(0, 40 * 86400, n)),
        }
    )
    for column in schema.META_COLUMNS:
        frame[column] = rng.normal(size=n).astype(np.float32)
    frame["label"] = np.array([SUBREDDITS[s] for s in subs]) + 0.5 * frame["title_chars"] + 0.1 * rng.normal(size=n)
    return frame


@pytest.fixture
def trained_version(settings):
    from smpp.lifecycle.registry import new_version_id, version_dir
    from smpp.training import train_and_evaluate

    quick = settings.with_overrides(training={**settings.training.model_dump(), "epochs": 3, "batch_size": 32})
    version = new_version_id()
    train_and_evaluate(quick, _feature_frame(), version_dir(quick, version))
    return version


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_predict_scores_good_lines_and_reports_bad_ones(settings, trained_version, tmp_path, capsys):
    posts = [
        {"title": "My cat", "subreddit": "pics", "author": "u1", "created_utc": 1_704_000_000},
        "this is not json",
        {"title": "No subreddit", "author": "u2", "created_utc": 1_704_000_000},
        {"title": "A dog", "subreddit": "funny", "author": None, "created": "2024-01-02T10:00:00Z"},
        [1, 2, 3],
        {"title": "Bad time", "subreddit": "pics", "created_utc": "yesterday"},
        {
            "title": "Missing image file",
            "subreddit": "aww",
            "created_utc": 1_704_000_000,
            "image_path": str(tmp_path / "none.jpg"),
        },
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(p if isinstance(p, str) else json.dumps(p) for p in posts) + "\n")
    code = cli.main(["predict", str(path), "--version", trained_version])
    out = _lines(capsys)
    assert code == 1  # some lines failed
    assert [o["line"] for o in out] == [1, 2, 3, 4, 5, 6, 7]
    errors = {o["line"]: o["error"] for o in out if "error" in o}
    assert set(errors) == {2, 3, 5, 6}
    assert "JSON" in errors[2] and "subreddit" in errors[3] and "object" in errors[5] and "created" in errors[6]
    scored = {o["line"]: o for o in out if "error" not in o}
    assert all(math.isfinite(o["predicted_label"]) and o["model_version"] == trained_version for o in scored.values())
    # the subreddit offset is learnt: pics (level 3) scores above funny (level 1)
    assert scored[1]["predicted_label"] > scored[4]["predicted_label"]
    assert "image" in scored[7]["warning"]


def test_predict_without_champion_says_so(settings, tmp_path, capsys):
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"title": "x", "subreddit": "pics", "created_utc": 1}) + "\n")
    assert cli.main(["predict", str(path)]) == 2
    assert "no champion" in capsys.readouterr().err


def _archive(path, n: int = 150, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        sub = list(SUBREDDITS)[i % 3]
        score = int(np.expm1(SUBREDDITS[sub] + rng.random()))
        lines.append(
            json.dumps(
                {
                    "id": f"t{i:04d}",
                    "subreddit": sub,
                    "author": f"a{i % 11}",
                    "created_utc": 1_300_000_000 + 3600 * i,
                    "title": f"post {i} about {sub}",
                    "score": score,
                    "is_self": bool(i % 2),
                    "over_18": False,
                    "domain": "i.imgur.com" if i % 2 == 0 else f"self.{sub}",
                    "selftext_len": 0,
                    "url": "http://x/y.jpg",
                }
            )
        )
    lines.insert(7, "{broken json")
    path.write_text("\n".join(lines) + "\n")


def test_evaluate_writes_metrics_and_prints_them_last(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMPP_TRAINING__EPOCHS", "2")
    monkeypatch.setenv("SMPP_TRAINING__WITHIN_SUBREDDIT_MIN_POSTS", "5")
    from smpp import settings as settings_module

    settings_module.get_settings.cache_clear()
    archive = tmp_path / "dump.ndjson"
    _archive(archive)
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(archive), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out.strip().splitlines()[-1])
    written = json.loads((out / "metrics.json").read_text())
    assert printed == written
    for name in ("model", "baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge"):
        for key in ("spearman", "spearman_within_subreddit", "mae", "rmse"):
            assert key in written[name], (name, key)
        assert written[name]["mae"] > 0
    # 80/20 by created time: every test post is newer than every train/validation post
    rows = written["rows"]
    assert rows["test"] == pytest.approx(0.2 * 150, abs=1)
    window = written["data_window"]
    assert window["test"]["start_utc"] > window["val"]["end_utc"] > window["train"]["end_utc"]
    assert written["lineage"] if "lineage" in written else (out / "lineage.json").is_file()
    assert (out / "model.keras").is_file() and (out / "model_card.md").is_file()
    assert "title_emb" in written["features"]["embedding_towers"]
    assert "author_prior_mean_label" in written["features"]["tabular_columns"]
    assert "title_oc_tag" in written["features"]["tabular_columns"]  # the title-form features, by name
    # each long step's time, in metrics.json and as the last stderr line before the path
    steps = written["timing_s"]["steps"]
    assert set(steps) == {"read archive", "history", "title embeddings", "feature table", "training and evaluation"}
    assert all(seconds >= 0 for seconds in steps.values())
    assert "time per step: read archive" in captured.err and "training and evaluation" in captured.err
