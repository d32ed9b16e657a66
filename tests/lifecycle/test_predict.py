"""`smpp predict`: author facts (input > warehouse > Reddit > unknown) and real images through image towers."""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from smpp import cli
from smpp.features import schema

POST_UTC = 1_704_000_000
DAY = 86_400
SUBREDDITS = {"pics": 3.0, "aww": 2.0, "funny": 1.0}


def _frame(n: int = 200, seed: int = 0, dims: dict[str, int] | None = None) -> pd.DataFrame:
    """A labelled feature table; with `dims`, embedding columns the label partly depends on."""
    rng = np.random.default_rng(seed)
    subs = rng.choice(list(SUBREDDITS), size=n)
    frame = pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n)],
            "subreddit": subs,
            "author": [f"u{i % 20}" for i in range(n)],
            "created_utc": 1_700_000_000 + np.sort(rng.integers(0, 40 * DAY, n)),
        }
    )
    for column in schema.META_COLUMNS:
        frame[column] = rng.normal(size=n).astype(np.float32)
    label = np.array([SUBREDDITS[s] for s in subs]) + 0.5 * frame["author_link_karma_log"] + 0.1 * rng.normal(size=n)
    has_image = rng.random(n) < 0.6
    for column, dim in (dims or {}).items():
        vectors = rng.normal(size=(n, dim)).astype(np.float32)
        frame[column] = [vectors[i] if has_image[i] else None for i in range(n)]
        label = label + np.where(has_image, vectors[:, 0], 0.0)
    if dims:
        frame["has_image"] = has_image.astype(np.float32)
    frame["label"] = np.clip(label, 0, None)
    return frame


def _train(settings, frame: pd.DataFrame) -> str:
    from smpp.lifecycle.registry import new_version_id, version_dir
    from smpp.training import train_and_evaluate

    quick = settings.with_overrides(training={**settings.training.model_dump(), "epochs": 3, "batch_size": 32})
    version = new_version_id()
    train_and_evaluate(quick, frame, version_dir(quick, version))
    return version


@pytest.fixture
def trained_version(settings):
    return _train(settings, _frame())


@pytest.fixture
def model_frames(monkeypatch):
    """Every feature frame handed to the model by predict (a spy on predict_frame)."""
    import smpp.training.model as model_module

    frames: list[pd.DataFrame] = []
    real = model_module.predict_frame

    def spy(model, features):
        frames.append(features.copy())
        return real(model, features)

    monkeypatch.setattr(model_module, "predict_frame", spy)
    return frames


def _run(tmp_path, capsys, posts: list, *args: str) -> tuple[int, list[dict]]:
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(p if isinstance(p, str) else json.dumps(p) for p in posts) + "\n")
    code = cli.main(["predict", str(path), *args])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _snapshot(
    settings, name: str, created_utc: int | None, karma: list[tuple[int, int, int]], fullname: str | None = None
) -> None:
    """Warehouse author with (observed_at, link_karma, comment_karma) snapshots."""
    from smpp.sources.records import AuthorRecord
    from smpp.warehouse import session_for
    from smpp.warehouse.ingest import ingest_authors

    with session_for(settings.database_url) as session:
        for observed_at, link, comment in karma:
            ingest_authors(session, [AuthorRecord(name, fullname, created_utc, link, comment, observed_at)])


def _row(frame: pd.DataFrame, post_id: str) -> pd.Series:
    return frame.set_index("post_id").loc[post_id]


def test_warehouse_author_facts_reach_the_model(settings, trained_version, tmp_path, capsys, model_frames):
    account_utc = POST_UTC - 400 * DAY
    # the first snapshot is what the pipeline trained on; later karma must not leak in
    _snapshot(settings, "alice", account_utc, [(POST_UTC - 30 * DAY, 10, 20), (POST_UTC - DAY, 9999, 9999)])
    posts = [
        {"id": "a1", "title": "Known author", "subreddit": "pics", "author": "alice", "created_utc": POST_UTC},
        {"id": "b1", "title": "Stranger", "subreddit": "pics", "author": "bob", "created_utc": POST_UTC},
        {"id": "n1", "title": "Nobody", "subreddit": "pics", "created_utc": POST_UTC},
    ]
    code, out = _run(tmp_path, capsys, posts, "--version", trained_version)
    assert code == 0
    assert [o["author_source"] for o in out] == ["warehouse", "unknown", "unknown"]
    (frame,) = model_frames
    alice = _row(frame, "a1")
    assert alice["author_known"] == 1.0
    assert alice["author_link_karma_log"] == pytest.approx(math.log1p(10))
    assert alice["author_comment_karma_log"] == pytest.approx(math.log1p(20))
    assert alice["author_account_age_days_log"] == pytest.approx(math.log1p(400))
    for pid in ("b1", "n1"):
        row = _row(frame, pid)
        assert row["author_known"] == 0.0 and row["author_link_karma_log"] == 0.0
    # karma moves the prediction (the label follows link karma in training)
    assert out[0]["predicted_label"] != out[1]["predicted_label"]


