"""A participant in a real browser (Debian's chromium + chromedriver) against a real server.

The service runs as `python -m app serve` (uvicorn and its queue consumer, a separate worker
process) on a free loopback port, with a fresh SQLite database and a small synthetic NL test
set. A team signs in, uploads a CSV through the form and watches it become `scored` without a
reload; a broken file's problems are listed beside the form; a checkpoint is uploaded and its
output-order warning shown; cross-site form posts from another origin change nothing; the token
is revoked and the next page asks to sign in. Screenshots at 400 px and 1400 px go to
test-output/browser/ (git-ignored).
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from browser_factories import OUTPUT, ROOT, chromium, require_browser, serving

from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import PreparedData
from evaluator.data.synth import write_synthetic

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

TEST_ROWS = 6000
COUNTRIES = ("NL", "ES", "FR", "US")
LONG_METHOD = "multi-gate mixture of experts, 8 experts, tuned gates and a very long name"

require_browser()


@dataclass
class Server:
    url: str
    env: dict[str, str]
    data_dir: Path
    files: Path
    team_token: str
    organiser_token: str


def cli(env: dict[str, str], *args: str) -> str:
    # This checkout's code, whichever package the environment has installed.
    result = subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def token_of(output: str) -> str:
    found = re.findall(r"mtme_[A-Za-z0-9_\-]{30,}", output)
    assert found, output
    return str(found[-1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("participant-browser")
    data_dir = tmp / "data"
    write_synthetic(tmp / "raw", countries=COUNTRIES, train_rows=0, test_rows=TEST_ROWS, seed=5)
    for cc in COUNTRIES:
        prepare_csv(tmp / "raw" / f"AliExpress_{cc}" / "test.csv", data_dir / "prepared" / cc)
    env = {**os.environ, "LB_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
           "LB_DATABASE_URL": f"sqlite:///{tmp / 'lb.db'}", "LB_ENV": "development"}
    for name in ("LB_REDIS_URL", "LB_SECRET_KEY"):
        env.pop(name, None)
    cli(env, "db", "upgrade")
    organiser = token_of(cli(env, "admin", "create-team", "organisers", "--organiser"))
    team = token_of(cli(env, "admin", "create-team", "browser-team", "--as", "organisers"))
    files = tmp / "files"
    files.mkdir()
    with serving(env, tmp / "server.log") as url:
        yield Server(url=url, env=env, data_dir=data_dir, files=files, team_token=team,
                     organiser_token=organiser)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with chromium("chromium-profile-participant", "1400,1000") as browser:
        yield browser


def wait_for(browser: WebDriver, condition: Any, timeout: float = 120) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.25).until(condition)


def set_width(browser: WebDriver, width: int) -> None:
    """A viewport of exactly `width` CSS pixels (a window frame, if any, is added around it)."""
    from selenium.common.exceptions import TimeoutException

    frame = 0
    for _attempt in range(3):
        browser.set_window_size(width + frame, 1000)
        try:
            wait_for(browser, lambda b: int(b.execute_script("return window.innerWidth"))
                     == width, 5)
            return
        except TimeoutException:
            frame = max(0, int(browser.execute_script(
                "return window.outerWidth - window.innerWidth")))
    raise AssertionError(f"could not make the viewport {width} px wide")


def screenshot(browser: WebDriver, name: str, width: int) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}-{width}px.png"
    set_width(browser, width)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(int(browser.get_window_size()["width"]), min(max(height, 800), 5000))
    assert browser.save_screenshot(str(path))
    set_width(browser, width)
    return path


def prediction_csv(data: PreparedData, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    click = np.asarray(data.click, dtype=float)
    conversion = np.asarray(data.conversion, dtype=float)
    ctr = 1 / (1 + np.exp(-(2.0 * click + rng.normal(size=click.size) - 3)))
    cvr = 1 / (1 + np.exp(-(2.0 * conversion + rng.normal(size=click.size) - 3)))
    lines = ["row_id,ctr,cvr"] + [f"{i},{ctr[i]:.6f},{cvr[i]:.6f}" for i in range(click.size)]
    return ("\n".join(lines) + "\n").encode()


def traced_checkpoint(path: Path) -> None:
    """A model shaped like the multi-task library's: (pCTR, pCTCVR), exported by tracing."""
    import torch
    from torch import nn

    class CtrAndCtcvr(nn.Module):
        def forward(self, categorical: torch.Tensor,
                    numerical: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            ctr = torch.sigmoid(numerical[:, 0] * 2.0 - 1.0)
            return ctr, ctr * torch.sigmoid(numerical[:, 1] - 3.0)

    sample = (torch.zeros(4, 16, dtype=torch.int64), torch.rand(4, 63))
    # torch ships torch.jit.trace without annotations.
    traced = torch.jit.trace(CtrAndCtcvr().eval(), sample)  # type: ignore[no-untyped-call]
    torch.jit.save(traced, str(path))


# Every visible text node's contrast against the background it sits on, by the WCAG 2
# formula: at least 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). The script returns
# the ones below.
LOW_CONTRAST_JS = (Path(__file__).parent / "contrast.js").read_text()


def low_contrast(browser: WebDriver) -> list[Any]:
    found: list[Any] = browser.execute_script(LOW_CONTRAST_JS)
    return found


def sign_in(browser: WebDriver, server: Server, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/login")
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    # The keyboard alone: Enter in the labelled field sends the form.
    field.send_keys("\n")
    wait_for(browser, lambda b: b.current_url.endswith("/me"), 30)
    wait_for(browser, lambda b: b.find_element(By.ID, "upload-form"), 30)


def choose(browser: WebDriver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, element_id)).select_by_value(value)


def fill_and_upload(browser: WebDriver, method: str, file: Path | None = None,
                    checkpoint: Path | None = None, outputs: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    choose(browser, "country", "NL")
    box = browser.find_element(By.ID, "method")
    box.clear()
    box.send_keys(method)
    if file is not None:
        browser.find_element(By.ID, "file").send_keys(str(file))
    if checkpoint is not None:
        browser.find_element(By.ID, "checkpoint").send_keys(str(checkpoint))
    if outputs is not None:
        choose(browser, "outputs", outputs)
    browser.find_element(By.ID, "upload-button").click()


def accepted_id(browser: WebDriver) -> int:
    from selenium.webdriver.common.by import By

    element = wait_for(browser, lambda b: b.find_element(By.ID, "upload-accepted"), 60)
    found = re.search(r"Submission (\d+) accepted", element.text)
    assert found, element.text
    return int(found.group(1))


def wait_state(browser: WebDriver, sid: int, state: str, timeout: float = 180) -> None:
    def reached(b: WebDriver) -> bool:
        # Read in one script: the live updates replace the rows between two driver calls.
        found = b.execute_script(
            "var r = document.getElementById(arguments[0]);"
            "return r ? [r.getAttribute('data-state'), r.innerText] : null;", f"sub-{sid}")
        if not found:
            return False
        current, text = found
        assert current != "failed" or state == "failed", text
        return bool(current == state)

    wait_for(browser, reached, timeout)


def test_a_participant_signs_in_uploads_and_follows_submissions_live(
    server: Server, driver: WebDriver,
) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    set_width(browser, 1400)
    browser.get(server.url + "/me")
    assert browser.current_url.endswith("/login?err=signin")  # the page asks to sign in
    sign_in(browser, server, server.team_token)
    assert "browser-team" in browser.find_element(By.TAG_NAME, "h1").text
    cookie = browser.get_cookie("lb_session")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert server.team_token not in cookie["value"]

    # A CSV through the form: a byte progress bar, then `scored` without a reload.
    data = PreparedData.open(server.data_dir / "prepared" / "NL")
    csv_path = server.files / "predictions.csv"
    csv_path.write_bytes(prediction_csv(data, seed=1))
    browser.execute_script("window.noReloadMarker = 'still the same page';")
    fill_and_upload(browser, LONG_METHOD, file=csv_path)
    sid = accepted_id(browser)
    bar = browser.find_element(By.ID, "upload-bar")
    sent, total = float(bar.get_attribute("value") or 0), float(bar.get_attribute("max") or 0)
    assert sent == total >= csv_path.stat().st_size  # the whole body, multipart framing too
    assert "sent" in browser.find_element(By.ID, "upload-bytes").text
    wait_state(browser, sid, "scored")
    assert browser.execute_script("return window.noReloadMarker") == "still the same page"
    text = browser.execute_script(
        "return document.getElementById(arguments[0]).innerText", f"sub-{sid}")
    assert re.search(r"CTR 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", text), text
    assert "public" in text and "private" not in text
    # The method name is now suggested.
    options = browser.find_elements(By.CSS_SELECTOR, "#method-names option")
    assert LONG_METHOD in [o.get_attribute("value") for o in options]

    # A broken file: its problems listed beside the form, with lines and columns.
    broken = server.files / "broken.csv"
    broken.write_text("row_id,ctr,cvr\n0,1.5,0.5\n1,abc,0.5\n")
    fill_and_upload(browser, "broken-model", file=broken)
    problems = wait_for(browser, lambda b: b.find_element(By.ID, "upload-problems"), 60)
    assert "invalid_file" in problems.text
    items = [li.text for li in problems.find_elements(By.CSS_SELECTOR, "li")]
    assert any("line 2" in item and "column ctr" in item for item in items), items
    assert any("line 3" in item and "column ctr" in item for item in items), items

    # A checkpoint exported by tracing, declared ctr,cvr though it returns (pCTR, pCTCVR):
    # scored as declared, with the warning on the submission.
    model = server.files / "model.pt"
    traced_checkpoint(model)
    browser.get(server.url + "/me")
    fill_and_upload(browser, "traced-mtl", checkpoint=model, outputs="ctr,cvr")
    ckpt_id = accepted_id(browser)
    wait_state(browser, ckpt_id, "scored", timeout=300)
    text = browser.execute_script(
        "return document.getElementById(arguments[0]).innerText", f"sub-{ckpt_id}")
    assert "checkpoint" in text and "Check the outputs" in text, text
    assert "ctr,ctcvr" in text

    assert low_contrast(browser) == []

    # The final-selection toggle: a plain form with the session's CSRF token.
    browser.find_element(By.ID, f"select-{sid}").click()
    mark = wait_for(browser, lambda b: b.find_element(By.ID, f"mark-{sid}"), 60)
    assert mark.text == "selected (manual)"
    assert "now counts for the final ranking" in browser.find_element(By.ID, "me-notice").text
    assert browser.find_element(By.ID, f"unselect-{sid}")
    assert low_contrast(browser) == []

    # Screenshots of /me.
    screenshot(browser, "me", 1400)
    screenshot(browser, "me", 400)

    # The submission page: the team's own, laid out within 400 px despite the sha256 line.
    browser.get(f"{server.url}/submissions/{sid}")
    set_width(browser, 400)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, width
    screenshot(browser, "submission", 400)


def test_the_board_fits_at_1400_px_and_keeps_team_and_method_in_view_at_400_px(
    server: Server, driver: WebDriver,
) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    # A full row: another team's entry in all four countries (12 AUC columns with intervals).
    token = token_of(cli(server.env, "admin", "create-team", "everywhere", "--as",
                         "organisers"))
    ids = []
    for index, cc in enumerate(COUNTRIES):
        data = PreparedData.open(server.data_dir / "prepared" / cc)
        response = httpx.post(f"{server.url}/api/v1/submissions",
                              headers={"Authorization": f"Bearer {token}"},
                              data={"country": cc, "method": "four countries"},
                              files={"file": ("p.csv", prediction_csv(data, seed=10 + index),
                                              "text/csv")}, timeout=60)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 180
    for sid in ids:
        while httpx.get(f"{server.url}/api/v1/submissions/{sid}", timeout=10,
                        headers={"Authorization": f"Bearer {token}"}).json()["state"] != "scored":
            assert time.monotonic() < deadline, f"submission {sid} not scored in time"
            time.sleep(0.5)
    set_width(browser, 1400)
    browser.get(server.url + "/")
    assert LONG_METHOD in browser.find_element(By.ID, "leaderboard").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#leaderboard a.auc")) >= 4 + 2
    box = browser.find_element(By.CSS_SELECTOR, ".scroll:has(#leaderboard)")
    overflow = browser.execute_script("return arguments[0].scrollWidth - arguments[0].clientWidth",
                                      box)
    assert overflow <= 1, f"the board is {overflow} px wider than the page at 1400 px"
    for cell in browser.find_elements(By.CSS_SELECTOR, "#leaderboard td.method"):
        cut = browser.execute_script("return arguments[0].scrollWidth - arguments[0].clientWidth",
                                     cell)
        assert cut <= 1, cell.text  # the full name is there to read, wrapped
    assert low_contrast(browser) == []  # the group badges included
    screenshot(browser, "board", 1400)

    set_width(browser, 400)
    browser.get(server.url + "/")
    box = browser.find_element(By.CSS_SELECTOR, ".scroll:has(#leaderboard)")
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth",
                                  box)
    # The first screen shows AUCs beside team and method ...
    first = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody td.num a.auc")[0]
    rect = browser.execute_script("return arguments[0].getBoundingClientRect()", first)
    assert rect["left"] >= 0 and rect["right"] <= 400, rect
    screenshot(browser, "board", 400)
    # ... and scrolled sideways, team and method stay in view.
    browser.execute_script("arguments[0].scrollLeft = arguments[0].scrollWidth", box)
    left = browser.execute_script("return arguments[0].getBoundingClientRect().left", box)
    team = browser.find_element(By.CSS_SELECTOR, "#leaderboard tbody td.team")
    method = browser.find_element(By.CSS_SELECTOR, "#leaderboard tbody td.method")
    for cell in (team, method):
        rect = browser.execute_script("return arguments[0].getBoundingClientRect()", cell)
        assert rect["left"] >= left - 1 and rect["right"] <= 400 + 1, rect
    screenshot(browser, "board-scrolled", 400)


class AttackerPage(http.server.BaseHTTPRequestHandler):
    """Another site's page: forms that post to the service as soon as they load."""

    target = ""
    token = ""

    def do_GET(self) -> None:
        body = f"""<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="signin" method="post" action="{self.target}/login" target="sink">
  <input name="token" value="{self.token}"></form>
<form id="out" method="post" action="{self.target}/logout" target="sink">
  <input name="csrf" value="x"></form>
<script>document.getElementById('signin').submit();
setTimeout(function () {{ document.getElementById('out').submit(); }}, 500);
setTimeout(function () {{ document.title = 'sent'; }}, 1500);</script>
</body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_cross_site_form_posts_are_refused_and_a_revoked_token_ends_the_session(
    server: Server, driver: WebDriver,
) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    set_width(browser, 1400)
    browser.get(server.url + "/me")
    assert browser.current_url.endswith("/me")  # still signed in from the first test
    other = token_of(cli(server.env, "admin", "create-team", "attackers", "--as",
                         "organisers"))
    AttackerPage.target, AttackerPage.token = server.url, other
    # `localhost` is another site than `127.0.0.1`: the browser treats it as cross-site.
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AttackerPage)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://localhost:{attacker.server_address[1]}/")
        wait_for(browser, lambda b: b.title == "sent", 30)
    finally:
        attacker.shutdown()
    # Neither signed this browser in as the attackers' team nor signed it out.
    browser.get(server.url + "/me")
    assert browser.current_url.endswith("/me")
    assert "browser-team" in browser.find_element(By.TAG_NAME, "h1").text

    # The organisers revoke the team's token: the next page asks to sign in.
    auth = {"Authorization": f"Bearer {server.organiser_token}"}
    teams = httpx.get(f"{server.url}/api/v1/teams", headers=auth, timeout=10).json()
    team_id = next(t["id"] for t in teams if t["name"] == "browser-team")
    tokens = httpx.get(f"{server.url}/api/v1/teams/{team_id}/tokens", headers=auth,
                       timeout=10).json()
    for token in tokens:
        revoked = httpx.post(f"{server.url}/api/v1/tokens/{token['id']}/revoke", headers=auth,
                             timeout=10)
        assert revoked.status_code == 200, revoked.text
    browser.get(server.url + "/me")
    assert browser.current_url.endswith("/login?err=signin")
    assert "Sign in first" in browser.find_element(By.ID, "login-error").text
    assert low_contrast(browser) == []
    screenshot(browser, "signed-out-after-revoke", 400)
