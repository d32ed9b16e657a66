"""The plugin's FastAPI app through a test client, with Airflow's real JWT signing and checks.

Only the metadata DB stays out: the revoked-token lookup is stubbed and runs come from a
fake lookup (the browser test covers both against a real api-server and DB).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("airflow")
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from smpp_ui_testdata import (  # noqa: E402
    CARD_INJECTION,
    CHALLENGER,
    CHAMPION,
    FULL_DAY,
    INGEST_DAY,
    SKIP_REASON,
    SKIPPED,
)

from smpp.ui.web import RunRef, create_app  # noqa: E402

PLUGIN_FILE = Path(__file__).resolve().parents[2] / "plugins" / "smpp_ui.py"
RUN_ID = "manual__2026-11-20T00:00:00+00:00"
DAG_ID = "smpp_pipeline"


def _day(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


RUNS = {
    RUN_ID: RunRef(DAG_ID, RUN_ID, _day(FULL_DAY), _day("2026-11-20")),
    "scheduled__2026-11-18T00:00:00+00:00": RunRef(
        DAG_ID, "scheduled__2026-11-18T00:00:00+00:00", _day(INGEST_DAY), _day(FULL_DAY)
    ),
    "backfill__2026-11-01T00:00:00+00:00": RunRef(
        DAG_ID, "backfill__2026-11-01T00:00:00+00:00", _day("2026-11-01"), _day("2026-11-02")
    ),
    "asset_triggered__x": RunRef(DAG_ID, "asset_triggered__x", None, None),
    "other__x": RunRef("example_other", "other__x", _day(FULL_DAY), _day("2026-11-20")),
}


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("smpp_ui_plugin_under_test", PLUGIN_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def auth(monkeypatch):
    """Airflow's SimpleAuthManager with a known secret; returns token(role, expires_in)."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.revoked_token import RevokedToken

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "smpp-ui-test-secret-" + "0123456789abcdef" * 4)
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "False")
    manager = SimpleAuthManager()
    monkeypatch.setattr(api_app._AuthManagerState, "instance", manager)
    # the revocation list lives in the metadata DB, which these tests do not have
    monkeypatch.setattr(RevokedToken, "is_revoked", classmethod(lambda cls, jti, session=None: False))

    def token(role: str | None = "viewer", expires_in: int = 600) -> str:
        user = SimpleAuthManagerUser(username=f"u-{role}", role=role)
        return manager.generate_jwt(user, expiration_time_in_seconds=expires_in)

    return token


@pytest.fixture
def lookups():
    return []


@pytest.fixture
def client(plugin, artifacts, auth, lookups):
    """The app as Airflow mounts it (under /smpp), with the plugin's auth and a fake run lookup."""

    def lookup(dag_id: str, run_id: str) -> RunRef | None:
        lookups.append((dag_id, run_id))
        ref = RUNS.get(run_id)
        return ref if ref and ref.dag_id == dag_id else None

    parent = FastAPI()
    parent.mount(
        plugin.URL_PREFIX,
        create_app(
            run_lookup=lookup,
            authorize_run=plugin.authorize_run,
            authorize_view=plugin.authorize_view,
            is_pipeline_dag=plugin.is_pipeline_dag,
        ),
    )
    with TestClient(parent) as test_client:
        test_client.headers["Authorization"] = f"Bearer {auth()}"
        yield test_client


def run_url(run_id: str = RUN_ID, dag_id: str = DAG_ID) -> str:
    return f"/smpp/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


