"""Browser test: a real api-server with the plugin, a login in headless Chromium, the Metrics tab.

Starts `airflow api-server` on a free port with its own AIRFLOW_HOME (migrated SQLite DB),
SimpleAuthManager with a known admin password, plugins = the repo's plugins/, and
SMPP_DATA_DIR = artifacts written here: the run's day holds a version trained by the
pipeline's own training code (real metrics, plots and model card; trained in a subprocess
while Airflow starts), next to hand-written stage counts and older versions. A run of
smpp_pipeline is triggered over the REST
API (no scheduler: the run stays queued, which is all its page needs). Chromium logs in
through the login form, opens the run's Metrics tab and the Models page, and the test checks
the numbers and that the plots really loaded. Screenshots go to tests/artifacts/ui/
(or $SMPP_TEST_ARTIFACTS/ui/). Skipped only when Debian's chromium/chromium-driver are missing
or cannot start (`make test` installs them).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from smpp_ui_testdata import CHALLENGER, CHAMPION, FULL_DAY, PREDECESSOR_DAY, skip_real_version, write_artifacts

from smpp.lifecycle.registry import decide_and_publish, list_versions
from smpp.settings import Settings
from smpp.storage import write_run_metrics

TRAIN = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from smpp_ui_testdata import train_real_version as t; print(t(sys.argv[2], with_champion=True))"
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SMPP_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "ui"
AIRFLOW = Path(sys.executable).parent / "airflow"
PASSWORD = "smpp-" + secrets.token_hex(8)
DAG_ID = "smpp_pipeline"
NO_MODEL_DAY = "2026-11-14"  # a day whose training was skipped (too few labelled rows)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    base: str
    data_dir: Path
    log: Path
    trained: str  # the version trained for the run's day

    def token(self) -> str:
        response = httpx.post(f"{self.base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
        response.raise_for_status()
        return response.json()["access_token"]


def _airflow_env(home: Path, data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SMPP_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        SMPP_DATA_DIR=str(data_dir),
        SMPP_MODEL_PROFILE="tiny",
        SMPP_IMAGES__OFFLINE="true",
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PATH=f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # its own session: the uvicorn workers go with it
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make test` installs them with apt-get)")
    pytest.importorskip("selenium", reason="selenium is not installed (requirements.txt pins it)")
    root = tmp_path_factory.mktemp("ui_browser")
    home, data_dir = root / "airflow", root / "data"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    port = _free_port()
    env = _airflow_env(home, data_dir, port)
    log = root / "api-server.log"
    training = subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(Path(__file__).parent), str(data_dir)],
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    with open(log, "w") as log_file:
        api = subprocess.Popen(
            [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # the REST trigger needs the DAG serialized; no dag-processor runs here (parallel to the server start)
        reserialize = subprocess.run(
            [str(AIRFLOW), "dags", "reserialize"], env=env, capture_output=True, text=True, timeout=300
        )
        assert reserialize.returncode == 0, reserialize.stderr[-3000:]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert api.poll() is None, f"api-server exited:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"api-server not up after 180 s:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        out, err = training.communicate(timeout=600)
        assert training.returncode == 0, err[-4000:]
        yield Server(base, data_dir, log, out.strip().splitlines()[-1])
    finally:
        training.kill()
        _stop(api)


@pytest.fixture(scope="module")
def run_id(server):
    token = server.token()
    response = httpx.post(
        f"{server.base}/api/v2/dags/{DAG_ID}/dagRuns",
        json={"logical_date": "2026-11-20T00:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    run = response.json()
    # a manual run with logical date X processes the day before X: the plugin must key on the interval start
    assert run["data_interval_start"].startswith(FULL_DAY), run
    settings = Settings(data_dir=server.data_dir, model_profile="tiny")
    write_artifacts(settings)  # stage counts, an older champion, an earlier attempt of the day
    metrics = json.loads((settings.models_dir / server.trained / "metrics.json").read_text())
    write_run_metrics(settings, FULL_DAY, "train_model", {"version": server.trained, "rows": metrics["rows"]})
    decide_and_publish(settings, server.trained)  # the real gate against the champion
    return run["dag_run_id"]


@pytest.fixture(scope="module")
def no_model_run_id(server, run_id):
    """A run of a day that ingested and filtered posts, whose training the real code skipped."""
    token = server.token()
    response = httpx.post(
        f"{server.base}/api/v2/dags/{DAG_ID}/dagRuns",
        json={"logical_date": "2026-11-15T00:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["data_interval_start"].startswith(NO_MODEL_DAY), run
    settings = Settings(data_dir=server.data_dir, model_profile="tiny")
    write_run_metrics(settings, NO_MODEL_DAY, "scrape_posts", {"source": "archive", "posts_in_day": 41})
    write_run_metrics(settings, NO_MODEL_DAY, "filter_posts", {"input": 41, "kept": 3, "dropped_nsfw": 38})
    version, stage = skip_real_version(str(server.data_dir), NO_MODEL_DAY)
    write_run_metrics(settings, NO_MODEL_DAY, "train_model", stage)
    decide_and_publish(settings, version)  # the real gate's "not trained" record
    return run["dag_run_id"], version, stage["skipped_reason"]


def _login(driver, server, url: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60)
    driver.get(url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=username]"))
    driver.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys("admin")
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)
    return wait


@contextmanager
def chromium():
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1800",
    ):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as exc:
        pytest.skip(f"chromium could not be started: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()


def test_plugin_endpoints_on_the_api_server(server, run_id):
    """Over real HTTP: 401 without a token, 200 with one, traversal refused, the task link."""
    page = f"{server.base}/smpp/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
    assert httpx.get(page, timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {server.token()}"}
    response = httpx.get(page, headers=headers, timeout=30)
    assert response.status_code == 200 and f"ds={FULL_DAY}" in response.text and ">1234<" in response.text
    unknown = f"{server.base}/smpp/dags/{DAG_ID}/runs/{quote('manual__1999-01-01T00:00:00+00:00', safe='')}"
    assert httpx.get(unknown, headers=headers, timeout=30).status_code == 404
    for path in (
        f"/smpp/models/{CHALLENGER}/files/%2e%2e%2f%2e%2e%2fsecret.png",
        f"/smpp/models/{CHALLENGER}/files/plot_escape.png",
        "/smpp/models/%2e%2e/files/secret.png",
    ):
        assert httpx.get(server.base + path, headers=headers, timeout=30).status_code == 404, path
    links = httpx.get(
        f"{server.base}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/train_model/links",
        headers=headers,
        timeout=30,
    )
    assert links.status_code == 200, links.text
    assert links.json()["extra_links"]["Run metrics"] == (
        f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/plugin/smpp-metrics"
    )


def test_login_and_metrics_tab_in_headless_chromium(server, run_id):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as driver:
        wait = WebDriverWait(driver, 60)
        # the run's Metrics tab, as the task link opens it; not logged in yet, so the UI sends us to its login page
        driver.get(f"{server.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/plugin/smpp-metrics")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=username]"))
        assert "/auth/login" in driver.current_url
        driver.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys("admin")
        driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)

        frame = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe"))
        assert frame.get_attribute("src").endswith(f"/smpp/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
        driver.switch_to.frame(frame)
        wait.until(lambda d: d.find_elements(By.ID, "metrics"))
        funnel = driver.find_element(By.ID, "funnel").text
        for expected in ("posts ingested for the day 1234", "posts after filtering 987", "images fetched 600"):
            assert expected in funnel
        assert "nsfw 200" in driver.find_element(By.ID, "drop-reasons").text
        trained = json.loads((server.data_dir / "models" / server.trained / "metrics.json").read_text())
        rows = trained["rows"]
        window = f"training window: feature rows with a trainable label matured by the run's end {rows['labelled']}"
        assert window in driver.find_element(By.ID, "label-coverage").text
        assert f"Model {server.trained}" in driver.find_element(By.TAG_NAME, "body").text
        metrics = driver.find_element(By.ID, "metrics").text
        assert f"{trained['model']['spearman_within_subreddit']:.4f}" in metrics
        assert f"{trained['baseline_text_ridge']['spearman_within_subreddit']:.4f}" in metrics
        # the champion of training time, re-scored on this version's test slice: a column of its own
        champion_block = trained["champion"]
        headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#metrics th")]
        assert f"champion {champion_block['version']}" in headers, headers
        assert f"{champion_block['metrics']['spearman_within_subreddit']:.4f}" in metrics
        decision = json.loads((server.data_dir / "models" / server.trained / "decision.json").read_text())
        assert decision["reason"][:40] in driver.find_element(By.ID, "decision").text
        assert f"smpp popularity model {server.trained}" in driver.find_element(By.ID, "model-card").text
        images = driver.find_elements(By.CSS_SELECTOR, ".plots img")
        assert {img.get_attribute("alt") for img in images} >= set(trained["plots"].values())
        # loaded through the same-origin iframe with the login cookie, decoded by the browser
        wait.until(lambda d: all(img.get_property("complete") for img in images))
        widths = {img.get_attribute("alt"): img.get_property("naturalWidth") for img in images}
        assert widths["plot_predicted_vs_true.png"] == 640 and all(w > 0 for w in widths.values()), widths
        driver.switch_to.default_content()
        shot = ARTIFACTS / "metrics_tab.png"
        driver.save_screenshot(str(shot))
        driver.switch_to.frame(frame)
        driver.execute_script("arguments[0].scrollIntoView()", images[0])
        driver.switch_to.default_content()
        driver.save_screenshot(str(ARTIFACTS / "metrics_tab_plots.png"))
        print(f"\nscreenshots of the Metrics tab: {shot}, {ARTIFACTS / 'metrics_tab_plots.png'}")

        # a click on a plot opens the PNG itself, full size, in the tab's frame (its sandbox allows no new window)
        driver.switch_to.frame(frame)
        driver.find_element(By.CSS_SELECTOR, ".plots a img[alt='plot_predicted_vs_true.png']").click()
        wait.until(lambda d: d.execute_script("return location.pathname").endswith("/plot_predicted_vs_true.png"))
        full = wait.until(lambda d: d.find_element(By.TAG_NAME, "img"))
        wait.until(lambda d: full.get_property("complete"))
        assert full.get_property("naturalWidth") == 640
        driver.switch_to.default_content()

        # the task instance's Details tab carries the link back to this tab
        driver.get(f"{server.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/train_model/details")
        link = wait.until(lambda d: d.find_element(By.XPATH, "//a[normalize-space()='Run metrics']"))
        assert link.get_attribute("href") == (
            f"{server.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/plugin/smpp-metrics"
        )

        driver.get(f"{server.base}/plugin/smpp-models")
        driver.switch_to.frame(wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe")))
        wait.until(lambda d: d.find_elements(By.ID, "versions"))
        assert CHAMPION in driver.find_element(By.ID, "champion").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#metric-chart .champion-point")) == 1
        versions = list_versions(Settings(data_dir=server.data_dir, model_profile="tiny"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#versions tbody tr")) == len(versions) >= 5
        # three and more run days, oldest left, each with the best baseline drawn beside the model
        days = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#metric-chart .x-label")]
        assert days == sorted(days) and {PREDECESSOR_DAY, FULL_DAY} <= set(days) and len(set(days)) >= 3, days
        line = driver.find_element(By.CSS_SELECTOR, "#metric-chart .baseline-line").get_attribute("points")
        assert len(line.split()) == len(driver.find_elements(By.CSS_SELECTOR, "#metric-chart .baseline-point")) >= 3
        assert driver.find_elements(By.CSS_SELECTOR, "#metric-chart .y-tick")
        driver.switch_to.default_content()
        shot = ARTIFACTS / "models_page.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot of the Models page: {shot}")


def test_a_run_that_trained_nothing_shows_one_box_in_chromium(server, no_model_run_id):
    from selenium.webdriver.common.by import By

    run_id, version, reason = no_model_run_id
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as driver:
        wait = _login(driver, server, f"{server.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/plugin/smpp-metrics")
        frame = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe"))
        driver.switch_to.frame(frame)
        box = wait.until(lambda d: d.find_element(By.ID, "no-model"))
        why, todo = reason.split(" — ")
        assert box.text == f"No model was trained for this day\nWhy: {why}\nWhat to do: {todo}"
        assert why == "too few labelled rows: 3 < min_rows=30" and todo.startswith("backfill more days")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert body.count("too few labelled rows") == 1 and "posts after filtering 3" in body
        assert version not in body and "not promoted" not in body and "n/a" not in body and "None" not in body
        for absent in ("metrics", "model-info", "model-card"):
            assert not driver.find_elements(By.ID, absent), absent
        driver.switch_to.default_content()
        shot = ARTIFACTS / "metrics_tab_no_model.png"
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot of a no-model run's Metrics tab: {shot}")
