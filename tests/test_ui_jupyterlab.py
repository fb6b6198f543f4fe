"""The widgets work in a real JupyterLab, driven by a real (headless) Chromium.

Needs Debian's ``chromium`` and ``chromium-driver``. Without them the test is skipped,
unless STEPWISE_REQUIRE_BROWSER=1 (CI sets it), which makes a missing browser a failure.
Screenshots and the Lab server's log go to build/ui/.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "ui"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOKEN = "stepwise-ui-test"

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("STEPWISE_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium and chromedriver are required (apt-get install chromium chromium-driver)",
                    pytrace=False)
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

# The code a learner runs to show each widget panel: one cell each, in one notebook.
PANELS = {
    "schedule_explorer": "from helpers.schedule_explorer import ScheduleExplorer\nScheduleExplorer()",
    "playground": "from helpers.playground import Playground\nPlayground()",
}

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on localhost, in an empty directory with its own settings."""
    home = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in PANELS.values()])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, home / "panels.ipynb")
    port = free_port()
    # A learner's Lab: the environment's kernels only, not the test kernels of make test (JUPYTER_PATH).
    learner = {k: v for k, v in os.environ.items() if k != "JUPYTER_PATH"}
    env = {**learner, "JUPYTER_PREFER_ENV_PATH": "1", "STEPWISE_HOME": str(home / "stepwise"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    SHOTS.mkdir(parents=True, exist_ok=True)
    log = open(SHOTS / "lab.log", "w")  # noqa: SIM115 (the server's log, read after a failure)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={home}", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, request):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1100",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    if request.session.testsfailed:  # what the page looked like when it failed
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "failure.png"))
    driver.quit()


@pytest.fixture(scope="module")
def panels(lab, browser):
    """The notebook of both panels, open and run: one page load, one kernel, one import of torch."""
    # Its kernel first, through the server's REST API: Lab opening the notebook connects to it. Left
    # to start one itself, Lab now and then started two or three as it opened, and shut down those
    # the page had connected to, or ran cells on.
    session = {"path": "panels.ipynb", "name": "panels.ipynb", "type": "notebook",
               "kernel": {"name": "python3"}}
    urllib.request.urlopen(urllib.request.Request(
        f"{lab}/api/sessions?token={TOKEN}", data=json.dumps(session).encode(), method="POST",
        headers={"Content-Type": "application/json"}), timeout=60).close()
    browser.get(f"{lab}/lab/tree/panels.ipynb?token={TOKEN}")
    wait = WebDriverWait(browser, 90)
    # A Run All sent while Lab connects the kernel runs nothing, and a cell that runs shows [*] at
    # once: if none has started within 3 s, Run All again, as a user would.
    for _ in range(30):
        run_all_cells(browser, wait)
        try:
            WebDriverWait(browser, 3).until(started)
            break
        except TimeoutException:
            continue
    until_ready(browser, wait, lambda d: all(
        cell(d, panel).find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output") for panel in PANELS))
    return browser


def started(driver):
    """Some cell is running or has run: its prompt is no longer ``[ ]:``."""
    prompts = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    try:
        return any(p.text.strip() not in ("", "[ ]:") for p in prompts)
    except StaleElementReferenceException:
        return False


def run_all_cells(driver, wait):
    """Run > Run All Cells, once the kernel is idle and no dialog covers the menu bar."""
    until_ready(driver, wait, lambda d: d.find_elements(
        By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
        and not d.find_elements(By.CSS_SELECTOR, ".jp-Dialog"))
    menu = wait.until(EC.element_to_be_clickable(
        (By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']")))
    menu.click()
    wait.until(EC.element_to_be_clickable(
        (By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']"))).click()


def until_ready(driver, wait, ready):
    """Wait for ``ready``; on a slow start Lab may ask which kernel to use, before or after Run All
    (its default is right): accept, as a user would."""
    dialog = (By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept")
    while not ready(driver):
        wait.until(lambda d: ready(d) or d.find_elements(*dialog))
        for button in driver.find_elements(*dialog):
            try:
                button.click()
            except StaleElementReferenceException:
                pass


def cell(driver, panel):
    """The code cell that shows ``panel`` (found anew each time: Lab may re-render it)."""
    return driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")[list(PANELS).index(panel)]


def plot_source(driver, panel):
    """The panel's current picture (None while it is being replaced)."""
    try:
        images = cell(driver, panel).find_elements(By.CSS_SELECTOR, ".widget-output img")
        return images[0].get_attribute("src") if images else None
    except StaleElementReferenceException:
        return None


def output_text(driver, panel):
    try:
        return cell(driver, panel).find_element(By.CSS_SELECTOR, ".jp-OutputArea").text
    except StaleElementReferenceException:
        return ""


def test_schedule_explorer_redraws_when_a_control_changes(panels):
    browser, wait, panel = panels, WebDriverWait(panels, 90), "schedule_explorer"

    # The live widget renders (not the static fallback picture) with its curve.
    menus = (By.CSS_SELECTOR, ".widget-dropdown select")
    wait.until(lambda d: cell(d, panel).find_elements(*menus))
    wait.until(lambda d: plot_source(d, panel))
    menu = Select(cell(browser, panel).find_element(*menus))
    before, first_choice = plot_source(browser, panel), menu.first_selected_option.text
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "schedule_explorer_initial.png"))

    # Choosing another scheduler redraws the curve and shows that scheduler's code.
    menu.select_by_visible_text("CosineAnnealingLR")
    wait.until(lambda d: plot_source(d, panel) not in (None, before))
    wait.until(lambda d: "CosineAnnealingLR(optimizer" in output_text(d, panel))
    assert first_choice != "CosineAnnealingLR"
    browser.save_screenshot(str(SHOTS / "schedule_explorer_cosine.png"))


def test_playground_redraws_when_the_optimizer_or_the_lr_changes(panels):
    browser, wait, panel = panels, WebDriverWait(panels, 90), "playground"

    # The live panel renders with its picture: surface and optimizer menus, then the sliders.
    menus = (By.CSS_SELECTOR, ".widget-dropdown select")
    wait.until(lambda d: len(cell(d, panel).find_elements(*menus)) == 2)
    wait.until(lambda d: plot_source(d, panel))
    optimizer = Select(cell(browser, panel).find_elements(*menus)[1])
    assert optimizer.first_selected_option.text == "momentum"
    before = plot_source(browser, panel)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "playground_initial.png"))

    # Another optimizer: a new picture, and its code above it.
    optimizer.select_by_visible_text("Adam")
    wait.until(lambda d: plot_source(d, panel) not in (None, before))
    wait.until(lambda d: "Adam(params, lr=0.05" in output_text(d, panel))
    after_menu = plot_source(browser, panel)

    # The lr slider (log scale): one keyboard step up redraws with a larger lr.
    handle = cell(browser, panel).find_elements(By.CSS_SELECTOR, ".widget-hslider .noUi-handle")[0]
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: plot_source(d, panel) not in (None, after_menu))
    wait.until(lambda d: "Adam(params, lr=0.0631" in output_text(d, panel))
    wait.until(lambda d: d.find_elements(
        By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))
    browser.save_screenshot(str(SHOTS / "playground_adam.png"))