PROTECTED = [
    run_url(),
    "/smpp/models",
    "/smpp/models.json",
    f"/smpp/models/{CHALLENGER}",
    f"/smpp/models/{CHALLENGER}/files/plot_predicted_vs_true.png",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_the_real_plugin_app_refuses_requests_without_a_valid_token(plugin, artifacts, auth, path):
    parent = FastAPI()
    parent.mount(plugin.URL_PREFIX, plugin.app)
    client = TestClient(parent)
    expired = auth(expires_in=-3600)  # well past Airflow's leeway
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": "Bearer " + auth()[:-4] + "AAAA"},
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "1234" not in response.text and "PNG" not in response.text
    client.cookies.set("_token", "forged")
    assert client.get(path).status_code == 401


def test_a_valid_token_in_the_header_or_the_ui_cookie_is_accepted(plugin, artifacts, auth):
    parent = FastAPI()
    parent.mount(plugin.URL_PREFIX, plugin.app)
    client = TestClient(parent)
    assert client.get("/smpp/models", headers={"Authorization": f"Bearer {auth()}"}).status_code == 200
    client.cookies.set("_token", auth())  # what the UI login sets; the same-origin iframe sends it
    response = client.get(f"/smpp/models/{CHALLENGER}/files/plot_predicted_vs_true.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"


def test_a_user_without_a_role_is_forbidden(client, auth):
    headers = {"Authorization": f"Bearer {auth(role=None)}"}
    assert client.get("/smpp/models", headers=headers).status_code == 403
    assert client.get(run_url(), headers=headers).status_code == 403


def test_run_page_shows_counts_drops_labels_model_baselines_champion_plots_and_card(client, lookups):
    response = client.get(run_url())
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'") and "script-src" not in csp  # no script may run in the page
    assert lookups == [(DAG_ID, RUN_ID)]  # the encoded ':' and '+' arrive decoded and intact
    html = response.text
    assert f"ds={FULL_DAY}" in html
    funnel = re.search(r"<table id='funnel'>.*?</table>", html).group(0)
    for count in ("1234", "987", "600", "720"):
        assert f">{count}<" in funnel
    drops = re.search(r"<table id='drop-reasons'>.*?</table>", html).group(0)
    assert ">nsfw<" in drops and ">200<" in drops and ">http_404<" in drops and ">387<" in drops
    assert "700 of 987 (70.9%)" in html and "labelled_ok" in html and "0 of 0" not in html
    metrics = re.search(r"<table id='metrics'>.*?</table>", html).group(0)
    assert "0.1734" in metrics and "0.0500" in metrics and f"champion {CHAMPION}" in metrics and "0.2222" in metrics
    assert "subreddit mean" in metrics and "text ridge" in metrics
    assert "not promoted" in html and "0.1734 &lt; champion 0.2222 + margin 0.01" in html
    assert "/srv/secret/path" not in html  # server paths are not shown
    images = re.findall(r"<img src='([^']+)'", html)
    assert f"/smpp/models/{CHALLENGER}/files/plot_predicted_vs_true.png" in images
    for src in images:
        image = client.get(src)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    card = re.search(r"<div class='card' id='model-card'>(.*?)</div>", html, re.S).group(1)
    assert "<table>" in card and "<td>0.1734</td>" in card
    assert CARD_INJECTION not in html and "&lt;script&gt;" in card
    assert not re.search(r"href=['\"]?javascript", card, re.I)


def test_a_run_that_trained_nothing_shows_one_box_with_why_and_what_to_do(client, settings):
    from smpp.storage import write_run_metrics

    stage = {"version": SKIPPED, "rows": {"input": 3, "labelled": 3}, "skipped_reason": SKIP_REASON, "trained": True}
    write_run_metrics(settings, INGEST_DAY, "train_model", stage)
    html = client.get(run_url("scheduled__2026-11-18T00:00:00+00:00")).text
    box = re.search(r"<div class='empty' id='no-model'>(.*?)</div>", html).group(1)
    why, todo = SKIP_REASON.split(" — ")
    assert box == f"<b>No model was trained for this day</b><br>Why: {escape(why)}<br>What to do: {escape(todo)}"
    assert "3 &lt; min_rows=30" in box
    assert html.count("too few labelled rows") == 1  # not again in the card, the decision or the stage table
    # nothing of the model that does not exist: no version link, badge, rows table, card or metrics
    assert f"/smpp/models/{SKIPPED}'" not in html and "not promoted" not in html
    for absent in ("id='model-info'", "id='model-card'", "id='metrics'", ">None<", "n/a", "rows: train"):
        assert absent not in html, absent


def test_a_day_between_retrains_says_who_scored_it_in_one_box(client, settings):
    from smpp.storage import write_run_metrics

    stage = {"version": None, "trained": False, "champion_version": CHAMPION, "retrain_every_days": 7}
    write_run_metrics(settings, INGEST_DAY, "train_model", {**stage, "next_training_day": "2026-11-21"})
    html = client.get(run_url("scheduled__2026-11-18T00:00:00+00:00")).text
    box = re.search(r"<div class='empty' id='no-model'>(.*?)</div>", html).group(1)
    assert f"not a training day (retrain every 7 days); scored by the champion {CHAMPION}" in box
    assert "next training day 2026-11-21<br>What to do: nothing to do" in box and "retrain_every_days=1" in box
    assert html.count("id='no-model'") == 1 and "id='metrics'" not in html


def test_a_skipped_versions_own_page_says_not_trained_once(client):
    html = client.get(f"/smpp/models/{SKIPPED}").text
    assert "<span class='badge no'>not trained</span>" in html and "not promoted" not in html
    assert html.count("too few labelled rows") == 1 and "id='model-card'" not in html


def test_a_day_that_only_ingested_says_no_model(client):
    html = client.get(run_url("scheduled__2026-11-18T00:00:00+00:00")).text
    assert "id='no-model'" in html and "No model was trained in this run" in html
    assert ">1234<" in html and "id='metrics'" not in html


def test_a_run_without_artifacts_says_so(client):
    response = client.get(run_url("backfill__2026-11-01T00:00:00+00:00"))
    assert response.status_code == 200
    assert "id='no-artifacts'" in response.text and "ds=2026-11-01" in response.text


def test_a_run_without_a_data_interval_says_so(client):
    assert "no data interval" in client.get(run_url("asset_triggered__x")).text


def test_another_dags_run_is_not_shown_smpp_numbers(client):
    html = client.get(run_url("other__x", dag_id="example_other")).text
    assert "not an smpp pipeline DAG" in html and ">1234<" not in html


@pytest.mark.parametrize(
    "path",
    [
        run_url("manual__2030-01-01T00:00:00+00:00"),
        run_url(RUN_ID, dag_id="other_dag"),
        "/smpp/models/20991231T000000Z-abcdef",
        "/smpp/models/not-a-version",
        f"/smpp/models/{CHALLENGER}/files/nope.png",
        f"/smpp/models/{CHALLENGER}/files/model.keras",
        f"/smpp/models/{SKIPPED}/files/plot_predicted_vs_true.png",
        "/smpp/models/..%2F..%2Fdata/files/secret.png",  # a decoded '/' in the version: no route matches
    ],
)
def test_unknown_runs_versions_and_files_are_404(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        f"/smpp/models/{CHALLENGER}/files/..%2F..%2Fsecret.png",
        f"/smpp/models/{CHALLENGER}/files/%2e%2e/%2e%2e/secret.png",
        f"/smpp/models/{CHALLENGER}/files/%2E%2E%2F%2E%2E%2Fsecret.png",
        f"/smpp/models/{CHALLENGER}/files/..%5C..%5Csecret.png",
        f"/smpp/models/{CHALLENGER}/files/%2e%2e%2fplot_loose.png",
        f"/smpp/models/{CHALLENGER}/files/%2Fetc%2Fpasswd",
        f"/smpp/models/{CHALLENGER}/files//etc/hostname",
        f"/smpp/models/{CHALLENGER}/files/plot_escape.png",  # symlink leading out of the models folder
        "/smpp/models/%2e%2e/files/secret.png",
    ],
)
def test_traversal_attempts_are_404(client, artifacts, path):
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] != "Not Found"  # refused by the confinement check, not missed by the router
    assert not response.content.startswith(b"\x89PNG")


