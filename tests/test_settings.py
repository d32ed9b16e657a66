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


def test_reddit_secrets_are_masked_in_every_dump_and_readable_where_needed(monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("SMPP_REDDIT__CLIENT_ID", "id-7f3a")
    monkeypatch.setenv("SMPP_REDDIT__CLIENT_SECRET", "secret-7f3a")
    monkeypatch.setenv("SMPP_REDDIT__PASSWORD", "password-7f3a")
    s = Settings(data_dir=tmp_path)
    for dump in (json.dumps(s.model_dump(mode="json")), s.model_dump_json(), str(s.model_dump()), repr(s), str(s)):
        assert "7f3a" not in dump
    assert s.model_dump(mode="json")["reddit"]["client_id"] == "**********"
    assert s.reddit.client_secret.get_secret_value() == "secret-7f3a"
    copy = s.with_overrides(source="archive")  # run-level copies keep the real values
    assert (copy.reddit.client_id.get_secret_value(), copy.reddit.password.get_secret_value()) == (
        "id-7f3a",
        "password-7f3a",
    )


def test_database_password_is_hidden_in_dumps_and_kept_for_connections(monkeypatch, tmp_path):
    url = "postgresql+psycopg2://smpp:hunter2@db:5432/smpp"
    monkeypatch.setenv("SMPP_DATABASE_URL", url)
    s = Settings(data_dir=tmp_path)
    assert s.database_url == url  # what session_for gets
    assert (
        s.model_dump()["database_url"]
        == s.model_dump(mode="json")["database_url"]
        == "postgresql+psycopg2://smpp:***@db:5432/smpp"
    )
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()
    assert s.with_overrides(label_age_hours=6).database_url == url
    in_query = Settings(data_dir=tmp_path, database_url="postgresql://smpp@db/smpp?password=hunter2")
    assert "hunter2" not in in_query.model_dump_json()
    monkeypatch.delenv("SMPP_DATABASE_URL")
    assert Settings(data_dir=tmp_path).model_dump()["database_url"] == f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
