"""The leaderboard in a real browser (Debian's chromium + chromedriver) against a real server.

The service runs as `leaderboard serve` (uvicorn and the embedded queue consumer) on a free
loopback port with a fresh SQLite database and small synthetic test sets for NL and ES. Two
teams submit prediction files over HTTP, one of them named like an XSS payload; the test then
opens the leaderboard, switches country, opens a submission and sees its ROC plot. Screenshots
go to test-output/browser/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
from browser_factories import OUTPUT, ROOT, chromium, require_browser, serving

from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import PreparedData
from evaluator.data.synth import write_synthetic

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.browser

# This checkout's code, whichever copy of the package the environment has installed.
LEADERBOARD = (sys.executable, "-m", "app")
XSS_TEAM = "<script>alert(1)</script>"
FORMULA_TEAM = '=HYPERLINK("http://evil.example","x")'
COUNTRIES = ("NL", "ES")
TEST_ROWS = 20_000  # enough for conversions on the public split of both countries


require_browser()


@dataclass
class Server:
    url: str
    env: dict[str, str]
    data_dir: Path


def leaderboard_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([*LEADERBOARD, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def token_of(output: str) -> str:
    # The token is printed once; take the longest URL-safe word of the output.
    words: list[str] = re.findall(r"[A-Za-z0-9_\-\.]{30,}", output)
    assert words, output
    return max(words, key=len)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser")
    data_dir = tmp / "data"
    raw = tmp / "raw"
    write_synthetic(raw, countries=COUNTRIES, train_rows=0, test_rows=TEST_ROWS, seed=3)
    for cc in COUNTRIES:
        prepare_csv(raw / f"AliExpress_{cc}" / "test.csv", data_dir / "prepared" / cc)
    env = {**os.environ, "LB_DATA_DIR": str(data_dir),
           "LB_DATABASE_URL": f"sqlite:///{tmp / 'lb.db'}", "LB_ENV": "development",
           "PYTHONPATH": str(ROOT)}
    env.pop("LB_REDIS_URL", None)
    leaderboard_cli(env, "db", "upgrade")
    with serving(env, tmp / "server.log") as url:
        yield Server(url=url, env=env, data_dir=data_dir)


def prediction_csv(data: PreparedData, skill: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    click = np.asarray(data.click, dtype=float)
    conversion = np.asarray(data.conversion, dtype=float)
    ctr = 1 / (1 + np.exp(-(skill * click + rng.normal(size=click.size) - 3)))
    cvr = 1 / (1 + np.exp(-(skill * conversion + rng.normal(size=click.size) - 3)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row_id", "ctr", "cvr"])
    for i in range(click.size):
        writer.writerow([i, f"{ctr[i]:.6f}", f"{cvr[i]:.6f}"])
    return out.getvalue().encode()


def submit(server: Server, token: str, country: str, method: str, body: bytes) -> int:
    response = httpx.post(
        f"{server.url}/api/v1/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"country": country, "method": method},
        files={"file": ("predictions.csv", body, "text/csv")},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def wait_scored(server: Server, token: str, ids: list[int]) -> None:
    deadline = time.monotonic() + 120
    pending = set(ids)
    while pending:
        for sid in list(pending):
            state = httpx.get(f"{server.url}/api/v1/submissions/{sid}",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
            assert state["state"] != "failed", state
            if state["state"] == "scored":
                pending.discard(sid)
        assert time.monotonic() < deadline, f"not scored in time: {pending}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def organiser_token(server: Server) -> str:
    return token_of(leaderboard_cli(server.env, "admin", "create-team", "organisers",
                                    "--organiser"))


@pytest.fixture(scope="module")
def populated(server: Server) -> Server:
    teams = {XSS_TEAM: 1.5, "deep-ctr": 2.5, FORMULA_TEAM: 1.0}
    for index, (team, skill) in enumerate(teams.items()):
        token = token_of(leaderboard_cli(server.env, "admin", "create-team", team))
        ids = []
        for cc in COUNTRIES:
            data = PreparedData.open(server.data_dir / "prepared" / cc)
            ids.append(submit(server, token, cc, f"model-{index}",
                              prediction_csv(data, skill, seed=index)))
        wait_scored(server, token, ids)
    return server


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with chromium("chromium-profile", "1440,1600") as browser:
        yield browser


def screenshot(browser: WebDriver, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    # Full page: shrink the window, then grow it to the document's height for the shot.
    browser.set_window_size(1440, 900)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1440, min(max(int(height), 900), 6000))
    assert browser.save_screenshot(str(path))
    return path


def click_and_wait(browser: WebDriver, element: WebElement) -> None:
    """Click something that loads a new page and wait until that page has replaced the old one.

    Reading the page straight after a click races the navigation: an element found on the old
    page goes stale under us (seen in CI).
    """
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old_root = browser.find_element("tag name", "html")
    element.click()
    wait = WebDriverWait(browser, 30)
    wait.until(expected_conditions.staleness_of(old_root))
    wait.until(lambda b: b.execute_script("return document.readyState") == "complete")


def no_alert(browser: WebDriver) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        browser.switch_to.alert  # noqa: B018
    except NoAlertPresentException:
        return True
    return False


def test_leaderboard_country_switch_and_submission_roc(
    populated: Server, driver: WebDriver,
) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    browser.get(populated.url + "/")
    table = browser.find_element(By.ID, "leaderboard")
    text = table.text
    assert "deep-ctr" in text
    assert XSS_TEAM in text  # shown as text ...
    assert no_alert(browser)  # ... never run
    assert browser.find_elements(By.CSS_SELECTOR, "#leaderboard .ci")
    assert browser.find_elements(By.CSS_SELECTOR, "#leaderboard .group")
    screenshot(browser, "overall")

    click_and_wait(browser, browser.find_element(By.ID, "nav-ES"))
    assert browser.current_url.endswith("/country/ES")
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert "ES" in heading
    plots = browser.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert len(plots) == 4  # three CI plots and the CTR-vs-CVR scatter
    assert no_alert(browser)
    screenshot(browser, "country-ES")

    link = browser.find_element(
        By.XPATH, "//tr[.//span[@class='name' and text()='deep-ctr']]//a[@class='auc']")
    click_and_wait(browser, link)
    assert "/submissions/" in browser.current_url
    submission_id = browser.current_url.rsplit("/", 1)[-1]
    result = httpx.get(f"{populated.url}/api/v1/results/{submission_id}", timeout=10).json()
    defined = [t for t, s in result["scores"]["public"].items() if s["auc"] is not None]
    assert "ctr" in defined
    curves = browser.find_elements(By.CSS_SELECTOR, "#roc polyline.roc-curve")
    assert len(curves) == len(defined)  # one curve per task with both classes on the split
    assert "deep-ctr" in browser.find_element(By.TAG_NAME, "h1").text
    screenshot(browser, "submission")


def test_organiser_logs_in_and_reveals_the_private_split(
    populated: Server, driver: WebDriver, organiser_token: str,
) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    browser.get(populated.url + "/organiser")
    browser.find_element(By.ID, "token").send_keys(organiser_token)
    click_and_wait(browser, browser.find_element(
        By.CSS_SELECTOR, "form.login button"))
    assert "Logged in" in browser.find_element(By.CLASS_NAME, "flash").text
    cookie = browser.get_cookie("lb_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert organiser_token not in cookie["value"]
    table = browser.find_element(By.ID, "org-submissions").text
    assert XSS_TEAM in table
    assert no_alert(browser)
    screenshot(browser, "organiser")

    click_and_wait(browser, browser.find_element(By.ID, "reveal"))
    assert "revealed" in browser.find_element(By.CLASS_NAME, "flash").text
    audit = browser.find_element(By.ID, "audit").text
    assert "organisers" in audit
    assert "reveal" in audit
    browser.get(populated.url + "/")
    assert "private" in browser.find_element(By.CLASS_NAME, "split").text
    assert httpx.get(f"{populated.url}/api/v1/leaderboard", timeout=10).json()["split"] == (
        "private")
    screenshot(browser, "overall-revealed")


def test_csv_export_neutralises_formula_team_names(populated: Server) -> None:
    response = httpx.get(f"{populated.url}/api/v1/leaderboard?format=csv", timeout=30)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    teams = {row["team"] for row in rows if row["kind"] == "measured"}
    assert "'" + FORMULA_TEAM in teams
    assert XSS_TEAM in teams  # plain text in a CSV; nothing to execute there
    assert FORMULA_TEAM not in teams
