"""Canary sweep: recognisable Reddit secrets set through the environment must appear nowhere the
pipeline writes (data_dir files and their names, Parquet cells, the SQLite warehouse, logs, stdout/stderr,
error messages), neither on a working live day nor on a day Reddit answers 401."""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from smpp import tasks
from smpp.devtools.fake_reddit import FakeRedditServer
from smpp.settings import get_settings
from smpp.sources.reddit import RedditAuthError

SECRET = "CANARY-7f3a9e"
CLIENT_ID = "CANARYID-1b2c"
CANARIES = (SECRET, CLIENT_ID)


def _post(pid: str, created: int, subreddit: str, author: str) -> dict:
    return {
        "id": pid,
        "name": f"t3_{pid}",
        "title": f"A photo called {pid}",
        "author": author,
        "subreddit": subreddit,
        "created_utc": created,
        "score": 40 + len(pid),
        "num_comments": 3,
        "over_18": False,
        "is_self": True,
        "url": f"https://www.reddit.com/r/{subreddit}/{pid}",
        "domain": f"self.{subreddit}",
    }


def _leaks(root: Path) -> list[str]:
    """Every place under `root` (file names, raw bytes, decoded Parquet cells) holding a canary."""
    found = []
    for path in sorted(p for p in root.rglob("*")):
        for canary in CANARIES:
            if canary in str(path.relative_to(root)):
                found.append(f"{path} (name): {canary}")
        if not path.is_file():
            continue
        raw = path.read_bytes()
        texts = [raw.decode("latin-1")]
        if path.suffix == ".parquet" and raw[:4] == b"PAR1":  # cells may sit in compressed pages
            texts.append(repr(pq.read_table(path).to_pylist()) + repr(pq.read_schema(path).metadata))
        found += [f"{path}: {canary}" for canary in CANARIES if any(canary in t for t in texts)]
    return found


def test_no_secret_reaches_any_file_log_or_error(settings, monkeypatch, caplog, capfd):
    now = int(time.time())
    day_start = (now - 2 * 86400) // 86400 * 86400  # every post is past the label age
    posts = [_post(f"c{i}", day_start + 600 * i + 1, sub, f"user{i % 3}") for i, sub in enumerate(["pics", "aww"] * 4)]
    server = FakeRedditServer(
        posts,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        username="canarybot",
        password=SECRET,
        rate_limit_per_window=1_000_000,
    )
    with server:
        env = {
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": SECRET,
            "USERNAME": "canarybot",
            "PASSWORD": SECRET,
            "OAUTH_URL": server.base_url,
            "REDDIT_URL": server.base_url,
            "SHORT_URL": server.base_url,
        }
        for key, value in env.items():
            monkeypatch.setenv(f"SMPP_REDDIT__{key}", value)
        monkeypatch.setenv("SMPP_SUBREDDITS", '["pics", "aww"]')
        monkeypatch.setenv("SMPP_TRAINING__FIRST_PASS_IN_CHILD", "false")
        get_settings.cache_clear()
        start = datetime.fromtimestamp(day_start, UTC)
        end = datetime.fromtimestamp(day_start + 86400, UTC)
        caplog.set_level(logging.DEBUG)  # prawcore and praw log requests at DEBUG

        # a live day: warehouse, partitions, run metrics, a (skipped) model version with its settings
        assert tasks.scrape_posts(start, end)["new_posts"] == 8
        tasks.refresh_scores(start, end)
        tasks.filter_posts(start, end)
        trained = tasks.train_model(start, end)
        assert (Path(trained["version_dir"]) / "settings.json").is_file()
        tasks.evaluate_and_publish(start, end, trained["version"])

        # a day Reddit refuses: 401 without a www-authenticate header
        server.revoke_api_access(www_authenticate=False)
        get_settings.cache_clear()
        with pytest.raises(RedditAuthError) as failed:
            tasks.scrape_posts(start + (end - start), end + (end - start))
        error_text = "".join(traceback.format_exception(failed.value)) + repr(failed.value)

    data_dir = get_settings().data_dir
    assert any(data_dir.rglob("*.parquet")) and any(data_dir.rglob("warehouse.sqlite*"))
    leaks = _leaks(data_dir)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records) + caplog.text
    out, err = capfd.readouterr()
    leaks += [
        f"{where}: {c}"
        for where, text in (("logs", logged), ("stdout", out), ("stderr", err), ("401 error", error_text))
        for c in CANARIES
        if c in text
    ]
    assert not leaks, "secrets written out:\n" + "\n".join(leaks)