def test_input_author_facts_win_and_bad_ones_fail_per_line(settings, trained_version, tmp_path, capsys, model_frames):
    _snapshot(settings, "alice", POST_UTC - 400 * DAY, [(POST_UTC - 30 * DAY, 10, 20)])
    base = {"title": "A post", "subreddit": "aww", "author": "alice", "created_utc": POST_UTC}
    posts = [
        {
            **base,
            "id": "in1",
            "author_link_karma": 5000,
            "author_comment_karma": 7,
            "author_created_utc": "2023-12-01T00:00:00Z",
        },
        {**base, "id": "in2", "author_link_karma": 1},  # same author, its own facts
        {**base, "id": "wh"},
        {**base, "id": "bad1", "author_link_karma": "lots"},
        {**base, "id": "bad2", "author_comment_karma": True},
        {**base, "id": "bad3", "author_created_utc": "last year"},
        {**base, "id": "bad4", "author_fullname": 12345},
        {**base, "id": "bad5", "author_link_karma": 1e400},  # JSON Infinity
        {**base, "id": "anon", "author": None, "author_link_karma": 300},
        {**base, "id": "in1", "author_link_karma": 2},
    ]
    code, out = _run(tmp_path, capsys, posts, "--version", trained_version)
    assert code == 1
    errors = {o["line"]: o["error"] for o in out if "error" in o}
    assert set(errors) == {4, 5, 6, 7, 8, 10}
    assert "duplicate id" in errors[10] and "line 1" in errors[10]
    assert "author_link_karma" in errors[4] and "author_comment_karma" in errors[5]
    assert "author_created_utc" in errors[6] and "author_fullname" in errors[7] and "author_link_karma" in errors[8]
    scored = {o["id"]: o for o in out if "error" not in o}
    assert {k: v["author_source"] for k, v in scored.items()} == {
        "in1": "input",
        "in2": "input",
        "wh": "warehouse",
        "anon": "input",
    }
    (frame,) = model_frames
    in1 = _row(frame, "in1")
    assert in1["author_link_karma_log"] == pytest.approx(math.log1p(5000))
    assert in1["author_comment_karma_log"] == pytest.approx(math.log1p(7))
    assert in1["author_account_age_days_log"] == pytest.approx(math.log1p((POST_UTC - 1_701_388_800) / DAY))
    in2 = _row(frame, "in2")
    # only link karma stated: the rest is unknown, not filled from the warehouse
    assert in2["author_link_karma_log"] == pytest.approx(math.log1p(1))
    assert in2["author_comment_karma_log"] == 0.0 and in2["author_account_age_days_log"] == 0.0
    assert _row(frame, "wh")["author_link_karma_log"] == pytest.approx(math.log1p(10))
    anon = _row(frame, "anon")
    assert anon["author_known"] == 1.0 and anon["author_link_karma_log"] == pytest.approx(math.log1p(300))


@pytest.fixture
def reddit_env(settings, monkeypatch):
    """Point the settings' Reddit client at a started FakeRedditServer: reddit_env(server)."""
    from smpp import settings as settings_module

    def point(server) -> None:
        for key, value in server.praw_kwargs().items():
            monkeypatch.setenv(f"SMPP_REDDIT__{key.upper()}", value)
        settings_module.get_settings.cache_clear()

    return point


def _fake_posts() -> list[dict]:
    return [
        {
            "id": f"x{i}",
            "name": f"t3_x{i}",
            "title": f"Post {i}",
            "author": author,
            "subreddit": "pics",
            "created_utc": POST_UTC - DAY * (10 + i),
            "score": 100 * (i + 1),
            "over_18": False,
            "is_self": False,
            "url": "https://example.com/x",
            "domain": "example.com",
            "num_comments": 0,
        }
        for i, author in enumerate(["alice", "carol", "dave"])
    ]