def test_models_page_lists_every_version_with_chart_champion_and_reasons(client):
    html = client.get("/smpp/models").text
    table = re.search(r"<table id='versions'>.*?</table>", html, re.S).group(0)
    rows = re.findall(r"<tr.*?</tr>", table.split("<tbody>")[1])
    assert [re.search(r"\d{8}T\d{6}Z-[0-9a-f]{6}", row).group(0) for row in rows] == [CHALLENGER, CHAMPION, SKIPPED]
    assert "champion-row" in rows[1] and "★ champion" in rows[1] and "promoted" in rows[1]
    assert "not promoted" in rows[0] and "0.1734 &lt; champion" in rows[0]
    assert "not trained</span>" in rows[2] and "not promoted" not in rows[2] and "3 &lt; min_rows=30" in rows[2]
    assert "2026-11-19" in rows[0] and "2026-10-01 →<br>2026-11-18" in rows[0] and "2026-11-19 01:00" in rows[0]
    assert f"Current champion: <a href='/smpp/models/{CHAMPION}'>" in html
    chart = re.search(r"<svg id='metric-chart'.*?</svg>", html, re.S).group(0)
    assert chart.count("<circle") == 1 and chart.count("class='champion-point'") == 1
    assert f"{CHAMPION}: 0.2100 (champion)" in chart and f"{CHALLENGER}: 0.1734" in chart
    data = client.get("/smpp/models.json").json()
    assert data["champion"]["version"] == CHAMPION and len(data["versions"]) == 3


def test_version_page(client):
    html = client.get(f"/smpp/models/{CHALLENGER}").text
    assert "id='metrics'" in html and "plot_learning_curves.png" in html


