from pathlib import Path

import pytest

from smpp.settings import Settings


def test_defaults_are_local(monkeypatch, tmp_path):
    monkeypatch.delenv("SMPP_DATABASE_URL", raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    assert s.model_profile in {"tiny", "offline", "production"}
    assert s.partitions_dir == tmp_path / "partitions"


def test_env_and_nested_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SMPP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SMPP_MODEL_PROFILE", "production")
    monkeypatch.setenv("SMPP_TRAINING__EPOCHS", "3")
    monkeypatch.setenv("SMPP_SUBREDDITS", '["a", "b"]')
    s = Settings()
    assert (s.data_dir, s.model_profile, s.training.epochs, s.subreddits) == (tmp_path, "production", 3, ["a", "b"])


def test_yaml_file_with_env_winning(monkeypatch, tmp_path):
    config = tmp_path / "smpp.yaml"
    config.write_text("label_age_hours: 12\nfilter:\n  drop_nsfw: false\nmodel_profile: tiny\n")
    monkeypatch.setenv("SMPP_CONFIG", str(config))
    monkeypatch.setenv("SMPP_MODEL_PROFILE", "offline")
    s = Settings()
    assert s.label_age_hours == 12 and s.filter.drop_nsfw is False and s.model_profile == "offline"


def test_missing_config_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SMPP_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="SMPP_CONFIG"):
        Settings()


def test_invalid_profile_rejected():
    with pytest.raises(ValueError):
        Settings(model_profile="huge")


def test_with_overrides_ignores_none(tmp_path):
    s = Settings(data_dir=tmp_path).with_overrides(source="archive", archive_path=None, label_age_hours=6)
    assert s.source == "archive" and s.archive_path is None and s.label_age_hours == 6
    assert isinstance(s.data_dir, Path)