def test_fetch_authors_from_reddit_through_praw(
    settings, trained_version, tmp_path, capsys, model_frames, reddit_env, monkeypatch
):
    from smpp.devtools.fake_reddit import FakeRedditServer, author_fullname_for
    from smpp.settings import get_settings
    from smpp.sources.records import PostRecord
    from smpp.warehouse import session_for
    from smpp.warehouse.authors import fetch_current
    from smpp.warehouse.ingest import ingest_posts

    with FakeRedditServer(_fake_posts(), rate_limit_per_window=1_000_000) as server:
        reddit_env(server)
        live = get_settings()
        # dave's t2_ id is known to the warehouse from one of his posts, without a karma snapshot
        record = PostRecord.from_reddit_json(
            {**_fake_posts()[2], "author_fullname": author_fullname_for("dave")}, POST_UTC, "reddit"
        )
        with session_for(live.database_url) as session:
            ingest_posts(session, live, [record])
        posts = [
            {
                "id": "c1",
                "title": "Fetched",
                "subreddit": "pics",
                "author": "carol",
                "author_fullname": author_fullname_for("carol"),
                "created_utc": POST_UTC,
            },
            {
                "id": "d1",
                "title": "Fetched by stored id",
                "subreddit": "pics",
                "author": "dave",
                "created_utc": POST_UTC,
            },
            {"id": "e1", "title": "No id", "subreddit": "pics", "author": "erin", "created_utc": POST_UTC},
            {
                "id": "g1",
                "title": "Gone",
                "subreddit": "pics",
                "author": "ghost",
                "author_fullname": "t2_zzzzzz",
                "created_utc": POST_UTC,
            },
            {
                "id": "i1",
                "title": "Stated",
                "subreddit": "pics",
                "author": "carol",
                "author_link_karma": 3,
                "created_utc": POST_UTC,
            },
        ]
        code, out = _run(tmp_path, capsys, posts, "--version", trained_version, "--fetch-authors")
        assert code == 0
        by_id = {o["id"]: o for o in out}
        assert {k: v["author_source"] for k, v in by_id.items()} == {
            "c1": "reddit",
            "d1": "reddit",
            "e1": "unknown",
            "g1": "unknown",
            "i1": "input",
        }
        assert "author_fullname" in by_id["e1"]["warning"] and "did not return" in by_id["g1"]["warning"]
        # one batch for every author to fetch, through the pipeline's PRAW code
        assert len(server.requests_to("/api/user_data_by_account_ids")) == 1
        expected, _ = fetch_current(live, [author_fullname_for("carol"), author_fullname_for("dave")])
        (frame,) = model_frames
        for pid, name in (("c1", "carol"), ("d1", "dave")):
            facts = expected.set_index("name").loc[name]
            row = _row(frame, pid)
            assert row["author_known"] == 1.0
            assert row["author_link_karma_log"] == pytest.approx(math.log1p(facts["link_karma"]))
            assert row["author_comment_karma_log"] == pytest.approx(math.log1p(facts["comment_karma"]))
            assert row["author_account_age_days_log"] == pytest.approx(
                math.log1p((POST_UTC - facts["created_utc"]) / DAY)
            )

        # without the flag nothing is asked of Reddit
        before = len(server.requests_log)
        model_frames.clear()
        code, out = _run(tmp_path, capsys, posts[:2], "--version", trained_version)
        assert [o["author_source"] for o in out] == ["unknown", "unknown"] and len(server.requests_log) == before

        # Reddit's rate limit outlasting the retries: the posts are still scored, authors unknown
        monkeypatch.setenv("SMPP_REDDIT__MAX_429_RETRIES", "0")
        reddit_env(server)
        server.fail_next(429, count=5, retry_after=0)
        code, out = _run(tmp_path, capsys, posts[:1], "--version", trained_version, "--fetch-authors")
        assert code == 0 and out[0]["author_source"] == "unknown" and "author fetch failed" in out[0]["warning"]
        assert math.isfinite(out[0]["predicted_label"])


