"""The Airflow UI in a real browser: the "Synthetic datasets" page, a report, the extra link.

One published dataset (the ready-made ``esl_airbnb_bookings`` DAG under ``dag.test()`` on
the session's PostgreSQL and S3 server), then Airflow's own API server started on the
session's metadata DB with this repository's ``plugins/``, and headless Chromium driven
through Selenium: log in on Airflow's login page, open "Synthetic datasets" from the nav,
check the dataset's row, open its report, open the load task in the grid and check its
"Synthetic data report" link. Screenshots go to ``$PYTEST_ARTIFACTS/browser`` (default
``tests/artifacts/browser/``, gitignored); the path is printed.

The same server also answers the access checks over HTTP, decided by a real auth manager
(:mod:`ui_auth_manager`: Airflow's simple auth manager plus a user who may read the DAG but
not its XComs, and one who may not read the DAG).

Select with ``pytest -k browser``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from dagtest_helpers import run_manifest
from ui_auth_manager import NO_XCOM_USER, STRANGER_USER

from airflow_synth.local.ports import find_free_port

pytestmark = pytest.mark.dags

PROJECT = Path(__file__).resolve().parents[2]
DAG_ID = "esl_airbnb_bookings"
DATASET = "airbnb_bookings"
BUCKET = "synthetic"
LOAD_TASK = "esl.load"
USERS = {"admin": "admin", NO_XCOM_USER: "viewer", STRANGER_USER: "viewer"}
#: Debian's chromium + chromium-driver (``make prereqs`` installs them), else from PATH
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def artifacts_dir() -> Path:
    root = Path(os.environ.get("PYTEST_ARTIFACTS") or PROJECT / "tests" / "artifacts")
    folder = root / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def published_run(seeded_source, project_dag) -> Any:
    """A published run of the bookings dataset, through its ready-made DAG."""
    dag_run = project_dag(DAG_ID).test(
        run_conf={"rows": 300, "synthesizer": "gaussian_copula", "seed": 5}
    )
    assert dag_run.state == "success"
    return dag_run


@pytest.fixture(scope="module")
def api_server(published_run, airflow_home: Path, tmp_path_factory) -> Iterator[str]:
    """Airflow's API server (with our plugin) on the session's metadata DB; its base URL."""
    home = Path(os.environ["AIRFLOW_HOME"])
    (home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({name: name for name in USERS})
    )
    port = find_free_port()
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), str(PROJECT), os.environ.get("PYTHONPATH", "")]
        ),
        "AIRFLOW__CORE__AUTH_MANAGER": "ui_auth_manager.RestrictedAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role}" for name, role in USERS.items()
        ),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__SYNTH__AWS_CONN_ID": "synth_s3",
        "AIRFLOW__SYNTH__BUCKET": BUCKET,
    }
    log_path = tmp_path_factory.mktemp("ui-api-server") / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "airflow"),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        began, deadline = time.monotonic(), time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-4000:]
            try:
                if requests.get(f"{base}/api/v2/version", timeout=2).status_code in (200, 401):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        print(f"\n[ui] api-server up after {time.monotonic() - began:.1f} s at {base}")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def token(base: str, user: str) -> str:
    response = requests.post(
        f"{base}/auth/token", json={"username": user, "password": user}, timeout=30
    )
    assert response.status_code in (200, 201), response.text
    return response.json()["access_token"]


def get(base: str, path: str, user: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token(base, user)}"} if user else {}
    return requests.get(f"{base}{path}", headers=headers, timeout=60)


def report_path(dag_run: Any) -> str:
    return (
        f"/synth/report?dag_id={DAG_ID}&run_id={quote(dag_run.run_id, safe='')}"
        f"&task_id={LOAD_TASK}&map_index=-1"
    )


def test_browser_access_is_airflows_dag_and_xcom_check(
    api_server: str, published_run, s3_client
) -> None:
    base = api_server
    # the manifest names the DAG run and task that published it: the page's access check
    manifest = run_manifest(s3_client, BUCKET, DATASET, published_run.run_id)
    assert manifest["source"]["airflow"] == {
        "dag_id": DAG_ID,
        "run_id": published_run.run_id,
        "task_id": LOAD_TASK,
    }
    path = report_path(published_run)
    assert get(base, path, None).status_code == 401
    assert get(base, path, "admin").status_code == 200
    # may read the DAG, not its XComs: the report (found through the XCom) is refused
    assert get(base, f"/api/v2/dags/{DAG_ID}", NO_XCOM_USER).status_code == 200
    assert get(base, path, NO_XCOM_USER).status_code == 403
    # ... also through the datasets page, which still lists the run and its manifest to them
    page_run = f"/synth/datasets/{DATASET}/runs/{manifest['run']}"
    assert get(base, f"{page_run}/report", "admin").status_code == 200
    assert get(base, f"{page_run}/report", NO_XCOM_USER).status_code == 404
    assert get(base, f"{page_run}/manifest.json", NO_XCOM_USER).status_code == 200
    assert f">{DATASET}</a>" in get(base, "/synth/datasets", NO_XCOM_USER).text
    # the datasets page shows a dataset only to readers of the DAG that produced it
    assert f">{DATASET}</a>" in get(base, "/synth/datasets", "admin").text
    hidden = get(base, "/synth/datasets", STRANGER_USER)
    assert hidden.status_code == 200 and DATASET not in hidden.text
    assert get(base, f"/synth/datasets/{DATASET}", STRANGER_USER).status_code == 404


# -- the browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def click(driver: Any, xpath: str, timeout: float = 30) -> None:
    """Click the element at ``xpath`` once it can be; the UI re-renders as data arrives, so
    an element found a moment ago may be replaced: find it again and retry."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(d: Any) -> bool:
        d.find_element(By.XPATH, xpath).click()
        return True

    WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.3,
        ignored_exceptions=(
            NoSuchElementException,
            StaleElementReferenceException,
            ElementClickInterceptedException,
        ),
    ).until(attempt)


