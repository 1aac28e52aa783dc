"""Model review in the MLflow UI, in a real (headless) browser.

A real ``mlflow server`` is started on the session's store (the ``trained`` fixture) and
Debian's Chromium, driven by selenium, opens the run and the registered model. What the
page must show is read from the store with ``MlflowClient`` first, so the test follows
what training logs: the holdout metrics, every PNG plot of the run (checked as soon as the
run has any), the other artifacts, and the registry aliases ``challenger`` and
``champion``. Screenshots land in ``tests/e2e/artifacts/ui-*.png`` (git-ignored).

Chromium and ChromeDriver come from ``make install`` (as root on Debian); without them
the test skips and says why.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from training.tracking import MODEL_NAME, artifact_root

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parent / "artifacts"
# A React app on a busy CI machine: first paint can take a while.
WAIT_S = 90
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
# src of every decoded, visible image loaded from a blob: URL (how the UI previews artifacts)
BLOB_IMAGES = """return [...document.images]
  .filter(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0
               && i.getBoundingClientRect().width > 0)
  .map(i => i.src)"""
REVIEW_METRICS = ("holdout_roc_auc", "holdout_pr_auc", "holdout_brier")
REQUIRED_ALIASES = ("challenger", "champion")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class RunUnderReview:
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    artifacts: list[str]
    aliases: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _all_artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for item in client.list_artifacts(run_id, path):
        out.extend(_all_artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return out


@pytest.fixture(scope="module")
def review(trained) -> RunUnderReview:
    """What the UI has to show, read from the store itself."""
    client = MlflowClient(tracking_uri=trained.tracking_uri, registry_uri=trained.tracking_uri)
    run = client.get_run(trained.result.run_id)
    model = client.get_registered_model(MODEL_NAME)
    return RunUnderReview(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        metrics=dict(run.data.metrics),
        artifacts=_all_artifacts(client, run.info.run_id),
        aliases={alias: str(version) for alias, version in model.aliases.items()},
    )


@pytest.fixture(scope="module")
def mlflow_ui(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on the session's store, on a free loopback port; yields its URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("mlflow-ui") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        trained.tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    root = artifact_root(trained.tracking_uri)
    if root:
        cmd += ["--default-artifact-root", root]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {WAIT_S}s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium through ChromeDriver, with the flags a closed network needs."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: run `make install` as root on Debian "
            "(it installs the packages chromium and chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(WAIT_S)
        try:
            yield driver
        finally:
            driver.quit()


def _screenshot(driver, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")  # screenshots are never committed
    path = SHOTS / f"ui-{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _wait(driver, condition, what: str, name: str):
    """Wait for a React-rendered element; on timeout keep a screenshot and say what's missing."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, WAIT_S, 0.25, ignored).until(condition)
    except TimeoutException:
        shot = _screenshot(driver, f"{name}-FAILED")
        pytest.fail(f"the MLflow UI did not show {what} within {WAIT_S}s (see {shot})")


def _row_text(driver, label: str, expect: str, name: str) -> str:
    """Text of the table row (role=row) with a cell reading ``label``, once it has ``expect``."""
    from selenium.webdriver.common.by import By

    xpath = f"//*[@role='row'][.//*[normalize-space(text())='{label}']]"

    def shown(d):
        text = d.find_element(By.XPATH, xpath).text
        return text if expect in text else False

    text = _wait(driver, shown, f"{expect!r} in the row of {label!r}", name)
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})", driver.find_element(By.XPATH, xpath)
    )
    return text


def test_run_page_shows_holdout_metrics_and_registered_model(mlflow_ui, browser, review):
    browser.get(f"{mlflow_ui}/#/experiments/{review.experiment_id}/runs/{review.run_id}")
    for metric in REVIEW_METRICS:
        assert metric in review.metrics, f"training logged no {metric}"
        shown = _row_text(browser, metric, metric, "run").split("\n")
        assert shown[0] == metric
        assert math.isclose(float(shown[1]), review.metrics[metric], rel_tol=1e-9), shown
    _screenshot(browser, "run-metrics")
    # The run's "Registered models" box links the run to the registry entry.
    _wait(
        browser,
        lambda d: "Registered models" in d.page_source and MODEL_NAME in d.page_source,
        f"the registered model {MODEL_NAME!r} on the run page",
        "run",
    )
    _screenshot(browser, "run")


def test_artifacts_page_lists_metadata_and_renders_every_png(mlflow_ui, browser, review):
    from selenium.webdriver.common.by import By

    assert "model_metadata.json" in review.artifacts, review.artifacts
    pngs = [p for p in review.artifacts if p.lower().endswith(".png")]
    browser.get(f"{mlflow_ui}/#/experiments/{review.experiment_id}/runs/{review.run_id}/artifacts")

    def tree_entry(name: str):
        xpath = f"//*[normalize-space(text())='{name}']"

        def visible(d):
            shown = [e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()]
            return shown[0] if shown else None

        return _wait(browser, visible, f"artifact {name}", "art")

    def click(element) -> None:
        # the tree can re-render under the pointer; scroll it into view, fall back to a
        # DOM click when the element is covered for a moment
        from selenium.common.exceptions import WebDriverException

        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        try:
            element.click()
        except WebDriverException:
            browser.execute_script("arguments[0].click()", element)

    tree_entry("model_metadata.json")
    _screenshot(browser, "artifacts")
    # Plots are checked once training logs any: each must be listed, open and render.
    opened: set[str] = set()
    for png in pngs:
        *folders, file_name = png.split("/")
        for depth in range(len(folders)):
            folder = "/".join(folders[: depth + 1])
            if folder not in opened:
                tree_entry(folders[depth]).click()
                opened.add(folder)
        # The preview fetches the file into a new blob: URL; wait for a new, visible, decoded
        # image, so an earlier preview still in the page cannot stand in for this one.
        seen = browser.execute_script(BLOB_IMAGES)
        click(tree_entry(file_name))
        _wait(
            browser,
            lambda d, path=png: path in d.find_element(By.TAG_NAME, "body").text,
            f"the preview header for {png}",
            "art",
        )
        _wait(
            browser,
            lambda d, old=seen: set(d.execute_script(BLOB_IMAGES)) - set(old),
            f"the image {png} rendered",
            "art",
        )
        _screenshot(browser, "artifact-" + png.replace("/", "-").removesuffix(".png"))


def test_registered_model_page_shows_champion_and_challenger(mlflow_ui, browser, review):
    for alias in REQUIRED_ALIASES:
        assert alias in review.aliases, f"the registry has no alias {alias!r}: {review.aliases}"
    browser.get(f"{mlflow_ui}/#/models/{MODEL_NAME}")
    for alias, version in review.aliases.items():
        shown = _row_text(browser, f"Version {version}", f"@ {alias}", "model")
        # The check discriminates: an alias that does not exist is not shown.
        assert "@ retired" not in shown, shown
    _screenshot(browser, "model")
