"""Shared fixtures: isolated settings per test, and a real Postgres when one is reachable."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SAMPLE_ARCHIVE = Path(__file__).parent / "data" / "sample_archive.ndjson.zst"
POSTGRES_ADMIN_URL = os.environ.get("SMPP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings rooted in a temp dir with the tiny model profile; also what get_settings() returns."""
    from smpp import settings as settings_module

    monkeypatch.setenv("SMPP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMPP_MODEL_PROFILE", "tiny")
    monkeypatch.setenv("SMPP_IMAGES__ALLOWED_PRIVATE_HOSTS", '["127.0.0.1"]')
    monkeypatch.setenv("SMPP_IMAGES__OFFLINE", "true")  # sample image hosts are never resolved
    monkeypatch.delenv("SMPP_CONFIG", raising=False)
    monkeypatch.delenv("SMPP_DATABASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield settings_module.get_settings()
    settings_module.get_settings.cache_clear()


@pytest.fixture
def postgres_url():
    """A fresh database on the local Postgres, dropped afterwards; skipped when none is reachable."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"smpp_test_{uuid.uuid4().hex[:8]}"
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no Postgres here"
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from smpp.warehouse.db import get_engine

    get_engine(url).dispose()
    get_engine.cache_clear()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()