def shot(driver: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_browser_datasets_page_report_and_extra_link(
    api_server: str, published_run, browser: Any, s3_client
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    base, driver = api_server, browser
    began = time.monotonic()
    print(f"\n[ui] screenshots in {artifacts_dir()}")
    manifest = run_manifest(s3_client, BUCKET, DATASET, published_run.run_id)

    # log in on Airflow's own login page
    driver.get(f"{base}/")
    user_box = wait_for(driver, ec.presence_of_element_located((By.NAME, "username")))
    user_box.send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
    wait_for(
        driver, lambda d: "/auth/login" not in d.current_url and "login" not in d.title.lower()
    )

    # the nav entry "Synthetic datasets" opens our page inside the Airflow UI
    driver.get(f"{base}/plugin/synthetic-datasets")
    frame = wait_for(driver, ec.presence_of_element_located((By.TAG_NAME, "iframe")))
    time.sleep(1)
    shot(driver, "01-datasets-in-airflow-ui")
    assert frame.get_attribute("src").endswith("/synth/datasets")
    driver.switch_to.frame(frame)
    link = wait_for(driver, ec.presence_of_element_located((By.LINK_TEXT, DATASET)))
    row = link.find_element(By.XPATH, "./ancestor::tr")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    scores = manifest["synthesis"]["scores"]
    assert f"{manifest['rows']:,}" in cells
    assert f"{scores['quality_score']:.3f}" in cells
    assert "pass: quality_score" in row.text and "FAIL" not in row.text
    driver.switch_to.default_content()

    # the report, through the page's link (served by the plugin: S3 is not reachable)
    driver.get(f"{base}/synth/datasets")
    shot(driver, "02-datasets-page")
    driver.find_element(By.LINK_TEXT, DATASET).find_element(
        By.XPATH, "./ancestor::tr"
    ).find_element(By.LINK_TEXT, "report").click()
    wait_for(driver, lambda d: "/runs/" in d.current_url and d.title)
    assert DATASET in driver.title, driver.title
    shot(driver, "03-report")

    # the history page lists the run (its folder name: the run id made key-safe)
    driver.get(f"{base}/synth/datasets/{DATASET}")
    assert manifest["run"] in driver.find_element(By.TAG_NAME, "table").text

    # the grid: expand the "esl" group, select the load task's cell, open its Details tab:
    # Airflow lists the task's extra links there ("Extra Links")
    driver.get(f"{base}/dags/{DAG_ID}/runs/{quote(published_run.run_id, safe='')}")
    click(driver, "//span[@aria-label='Toggle group' and @data-group-id='esl']")
    click(driver, f"//a[starts-with(@id, 'grid-') and contains(@href, '/tasks/{LOAD_TASK}')]")
    wait_for(driver, lambda d: d.current_url.endswith(f"/tasks/{LOAD_TASK}"))
    click(driver, "//a[normalize-space()='Details']")
    extra = wait_for(
        driver,
        ec.visibility_of_element_located(
            (By.XPATH, "//a[normalize-space()='Synthetic data report']")
        ),
    )
    shot(driver, "04-grid-task-extra-link")
    href = extra.get_attribute("href")
    assert href.startswith(f"{base}/synth/report?") and f"dag_id={DAG_ID}" in href, href
    driver.get(href)
    wait_for(driver, lambda d: d.title)
    assert DATASET in driver.title, driver.title
    took = time.monotonic() - began
    print(f"[ui] browser part took {took:.1f} s")
