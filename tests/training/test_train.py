import json

import numpy as np
import pytest

from rescoring import held_out_rows, rescore_version
from smpp.features import schema
from smpp.training import load_model, predict_frame, train_and_evaluate
from smpp.training.plots import PLOT_FILES
from smpp.training.split import chronological_split

TOP_LEVEL_KEYS = {
    "model",
    "baseline_subreddit_mean",
    "baseline_metadata_gbm",
    "baseline_text_ridge",
    "rows",
    "data_window",
    "embedding_dims",
    "profile",
    "skipped_reason",
}


def _reject_constant(name):
    raise AssertionError(f"JSON contains {name}")


def _strict_json(path):
    return json.loads(path.read_text(), parse_constant=_reject_constant)


def _walk_numbers(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk_numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_numbers(value)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield node


def test_version_folder_holds_every_artefact(trained):
    _, report = trained
    folder = report.version_dir
    expected = {"model.keras", "metrics.json", "history.json", "model_card.md", "settings.json", "lineage.json"}
    assert expected | set(PLOT_FILES.values()) <= {p.name for p in folder.iterdir()}
    for plot in PLOT_FILES.values():
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _strict_json(folder / "lineage.json")["partitions"] == ["2026-11-01"]
    history = _strict_json(folder / "history.json")
    assert len(history["history"]["val_loss"]) == history["epochs_run"] >= history["best_epoch"] >= 1


def test_metrics_json_is_complete_and_finite(trained):
    _, report = trained
    metrics = _strict_json(report.version_dir / "metrics.json")
    assert TOP_LEVEL_KEYS <= set(metrics)
    assert metrics["skipped_reason"] is None and report.skipped_reason is None
    assert metrics["rows"] == report.rows and report.rows["train"] + report.rows["val"] + report.rows["test"] == 720
    assert metrics["embedding_dims"] == {"title_emb": 32, "caption_emb": 32, "image_emb": 16, "joint_emb": None}
    for name in ("model", "baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge"):
        block = metrics[name]
        for key in ("spearman", "spearman_within_subreddit", "spearman_within_subreddit_weighted", "mae", "rmse", "r2"):
            assert isinstance(block[key], float), (name, key)
        assert block["n"] == report.rows["test"]
    assert metrics["model"]["latency_ms_per_post"] > 0 and metrics["model"]["params"] > 1000
    assert all(np.isfinite(v) for v in _walk_numbers(metrics))


def test_model_beats_baselines_within_subreddits(trained):
    _, report = trained
    metrics = report.metrics
    model = metrics["model"]["spearman_within_subreddit"]
    assert metrics["baseline_subreddit_mean"]["spearman_within_subreddit"] == 0.0  # constant within a subreddit
    assert model > 0.6
    for name in ("baseline_metadata_gbm", "baseline_text_ridge"):
        assert model > metrics[name]["spearman_within_subreddit"], name


def test_split_is_chronological(trained, features):
    settings, report = trained
    window = report.metrics["data_window"]
    assert (
        window["train"]["end_utc"]
        < window["val"]["start_utc"]
        <= window["val"]["end_utc"]
        < window["test"]["start_utc"]
    )
    split = chronological_split(features, settings.training.val_fraction, settings.training.test_fraction)
    assert split.rows == {k: report.rows[k] for k in ("train", "val", "test")}


def test_saved_model_reproduces_its_metrics_on_raw_features(trained, features):
    settings, report = trained
    # the test rows as the pipeline re-scores them: history features derived from the whole table
    test = held_out_rows(settings, features)
    first, second = load_model(report.version_dir), load_model(report.version_dir)
    np.testing.assert_array_equal(predict_frame(first, test), predict_frame(second, test))
    layer_names = {layer.name for layer in first.layers}
    assert {"tabular_norm", "title_emb_norm", "subreddit_lookup", "subreddit_offset"} <= layer_names
    rescored = rescore_version(settings, report.version_dir.name, test)
    for key in ("mae", "rmse", "spearman", "spearman_within_subreddit"):
        assert rescored[key] == pytest.approx(report.metrics["model"][key], abs=1e-5), key


def test_missing_modalities_and_new_subreddits_still_score(trained, features):
    _, report = trained
    model = load_model(report.version_dir)
    rows = features.head(6).drop(columns=["label"]).copy()
    for column in ("title_emb", "caption_emb", "image_emb"):
        rows[column] = [None] * len(rows)
    for column in schema.IMAGE_FEATURE_COLUMNS:
        rows[column] = np.nan
    rows.loc[0, "subreddit"] = "never_seen_before"
    predictions = predict_frame(model, rows)
    assert predictions.shape == (6,) and np.isfinite(predictions).all()
    # Columns the frame lacks entirely count as missing modalities.
    bare = features.head(3).drop(columns=["label", "caption_emb", "image_emb", "joint_emb"])
    assert np.isfinite(predict_frame(model, bare)).all()
    assert predict_frame(model, features.head(0)).shape == (0,)


def test_text_only_rows_are_trained_on(trained, features):
    _, report = trained
    text_only = features["image_emb"].isna().sum()
    assert text_only > 100
    assert report.rows["labelled"] == len(features)  # no row dropped for a missing modality


def test_wrong_embedding_dimension_is_a_clear_error(trained, features):
    _, report = trained
    model = load_model(report.version_dir)
    rows = features.head(2).copy()
    rows["title_emb"] = [np.zeros(8, dtype=np.float32)] * 2
    with pytest.raises(ValueError, match="title_emb"):
        predict_frame(model, rows)


def test_too_few_rows_skips_training_and_says_so(tmp_path, make_features, make_settings):
    settings = make_settings(tmp_path / "data", min_rows=50)
    settings.model_profile = "tiny"
    small = make_features(n_rows=40)
    small.loc[:4, "label"] = np.nan  # immature posts do not count
    report = train_and_evaluate(settings, small, tmp_path / "v1")
    assert report.skipped_reason is not None and "35 < min_rows=50" in report.skipped_reason
    metrics = _strict_json(tmp_path / "v1" / "metrics.json")
    assert metrics["skipped_reason"] == report.skipped_reason
    assert metrics["model"] is None and metrics["rows"]["labelled"] == 35
    assert not (tmp_path / "v1" / "model.keras").exists()
    card = (tmp_path / "v1" / "model_card.md").read_text()
    assert "Skipped" in card and "RANDOM ENCODER WEIGHTS" in card and "title_emb" in card


def test_settings_snapshot_redacts_secrets(tmp_path, make_features, make_settings):
    from smpp.settings import Settings

    base = make_settings(tmp_path / "data")
    settings = Settings(
        **{
            **base.model_dump(),
            "database_url": "postgresql+psycopg2://smpp:hunter2@db:5432/smpp",
            "reddit": {"client_id": "abc", "client_secret": "s3cret", "password": "pa55"},
        }
    )
    train_and_evaluate(settings, make_features(n_rows=10), tmp_path / "v1")
    text = (tmp_path / "v1" / "settings.json").read_text()
    assert "s3cret" not in text and "pa55" not in text and "hunter2" not in text and "abc" not in text
    snapshot = json.loads(text)
    # the secrets are masked by their declared type, not guessed from key names
    assert snapshot["reddit"]["client_id"] == snapshot["reddit"]["client_secret"] == "**********"
    assert snapshot["database_url"] == "postgresql+psycopg2://smpp:***@db:5432/smpp"  # host and database kept
    assert snapshot["encoders"]["caption_max_new_tokens"] == 24 and snapshot["training"]["min_rows"] == 30
    assert settings.reddit.client_id.get_secret_value() == "abc"  # the settings themselves keep the values
    shown = repr(settings) + str(settings) + settings.model_dump_json()  # logs and dumps alike
    assert not any(secret in shown for secret in ("s3cret", "pa55", "hunter2"))


def test_a_version_appears_only_when_complete(tmp_path, make_features, make_settings, monkeypatch):
    import smpp.training.train as train_module

    settings = make_settings(tmp_path / "data", min_rows=1000)
    models = settings.models_dir
    seen = {}

    def first_pass(*args, **kwargs):  # mid-build: settings.json written, not yet visible as a version
        seen["entries"] = sorted(p.name for p in models.iterdir())
        seen["staged"] = sorted(str(p.relative_to(models)) for p in models.rglob("settings.json"))
        raise RuntimeError("training died")

    monkeypatch.setattr(train_module, "run_first_pass", first_pass)
    with pytest.raises(RuntimeError, match="training died"):
        train_and_evaluate(settings, make_features(n_rows=40), models / "20260101T000000Z-abcdef")
    assert len(seen["entries"]) == 1 and seen["entries"][0].startswith(".tmp-20260101T000000Z-abcdef@")
    assert seen["staged"] == [f"{seen['entries'][0]}/20260101T000000Z-abcdef/settings.json"]
    assert list(models.iterdir()) == []  # a failed build leaves nothing

    monkeypatch.undo()
    report = train_and_evaluate(settings, make_features(n_rows=40), models / "20260101T000000Z-abcdef")
    assert report.version_dir == models / "20260101T000000Z-abcdef"
    assert [p.name for p in models.iterdir()] == ["20260101T000000Z-abcdef"]
    assert json.loads((report.version_dir / "metrics.json").read_text())["version"] == "20260101T000000Z-abcdef"


def test_stale_staging_folders_are_removed_live_ones_kept(tmp_path, make_features, make_settings):
    import os
    import socket
    import subprocess
    import sys

    from smpp.lifecycle.registry import list_versions

    settings = make_settings(tmp_path / "data", min_rows=1000)
    models = settings.models_dir
    host = socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = models / f".tmp-20260101T000000Z-000001@{host}@{int(gone.stdout)}" / "20260101T000000Z-000001"
    alive = models / f".tmp-20260101T000000Z-000002@{host}@{os.getppid()}" / "20260101T000000Z-000002"
    elsewhere = models / ".tmp-20260101T000000Z-000003@other-host@1" / "20260101T000000Z-000003"
    old = models / ".tmp-20260101T000000Z-000004@other-host@2" / "20260101T000000Z-000004"
    for folder in (dead, alive, elsewhere, old):
        folder.mkdir(parents=True)
        (folder / "settings.json").write_text("{}")
    os.utime(old.parent, (0, 0))
    train_and_evaluate(settings, make_features(n_rows=40), models / "20260101T000000Z-000005")
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [alive.parent.name, elsewhere.parent.name, "20260101T000000Z-000005"]
    )
    assert [v["version"] for v in list_versions(settings)] == ["20260101T000000Z-000005"]  # staging never listed


def test_missing_label_column_is_an_error(tmp_path, make_features, make_settings):
    with pytest.raises(ValueError, match="label"):
        train_and_evaluate(make_settings(tmp_path), make_features(n_rows=10).drop(columns=["label"]), tmp_path / "v")


def test_posts_all_at_one_time_skip_instead_of_leaking_across_the_split(tmp_path, make_features, make_settings):
    frame = make_features(n_rows=40)
    frame["created_utc"] = 1_780_000_000
    report = train_and_evaluate(make_settings(tmp_path / "data"), frame, tmp_path / "v1")
    assert report.skipped_reason is not None and "train, val empty" in report.skipped_reason
    assert report.rows["test"] == 40
