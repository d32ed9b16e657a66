"""kill -9 during each writing stage, then re-run the day: the result must equal a clean run.

The crash runs in a child process that calls the smpp.tasks function with the test's settings
(environment) and SIGKILLs itself at a chosen write (a patched commit, rename or save: deterministic,
not timed). The re-run and the clean run go through the same task in this process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text

from smpp import storage, tasks
from smpp.devtools.fake_reddit import FakeRedditServer
from smpp.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
# columns that hold the wall-clock time of the run: they differ between any two runs
CLOCK_COLUMNS = {"first_seen_at", "observed_at", "age_hours", "recorded_at"}

# argv: task, interval start, interval end, hook. The hook SIGKILLs the process at one write.
CHILD = r"""
import os, signal, socket, sys
task, start, end, hook = sys.argv[1:5]

def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_getaddrinfo = socket.getaddrinfo
def loopback_only(host, *args, **kwargs):  # the fault suite's guard, for this process too
    if host not in ("127.0.0.1", "localhost", "::1", None):
        raise OSError(f"refused outside contact: {host!r}")
    return real_getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = loopback_only

if hook.startswith("commit:"):  # the n-th warehouse commit never happens
    from sqlalchemy.orm import Session
    real_commit, calls = Session.commit, [0]
    def commit(self):
        calls[0] += 1
        if calls[0] == int(hook.split(":")[1]):
            die()
        return real_commit(self)
    Session.commit = commit
elif hook.startswith("replace:"):  # the temp file of a stage's partition is written, its rename never happens
    stage, real_replace = hook.split(":")[1], os.replace
    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith(f"/{stage}/" + os.path.basename(os.path.dirname(str(dst))) + "/part-0.parquet"):
            die()
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
elif hook == "first_pass":  # the version folder holds settings.json and lineage.json, nothing else yet
    import smpp.training.train as train
    train.run_first_pass = die