def test_fetch_authors_without_credentials_says_so(settings, trained_version, tmp_path, capsys):
    posts = [
        {"title": "x", "subreddit": "pics", "author": "carol", "author_fullname": "t2_abc", "created_utc": POST_UTC}
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps(posts[0]) + "\n")
    assert cli.main(["predict", str(path), "--version", trained_version, "--fetch-authors"]) == 2
    assert "credentials" in capsys.readouterr().err


# ---------------------------------------------------------------- images


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory):
    """The tiny profile's image and joint encoders, built once (their dims decide the towers)."""
    from smpp.encoders import model_info, prepare_models
    from smpp.encoders.joint import import_visualized_bge
    from smpp.settings import Settings

    try:
        import_visualized_bge()
    except RuntimeError as err:
        pytest.skip(f"scripts/install_visualized_bge.py has not run in this venv: {err}")
    tiny = Settings(data_dir=tmp_path_factory.mktemp("tiny-encoders"), model_profile="tiny")
    prepare_models(tiny)
    dims = {"image_emb": int(model_info(tiny, "image")["dim"]), "joint_emb": int(model_info(tiny, "joint")["dim"])}
    return tiny.encoders_dir, dims


@pytest.fixture
def jpeg(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(7)
    path = tmp_path / "served" / "photo.jpg"
    path.parent.mkdir()
    Image.fromarray((rng.random((96, 128, 3)) * 255).astype("uint8")).save(path, format="JPEG")
    return path


@pytest.fixture
def image_server(jpeg):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(jpeg.parent))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_real_jpeg_by_path_and_url_feeds_the_image_towers(
    settings, tiny_encoders, jpeg, image_server, tmp_path, capsys, model_frames
):
    from smpp.lifecycle.registry import version_dir
    from smpp.training.model import load_model, model_inputs

    encoders_dir, dims = tiny_encoders
    settings.encoders_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.encoders_dir.symlink_to(encoders_dir, target_is_directory=True)
    version = _train(settings, _frame(dims=dims))
    spec = load_model(version_dir(settings, version)).smpp_input_spec
    assert set(spec.embedding_dims) == {"image_emb", "joint_emb"}

    base = {"title": "Sunset over the bay", "subreddit": "pics", "created_utc": POST_UTC}
    posts = [
        {**base, "id": "by_path", "image_path": str(jpeg)},
        {**base, "id": "by_url", "image_url": f"{image_server}/photo.jpg"},
        {**base, "id": "text_only"},
    ]
    code, out = _run(tmp_path, capsys, posts, "--version", version)
    assert code == 0, out
    by_id = {o["id"]: o for o in out}
    assert not any("warning" in o for o in out), out
    (frame,) = model_frames
    inputs = model_inputs(frame.reset_index(drop=True), spec)
    for column in ("image_emb", "joint_emb"):
        assert inputs[f"{column}_mask"][:, 0].tolist() == [1.0, 1.0, 0.0], column
    assert frame["has_image"].tolist() == [1.0, 1.0, 0.0]
    # the same bytes by path and by URL: the same stored image, the same vectors and score
    np.testing.assert_allclose(inputs["image_emb"][0], inputs["image_emb"][1], rtol=1e-5)
    assert by_id["by_path"]["predicted_label"] == pytest.approx(by_id["by_url"]["predicted_label"], rel=1e-5)
    assert by_id["by_path"]["predicted_label"] != pytest.approx(by_id["text_only"]["predicted_label"], abs=1e-4)