def test_operator_link_and_views(plugin):
    from airflow.models.taskinstancekey import TaskInstanceKey

    link = plugin.RunMetricsLink()
    key = TaskInstanceKey(DAG_ID, "train_model", RUN_ID, 1)
    assert link.get_link(None, ti_key=key) == (
        "/dags/smpp_pipeline/runs/manual__2026-11-20T00%3A00%3A00%2B00%3A00/plugin/smpp-metrics"
    )
    assert link.get_link(None, ti_key=TaskInstanceKey("someone_else", "t", RUN_ID, 1)) == ""
    views = {view["name"]: view for view in plugin.SmppUIPlugin.external_views}
    assert views["Metrics"]["destination"] == "dag_run"
    assert views["Metrics"]["href"] == "/smpp/dags/{DAG_ID}/runs/{RUN_ID}"
    assert views["Models"]["destination"] == "nav" and views["Models"]["href"] == "/smpp/models"


def test_metric_rows_say_which_way_is_better_and_highlight_the_best(client, settings):
    from smpp.training.card import render_model_card

    html = client.get(run_url()).text
    table = re.search(r"<table id='metrics'>.*?</table>", html).group(0)
    head = re.findall(r"<th>(.*?)</th>", table)
    rows = {re.search(r"<td>(\w+)</td>", row).group(1): row for row in re.findall(r"<tr[^>]*><td>.*?</tr>", table)}
    assert "better" in head and head.index("better") == 1
    assert "The promotion gate judges on the first row, spearman_within_subreddit." in html
    assert "higher is better" in rows["spearman_within_subreddit"] and "lower is better" in rows["mae"]
    assert "count" in rows["n"] and "best" not in rows["n"] and "class='headline'" in rows["spearman_within_subreddit"]
    assert re.findall(r"<td class='num best'>([^<]+)</td>", rows["spearman_within_subreddit"]) == ["0.2222"]  # champion
    assert re.findall(r"<td class='num best'>([^<]+)</td>", rows["mae"]) == ["0.8800"]
    assert re.findall(r"<td class='num best'>([^<]+)</td>", rows["spearman"]) == ["0.8100"]  # the model itself
    # the card, rendered from the same metrics.json, has its columns in the tab's order
    metrics = json.loads((settings.models_dir / CHALLENGER / "metrics.json").read_text())
    card_head = [
        c.strip() for c in render_model_card(metrics, None).split("## Test metrics")[1].split("\n")[2].split("|")
    ]
    assert [c for c in card_head if c] == head


def test_a_missing_headline_metric_shows_its_reason_next_to_the_dash(client, settings):
    path = settings.models_dir / CHALLENGER / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["model"].update(spearman_within_subreddit=None, subreddits_scored=0, within_subreddit_min_posts=20)
    path.write_text(json.dumps(metrics))
    table = re.search(r"<table id='metrics'>.*?</table>", client.get(run_url()).text).group(0)
    row = re.search(r"<tr class='headline'><td>spearman_within_subreddit</td>.*?</tr>", table).group(0)
    gap = re.search(r"<td>– <span class='why' id='headline-gap'>\((.*?)\)</span></td>", row).group(1)
    assert gap.startswith("no subreddit has 20 test posts (training.within_subreddit_min_posts=20)")


def test_plots_open_full_size_on_click(client):
    html = client.get(run_url()).text
    linked = re.findall(r"<a href='([^']+)' title='open full size'><img src='([^']+)'", html)
    assert len(linked) == len(re.findall(r"<img ", html)) == 2
    assert all(href == src and src.endswith(".png") for href, src in linked)
    assert client.get(linked[0][0]).headers["content-type"] == "image/png"


def test_an_uncomputable_within_subreddit_plot_is_a_reason_in_words_not_an_image(client, settings):
    from smpp_ui_testdata import png_bytes

    from smpp.training.plots import PLOT_FILES

    folder = settings.models_dir / CHALLENGER
    within_plot = PLOT_FILES["within_subreddit_spearman"]
    (folder / within_plot).write_bytes(png_bytes())  # an older version wrote an empty image
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["model"].update(spearman_within_subreddit=None, within_subreddit_min_posts=20, per_subreddit={})
    metrics["plots"]["within_subreddit_spearman"] = within_plot
    (folder / "metrics.json").write_text(json.dumps(metrics))
    html = client.get(run_url()).text
    plots = html.split("<h3>Plots</h3>")[1]
    assert within_plot not in re.findall(r"<img src='[^']*/([^'/]+)'", plots)
    box = re.search(r"<div class='empty plot-gap' id='plot_within_subreddit_spearman-reason'>(.*?)</div>", plots)
    assert "no subreddit has 20 test posts (training.within_subreddit_min_posts=20)" in box.group(1)
    assert len(re.findall(r"<img ", plots)) == 2  # the other plots are still shown