from smpp import tasks
getattr(tasks, task)(start, end)
print("finished without being killed", flush=True)
"""


def crash(task: str, start: datetime, end: datetime, hook: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, task, start.isoformat(), end.isoformat(), hook],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (
        f"child was not killed at {hook}: {done.returncode}\n{done.stderr[-3000:]}"
    )


def use_data_dir(monkeypatch, data_dir: Path):
    monkeypatch.setenv("SMPP_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    return get_settings()


def digest(frame: pd.DataFrame) -> tuple[int, str]:
    """(rows, content hash) of a table without its clock columns, independent of row order."""
    frame = frame.drop(columns=[c for c in frame.columns if c in CLOCK_COLUMNS])
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in frame.to_dict("records"))
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


def snapshot(data_dir: Path) -> dict:
    """Row counts and content hashes of every warehouse table and every day partition."""
    engine = create_engine(f"sqlite:///{data_dir / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        state = {
            f"table {t}": digest(pd.read_sql(text(f"select * from {t}"), conn)) for t in inspect(conn).get_table_names()
        }
    engine.dispose()
    for path in sorted((data_dir / "partitions").rglob("*.parquet")):
        state[f"partition {path.relative_to(data_dir)}"] = digest(pd.read_parquet(path))
    return state


# ---------------------------------------------------------------- scrape_posts (live, fake Reddit)


def _post(pid: str, created: int, subreddit: str, author: str) -> dict:
    return {
        "id": pid,
        "name": f"t3_{pid}",
        "title": f"Title of {pid}",
        "author": author,
        "subreddit": subreddit,
        "created_utc": created,
        "score": 10 + len(pid) * 3,
        "num_comments": 2,
        "over_18": False,
        "is_self": True,
        "url": f"https://www.reddit.com/r/{subreddit}/{pid}",
        "domain": f"self.{subreddit}",
    }


@pytest.fixture
def live_day(settings, monkeypatch):
    now = int(time.time())
    day_start = (now - 2 * 86400) // 86400 * 86400  # every post is past the label age: labelled at first sight
    posts = [
        _post(f"k{i:02d}", day_start + 900 * i + 5, sub, f"author{i % 4}")
        for i, sub in enumerate(["pics", "aww", "EarthPorn"] * 4)
    ]
    with FakeRedditServer(posts, client_id="id", client_secret="secret", rate_limit_per_window=1_000_000) as fake:
        for key, value in {
            "CLIENT_ID": "id",
            "CLIENT_SECRET": "secret",
            "OAUTH_URL": fake.base_url,
            "REDDIT_URL": fake.base_url,
            "SHORT_URL": fake.base_url,
        }.items():
            monkeypatch.setenv(f"SMPP_REDDIT__{key}", value)
        monkeypatch.setenv("SMPP_SUBREDDITS", '["pics", "aww", "EarthPorn"]')
        yield (datetime.fromtimestamp(day_start, UTC), datetime.fromtimestamp(day_start + 86400, UTC))
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "hook",
    [
        "commit:2",  # the warehouse holds the first subreddit only; no authors, no labels
        "replace:posts",  # the warehouse is complete; the day's posts partition is not renamed into place
    ],
)
def test_scrape_killed_mid_write_then_rerun_equals_a_clean_run(live_day, monkeypatch, tmp_path, hook):
    start, end = live_day
    use_data_dir(monkeypatch, tmp_path / "clean")
    tasks.scrape_posts(start, end)
    tasks.filter_posts(start, end)
    clean = snapshot(tmp_path / "clean")
    assert clean["table posts"][0] == 12 and clean["table labels"][0] == 12

    settings = use_data_dir(monkeypatch, tmp_path / "crashed")
    crash("scrape_posts", start, end, hook)
    assert not storage.has_partition(settings, "posts", start.date())  # nothing half-visible
    tasks.scrape_posts(start, end)
    tasks.filter_posts(start, end)
    assert snapshot(tmp_path / "crashed") == clean


# ---------------------------------------------------------------- train_model (version folder)


def _synthetic_features():
    spec = importlib.util.spec_from_file_location("training_conftest", REPO / "tests" / "training" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_features(n_rows=160, seed=3, title_dim=8, image_dim=4)


def _seed_day(settings, features: pd.DataFrame) -> None:
    """Feature partitions plus the warehouse posts and matured labels training joins to them."""
    import math

    from smpp.training.train import write_day_partitions
    from smpp.warehouse import Label, Post, session_for

    write_day_partitions(features.drop(columns=["label"]), settings.partitions_dir / "features")
    with session_for(settings.database_url) as session:
        for row in features.itertuples():
            created = int(row.created_utc)
            session.add(
                Post(
                    id=row.post_id,
                    subreddit=row.subreddit,
                    author=row.author,
                    created_utc=created,
                    source="archive",
                    first_seen_at=created,
                )
            )
            session.add(
                Label(
                    post_id=row.post_id,
                    score=round(math.expm1(row.label)),
                    label_age_hours=24.0,
                    matured_utc=created + 86400,
                    status="archive",
                )
            )
        session.commit()


def _versions(settings) -> dict:
    from smpp.lifecycle.registry import list_versions

    models = settings.models_dir
    listed = [(v["status"], v["rows"]) for v in list_versions(settings)]
    files = {v["version"]: sorted(p.name for p in (models / v["version"]).iterdir()) for v in list_versions(settings)}
    others = sorted(p.name for p in models.iterdir() if p.name not in files)  # temp / leftover folders
    return {"listed": listed, "files": sorted(files.values()), "others": others}


def test_train_killed_while_writing_the_version_then_rerun_equals_a_clean_run(settings, monkeypatch, tmp_path):
    # min_rows above the rows: the version is written (settings, lineage, metrics, card) without a fit,
    # which keeps TensorFlow out of the test; the folder is staged and published the same way either way
    for key, value in {"FIRST_PASS_IN_CHILD": "false", "TRAIN_WINDOW_ROWS": "none", "MIN_ROWS": "1000"}.items():
        monkeypatch.setenv(f"SMPP_TRAINING__{key}", value)
    features = _synthetic_features()
    last = datetime.fromtimestamp(int(features["created_utc"].max()) // 86400 * 86400, UTC)
    start, end = last, datetime.fromtimestamp(last.timestamp() + 86400, UTC)

    clean_settings = use_data_dir(monkeypatch, tmp_path / "clean")
    _seed_day(clean_settings, features)
    assert "159 < min_rows=1000" in tasks.train_model(start, end)["skipped_reason"]
    clean = _versions(clean_settings)
    assert [status for status, _ in clean["listed"]] == ["skipped"]

    settings = use_data_dir(monkeypatch, tmp_path / "crashed")
    _seed_day(settings, features)
    crash("train_model", start, end, "first_pass")
    tasks.train_model(start, end)
    assert _versions(settings) == clean