def test_history_features_come_from_the_warehouse_posts_of_the_author_and_subreddit(
    settings, trained_version, tmp_path, capsys, model_frames
):
    """Earlier posts (labels matured before the post) count; later, removed and immature ones do not."""
    from sqlalchemy import insert

    from smpp.warehouse import Label, Post, session_for

    posts = [  # (id, author, created, score, matured, removed)
        ("h1", "alice", POST_UTC - 10 * DAY, 9, POST_UTC - 9 * DAY, False),
        ("h2", "alice", POST_UTC - 5 * DAY, 99, POST_UTC - 4 * DAY, False),
        ("h3", "alice", POST_UTC - 2 * 3600, 9999, POST_UTC + 22 * 3600, False),  # a post, but its label is immature
        ("h4", "alice", POST_UTC - 3 * DAY, 5000, POST_UTC - 2 * DAY, True),  # removed: never counts
        ("h5", "alice", POST_UTC + DAY, 7, POST_UTC + 2 * DAY, False),  # after the post
        ("h6", "carol", POST_UTC - 6 * DAY, 1, POST_UTC - 5 * DAY, False),  # same subreddit only
    ]
    with session_for(settings.database_url) as session:
        session.execute(
            insert(Post),
            [
                {
                    "id": pid,
                    "subreddit": "pics",
                    "author": author,
                    "created_utc": created,
                    "source": "archive",
                    "first_seen_at": created,
                    "title": "t",
                    "selftext_len": 0,
                    "removed": removed,
                }
                for pid, author, created, _, _, removed in posts
            ],
        )
        session.execute(
            insert(Label),
            [
                {
                    "post_id": pid,
                    "score": score,
                    "age_hours": None,
                    "label_age_hours": 24.0,
                    "observed_at": None,
                    "matured_utc": matured,
                    "status": "archive",
                }
                for pid, _, _, score, matured, _ in posts
            ],
        )
        session.commit()
    new = {"id": "new", "title": "Now", "subreddit": "pics", "author": "alice", "created_utc": POST_UTC}
    again = {**new, "id": "h2", "created_utc": POST_UTC - 5 * DAY}  # a stored post scored again
    code, out = _run(tmp_path, capsys, [new, again], "--version", trained_version)
    assert code == 0, out
    (frame,) = model_frames
    row = _row(frame, "new")
    assert row["author_prior_posts_log"] == pytest.approx(math.log1p(3))  # h1, h2, h3
    assert row["author_days_since_prev_log"] == pytest.approx(math.log1p(2 / 24), rel=1e-4)  # h3, 2 h before
    assert row["author_prior_mean_label"] == pytest.approx((math.log1p(9) + math.log1p(99)) / 2, rel=1e-5)
    assert row["author_prior_max_label"] == pytest.approx(math.log1p(99), rel=1e-5)
    assert row["subreddit_prior_posts_log"] == pytest.approx(math.log1p(4))  # h1, h2, h3, h6
    # h2 scored again is one post, not two: its own history is h1 only
    assert _row(frame, "h2")["author_prior_posts_log"] == pytest.approx(math.log1p(1))


def test_serve_answers_each_line_as_it_arrives_and_pays_start_up_once(settings, trained_version):
    import os
    import select
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "smpp", "predict", "--serve", "--version", trained_version],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def ask(line: str) -> tuple[dict, float]:
        started = time.perf_counter()
        server.stdin.write(line + "\n")
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], 120)  # answered before stdin closes
        assert ready, "no answer to a line while stdin stays open"
        return json.loads(server.stdout.readline()), time.perf_counter() - started

    try:
        post = {"title": "A cat", "subreddit": "aww", "created_utc": POST_UTC}
        first, _ = ask(json.dumps({**post, "id": "s1"}))
        bad, _ = ask('{"title": "no subreddit"')
        again, _ = ask(json.dumps({**post, "id": "s2"}))
        server.stdin.close()
        assert server.wait(timeout=60) == 1  # one line failed
    finally:
        server.kill()
    assert first["line"] == 1 and first["id"] == "s1" and first["model_version"] == trained_version
    assert bad["line"] == 2 and "not valid JSON" in bad["error"]
    assert again["line"] == 3 and again["predicted_label"] == pytest.approx(first["predicted_label"])
    err = server.stderr.read()
    assert err.count("start-up") == 1 and "line 3 in" in err


def test_start_up_and_per_post_time_are_reported_apart(settings, trained_version, tmp_path, capsys):
    code, out = _run(tmp_path, capsys, [{"title": "t", "subreddit": "pics", "created_utc": POST_UTC}])
    assert code == 2  # no champion: --version not given, nothing promoted
    code = cli.main(["predict", str(tmp_path / "missing.jsonl"), "--version", trained_version])
    assert code == 2 and "no such input file" in capsys.readouterr().err
    path = tmp_path / "two.jsonl"
    path.write_text(
        "\n".join(json.dumps({"title": f"t{i}", "subreddit": "pics", "created_utc": POST_UTC}) for i in (1, 2))
    )
    assert cli.main(["predict", str(path), "--version", trained_version]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2  # stdout: only the JSON lines
    assert re.search(
        r"start-up [0-9.]+ s \(model \S+, encoders none\)", captured.err
    )  # no embedding towers: no encoder loaded
    assert re.search(r"2 posts scored in [0-9.]+ s, [0-9]+ ms/post", captured.err)
