"""A real browser: headless Chromium loads the running demo, signs in and shows the token table.

The screenshots land in ``test-artifacts/`` (taken at 1280 px: copy ``dashboard-overview.png`` and
``dashboard-tokens.png`` to ``docs/`` to retake the documentation's; a test never writes there).
Needs Debian's ``chromium`` and ``chromium-driver`` (the CI script installs them) and selenium
(the test extra).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mongo_store.tools.embedded import free_port, mongod_binary

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TERMINAL = ARTIFACTS / "demo-terminal.log"
"""What the demo printed (Streamlit's terminal): no stack trace, no deprecation warning."""
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _missing() -> str | None:
    if not (CHROMIUM and DRIVER):
        return "no chromium/chromedriver: apt-get install chromium chromium-driver"
    if mongod_binary() is None:
        return "no embedded mongod for the demo"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no selenium: pip install -e '.[test]'"
    return None


DEMO: dict[str, Any] = {}
"""The running demo's data folder (its mongod writes its pid in ``mongod.lock``)."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_URI", "DASHBOARD_", "ZOHO_"))}
    ARTIFACTS.mkdir(exist_ok=True)
    log = TERMINAL.open("w")
    DEMO["data"] = tmp_path_factory.mktemp("demo-data")
    process = subprocess.Popen(
        [sys.executable, "-m", "mongo_store.cli", "demo", "--port", str(port), "--data-dir", str(DEMO["data"])],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_started(process, url, 90, TERMINAL)
    except BaseException:
        process.kill()
        raise
    yield url
    os.killpg(process.pid, 2)  # SIGINT: streamlit exits, then the demo stops its mongod
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium("1280,1000") as driver:
        yield driver


@contextlib.contextmanager
def chromium(window: str, *flags: str) -> Iterator[Any]:
    """Headless Chromium with a fresh profile, through chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="zoho-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={window}", f"--user-data-dir={profile}", *flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: object, css: str, text: str | None = None, timeout: float = 60) -> object:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        for element in driver.find_elements(By.CSS_SELECTOR, css):
            try:
                if text is None or text in element.text:
                    return element
            except StaleElementReferenceException:  # a rerun replaced it while we looked: look again
                continue
        if time.monotonic() > deadline:
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "browser-failure.png"))
            raise AssertionError(f"no {css!r} with {text!r} on the page; see test-artifacts/browser-failure.png")
        time.sleep(0.3)


def test_the_demo_signs_in_and_shows_the_token_table(demo: str, browser: object) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo)
    wait_for(browser, "input[type='password']")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame']")  # nothing before sign-in
    browser.find_element(By.CSS_SELECTOR, "input[aria-label^='Your name']").send_keys("Browser Test")
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys("demo")
    wait_for(browser, "button", "Sign in").click()
    wait_for(browser, "[data-testid='stMetric']", "Tokens")
    assert "300" in wait_for(browser, "[data-testid='stMetric']", "Tokens").text
    attention = wait_for(browser, "[data-testid='stMetric']", "Needs attention").text
    assert int(attention.split()[-1]) > 0 and "as of" in wait_for(browser, "[data-testid='stCaptionContainer']", "as of").text
    assert "MongoDB 6.0" in wait_for(browser, "[data-testid='stSidebar']", "Backend").text
    time.sleep(2)  # let the charts draw
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-overview.png"))
    assert not cut_labels(browser), cut_labels(browser)

    # One click from the count of tokens that need attention to their list.
    needing = int(attention.split()[-1])
    wait_for(browser, "button", f"Show these {needing}").click()
    wait_for(browser, "[data-testid='stDataFrame']")
    wait_for(browser, "[data-testid='stMarkdownContainer']", f"· {needing} tokens")
    health_box = wait_for(browser, "[data-testid='stSelectbox']", "Health").get_attribute("innerHTML")
    assert "Needs attention (failing + unusable)" in health_box
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-tokens.png"))
    # At 1280 px every column of the token grid is in view: the grid does not scroll sideways.
    width, visible = browser.execute_script(
        "const s = document.querySelector(\"[data-testid='stDataFrame'] .dvn-scroller\");"
        "return [s.scrollWidth, s.clientWidth];")
    assert width <= visible + 1, f"the token grid is {width} px wide in {visible} px: columns are cut off"
    assert (ARTIFACTS / "dashboard-tokens.png").stat().st_size > 10_000

    # A tick in the grid's row markers selects that row for the actions below (a real click: AppTest
    # cannot click a grid).
    from selenium.webdriver.common.action_chains import ActionChains

    assert not wait_for(browser, "button", "Delete ticked rows").is_enabled()
    grid = browser.find_element(By.CSS_SELECTOR, "[data-testid='stDataFrame']")
    size = grid.size
    for row in (0, 2):  # the marker column's centre, 35-px rows under a 35-px header; offsets from the centre
        ActionChains(browser).move_to_element_with_offset(
            grid, 18 - size["width"] // 2, 35 + 35 * row + 17 - size["height"] // 2).click().perform()
        time.sleep(1.5)
    until(lambda: wait_for(browser, "button", "Delete ticked rows").is_enabled(), "Delete ticked rows enabled by the ticks")


def steady(read: Callable[[], Any], tries: int = 20) -> Any:
    """``read()``, again if a rerun replaced the element it found meanwhile (a stale reference)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in range(tries):
        try:
            return read()
        except StaleElementReferenceException:
            if attempt == tries - 1:
                raise
            time.sleep(0.3)
    return None


def forget_session(browser: Any, url: str) -> None:
    """Drop the session cookie an earlier test left, from a page of the same origin that is not the
    app (an open app page could write it again)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    browser.get(f"{parts.scheme}://{parts.netloc}/_stcore/health")
    browser.delete_all_cookies()


def sign_in_fresh(browser: object, demo: str) -> None:
    """A new page load: a new Streamlit session, signed in, on the Tokens page (the session cookie of
    an earlier test forgotten first)."""
    from selenium.webdriver.common.by import By

    forget_session(browser, demo)
    browser.get(demo)
    wait_for(browser, "input[type='password']")
    browser.find_element(By.CSS_SELECTOR, "input[aria-label^='Your name']").send_keys("Browser Test")
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys("demo")
    wait_for(browser, "button", "Sign in").click()
    wait_for(browser, "[data-testid='stMetric']", "Tokens")
    wait_for(browser, "[data-testid='stSidebar'] label", "Tokens").click()
    wait_for(browser, "[data-testid='stDataFrame']")
    wait_for(browser, "button", "Delete all")


def dialogs(browser: object) -> list[object]:
    from selenium.webdriver.common.by import By

    return [d for d in browser.find_elements(By.CSS_SELECTOR, "[role='dialog']") if d.is_displayed()]


def until(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Wait for ``condition`` (a rerun's answer takes longer on a loaded machine: never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.3)


def no_dialog_for(browser: object, seconds: float) -> None:
    """No dialog shows up within ``seconds`` (a rerun reopening a dismissed one takes well under that)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if dialogs(browser):
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "browser-failure.png"))
            raise AssertionError(f"a dialog came back: {dialogs(browser)[0].text!r}")
        time.sleep(0.3)


def click(browser: object, element: object) -> None:
    """Click an element scrolled to the middle of the window (Streamlit's header covers the top)."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    time.sleep(0.3)
    element.click()


def choose(browser: object, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``, as a person does (open it, click the option)."""
    box = wait_for(browser, "[data-testid='stSelectbox']", label)
    from selenium.webdriver.common.by import By

    click(browser, box.find_element(By.CSS_SELECTOR, "input"))
    wait_for(browser, "[role='option']", option).click()
    time.sleep(1.5)


def test_a_dismissed_dialog_stays_closed_and_forgets_what_was_typed(demo: str, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in_fresh(browser, demo)
    click(browser, wait_for(browser, "button", "Delete all"))
    wait_for(browser, "[role='dialog']", "whole collection")
    typed = wait_for(browser, "[role='dialog'] input[aria-label^='Type ']")  # (a dialog draws its parts one by one)
    assert typed.get_attribute("aria-label") == "Type the name above to confirm (then press Enter)"  # no escapes
    said = wait_for(browser, "[role='dialog'] [data-testid='stText']", "To confirm, type: ").text
    name = said.split("To confirm, type: ")[1].strip()  # as rendered: plain text
    assert name == "zoho_demo.oauth_tokens", name
    assert not wait_for(browser, "[role='dialog'] button", "Delete").is_enabled()  # nothing typed yet
    typed.send_keys(name, Keys.ENTER)
    until(lambda: wait_for(browser, "[role='dialog'] button", "Delete").is_enabled(), "Delete enabled by the name")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dialog-armed.png"))
    typed.send_keys(Keys.ESCAPE)  # dismissed with Esc, one click from deleting everything
    until(lambda: not dialogs(browser), "the dialog closes")
    choose(browser, "Data center", "EU")  # the unrelated click that used to reopen it
    no_dialog_for(browser, 4)
    wait_for(browser, "[data-testid='stMarkdownContainer']", "tokens")
    browser.save_screenshot(str(ARTIFACTS / "dialog-dismissed-stays-closed.png"))
    click(browser, wait_for(browser, "button", "Delete all"))  # opened again: filtered, and nothing typed
    dialog = wait_for(browser, "[role='dialog']", "that match the filter (data center: EU)")
    assert wait_for(browser, "[role='dialog'] input[aria-label^='Type ']").get_attribute("value") == ""
    browser.save_screenshot(str(ARTIFACTS / "dialog-delete-filtered.png"))
    dialog.find_element(By.CSS_SELECTOR, "button[aria-label='Close']").click()  # dismissed with ×
    until(lambda: not dialogs(browser), "the dialog closes")

    # The revoke dialog of one token never comes back while another one is inspected.
    click(browser, wait_for(browser, "button", "Revoke at Zoho"))
    wait_for(browser, "[role='dialog']", "Revoke this token at Zoho")
    wait_for(browser, "[role='dialog'] button[aria-label='Close']").click()
    until(lambda: not dialogs(browser), "the dialog closes")
    inspect = wait_for(browser, "[data-testid='stSelectbox']", "Inspect a token")
    click(browser, inspect.find_element(By.CSS_SELECTOR, "input"))
    browser.find_elements(By.CSS_SELECTOR, "[role='option']")[1].click()
    no_dialog_for(browser, 4)


def test_ticks_stay_with_their_tokens_and_clear_after_the_delete(demo: str, browser: object) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    sign_in_fresh(browser, demo)
    choose(browser, "Sort by", "User name")
    wait_for(browser, "[data-testid='stDataFrame']")
    grid = browser.find_element(By.CSS_SELECTOR, "[data-testid='stDataFrame']")
    size = grid.size
    for row in (0, 2):  # the marker column's centre, 35-px rows under a 35-px header; offsets from the centre
        ActionChains(browser).move_to_element_with_offset(
            grid, 18 - size["width"] // 2, 35 + 35 * row + 17 - size["height"] // 2).click().perform()
        time.sleep(1.5)
    line = wait_for(browser, "[data-testid='stText']", "Ticked: 2 tokens").text
    names = line.split(": ", 2)[2].split(", ")
    assert len(names) == 2 and all("@" in name for name in names), line
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "ticks-before-reorder.png"))
    click(browser, wait_for(browser, "label", "Descending"))  # every row moves
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "ticks-after-reorder.png"))
    # The same two tokens, by name, now on another page: nothing else got ticked.
    moved = wait_for(browser, "[data-testid='stText']", "Ticked: 2 tokens").text
    assert moved.endswith(", ".join(names)) and "not on this page" in moved, moved
    click(browser, wait_for(browser, "button", "Delete ticked rows"))
    dialog = wait_for(browser, "[role='dialog']", "Delete 2 tokens")
    assert all(name in dialog.text for name in names), dialog.text
    browser.save_screenshot(str(ARTIFACTS / "ticks-confirmation.png"))
    wait_for(browser, "[role='dialog'] button", "Delete").click()
    wait_for(browser, "[data-testid='stToast']", "Deleted 2 tokens")
    time.sleep(1.5)
    assert not [t for t in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stText']") if "Ticked:" in t.text]
    assert not wait_for(browser, "button", "Delete ticked rows").is_enabled()
    browser.save_screenshot(str(ARTIFACTS / "ticks-cleared.png"))


def start_dashboard(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``zoho-mongo-store dashboard`` on this port, in a process group of its own (stopped by killpg)."""
    return subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_started(process: subprocess.Popen[bytes], url: str, seconds: float, terminal: Path | None = None) -> None:
    """Wait until the dashboard at ``url`` answers its health check; fail if it exits or takes longer
    (with the end of its ``terminal`` output, when it writes one)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, \
            f"the dashboard did not start:\n{terminal.read_text(errors='replace')[-3000:] if terminal else ''}"
        time.sleep(0.3)


def test_with_sign_in_off_a_rebinding_name_sees_nothing(tmp_path: Path) -> None:
    """DNS rebinding in a real browser: a hostile page's name resolved to 127.0.0.1 reaches the
    dashboard's port, and Streamlit accepts its WebSocket; with sign-in off the dashboard checks the
    Host header and shows nothing under that name, and the tokens under 127.0.0.1."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_URI", "DASHBOARD_", "ZOHO_"))}
    env |= {"MONGODB_URI": "mongomock://", "DASHBOARD_AUTH_DISABLED": "true"}
    process = start_dashboard(port, env)
    # The attacker's DNS answer, on this machine only: rebind.test is 127.0.0.1.
    with chromium("1280,900", "--host-resolver-rules=MAP rebind.test 127.0.0.1") as driver:
        try:
            wait_started(process, f"http://127.0.0.1:{port}", 60)
            driver.get(f"http://rebind.test:{port}")
            wait_for(driver, "[data-testid='stAlert']", "not under another name")
            time.sleep(1)
            assert "Zoho token store" not in driver.find_element("css selector", "body").text
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "rebinding-refused.png"))
            driver.get(f"http://127.0.0.1:{port}")
            wait_for(driver, "[data-testid='stAlert']", "Sign-in is turned off (DASHBOARD_AUTH_DISABLED)")
            wait_for(driver, "[data-testid='stSidebar']", "Zoho token store")
        finally:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


def signed_in_at(browser: Any, url: str) -> None:
    """Open ``url`` (a new session, without the session cookie) and sign in: the view the URL names comes back."""
    from selenium.webdriver.common.by import By

    forget_session(browser, url)
    browser.get(url)
    wait_for(browser, "input[type='password']")
    browser.find_element(By.CSS_SELECTOR, "input[aria-label^='Your name']").send_keys("Browser Test")
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys("demo")
    wait_for(browser, "button", "Sign in").click()


def cut_labels(browser: Any) -> list[str]:
    """The labels of buttons and widgets shown cut off ("Check 1qpjSuL1…"): wider than their box."""
    return browser.execute_script("""
        return [...document.querySelectorAll("button p, [data-testid='stWidgetLabel'] p")]
            .filter(p => p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1).map(p => p.textContent);""")


def full_runs(browser: Any) -> int:
    """How many times the whole page ran in this session (the app counts them in the sidebar)."""
    from selenium.webdriver.common.by import By

    return int(browser.find_element(By.CSS_SELECTOR, "div.full-runs").get_attribute("data-runs"))


def test_at_1280_px_the_url_keeps_the_view_ids_fit_inspect_does_not_scroll_and_a_tick_reruns_only_the_list(
        demo: str, browser: object) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    sign_in_fresh(browser, demo)
    choose(browser, "Health", "Needs attention")
    choose(browser, "Sort by", "User name")
    wait_for(browser, "[data-testid='stMarkdownContainer']", "page 1 of")
    time.sleep(1)
    url = browser.current_url
    assert "page=tokens" in url and "health=attention" in url and "sort=user" in url, url

    # Every id on the page fits its column: measured in the grid's own font (the grid draws on a canvas).
    rows = browser.execute_script("""
        return [...document.querySelectorAll("[data-testid='stDataFrame'] table tbody tr")]
            .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent));""")
    column = next(n for n, cell in enumerate(rows[0]) if len(cell) == 16)  # the grid's hidden accessible table
    ids = [row[column] for row in rows]
    widths = browser.execute_script("""
        const grid = document.querySelector("[data-testid='stDataFrame']");
        const font = getComputedStyle(grid).fontFamily;
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = '14px ' + font;
        return arguments[0].map(t => ctx.measureText(t).width);""", ids)
    from mongo_store.dashboard.pages_tokens import ID_WIDTH

    assert ids and all(len(i) == 16 for i in ids) and max(widths) < ID_WIDTH - 16, (ids[:3], max(widths or [0]))

    # Inspect: a static table, every field in view without an inner scroll bar.
    wait_for(browser, "[data-testid='stTable']")
    for table in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stTable'], [data-testid='stTable'] *"):
        height, visible = browser.execute_script("return [arguments[0].scrollHeight, arguments[0].clientHeight];", table)
        assert height <= visible + 1, f"an inspect element scrolls inside: {height} px in {visible} px"
    assert "health means" in wait_for(browser, "[data-testid='stTable']").text
    # A stored URL (redirect_url, the api_domain) is shown as text, never as a link.
    links = browser.execute_script(
        "return [...document.querySelectorAll(\"[data-testid='stTable'] a\")].map(a => a.textContent);")
    assert not [link for link in links if "//" in link or "www" in link], links
    shown = wait_for(browser, "[data-testid='stTable']", "redirect_url").text
    assert "https://crm-sync.example.com/oauth/callback" in shown.replace("\u2060", "")  # reads as stored
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", wait_for(browser, "h3", "Inspect"))
    time.sleep(0.5)
    browser.save_screenshot(str(ARTIFACTS / "inspect-1280.png"))
    assert not cut_labels(browser), cut_labels(browser)
    actions = wait_for(browser, "h3", "Actions")
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", actions)
    time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "tokens-actions-1280.png"))

    # A tick reruns the list's fragment only: the page-level run count stays.
    before = full_runs(browser)
    grid = browser.find_element(By.CSS_SELECTOR, "[data-testid='stDataFrame']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", grid)
    time.sleep(0.5)
    size = grid.size
    ActionChains(browser).move_to_element_with_offset(grid, 18 - size["width"] // 2, 35 + 17 - size["height"] // 2
                                                      ).click().perform()
    wait_for(browser, "[data-testid='stText']", "Ticked: 1 token:")
    choose(browser, "Health", "Failing")  # and so does a filter
    wait_for(browser, "[data-testid='stMarkdownContainer']", "page 1 of")
    assert full_runs(browser) == before
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "tokens-1280.png"))
    click(browser, wait_for(browser, "button", "Delete all"))  # and so does opening a dialog
    wait_for(browser, "[role='dialog']", "environment")
    assert full_runs(browser) == before
    wait_for(browser, "[role='dialog'] button", "Cancel").click()
    time.sleep(1.5)

    # A reload is a new session: after sign-in the same view comes back, from the URL.
    url = browser.current_url
    signed_in_at(browser, url)
    wait_for(browser, "[data-testid='stDataFrame']")
    wait_for(browser, "[data-testid='stMarkdownContainer']", "page 1 of")
    time.sleep(1)
    assert "Failing" in wait_for(browser, "[data-testid='stSelectbox']", "Health").get_attribute("innerHTML")
    assert "User name" in wait_for(browser, "[data-testid='stSelectbox']", "Sort by").get_attribute("innerHTML")
    assert browser.current_url == url


def test_a_reload_a_new_tab_and_a_shared_link_stay_signed_in_until_sign_out(demo: str, browser: Any) -> None:
    """A real reload keeps the session (the signed cookie), and the view from the URL; a new tab
    at a link too; "Sign out" ends it: a reload then asks for the password again."""
    from selenium.webdriver.common.by import By

    sign_in_fresh(browser, demo)
    choose(browser, "Health", "Idle")
    wait_for(browser, "[data-testid='stMarkdownContainer']", "page 1 of")
    until(lambda: "health=idle" in browser.current_url, "the URL names the view")
    cookie = browser.get_cookie("zms_session")
    assert cookie and "demo" not in cookie["value"] and cookie["sameSite"] == "Strict", cookie
    url = browser.current_url
    browser.refresh()  # a real reload: a new Streamlit session
    wait_for(browser, "[data-testid='stDataFrame']")
    assert not browser.find_elements(By.CSS_SELECTOR, "input[type='password']")
    assert "Idle" in wait_for(browser, "[data-testid='stSelectbox']", "Health").get_attribute("innerHTML")
    assert browser.current_url == url
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "reload-keeps-the-session.png"))
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")  # a shared link, opened in a new tab of the same browser
    browser.get(url)
    wait_for(browser, "[data-testid='stDataFrame']")
    assert "Browser Test" in wait_for(browser, "[data-testid='stSidebar']", "Signed in as").text
    browser.close()
    browser.switch_to.window(first)
    click(browser, wait_for(browser, "[data-testid='stSidebar'] button", "Sign out"))
    wait_for(browser, "input[type='password']")
    browser.refresh()
    wait_for(browser, "input[type='password']")  # signed out for good: the reload asks again
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame']")


def test_ticks_off_the_view_are_named_with_their_health_and_need_the_typed_name(demo: str, browser: Any) -> None:
    """The measured case in a real browser: Health=Healthy and EU, Select all, then Health=Failing and
    any data center, "Delete ticked rows": the dialog names them as not in this view, with their
    health, and Delete stays off until the name is typed."""
    from selenium.webdriver.common.keys import Keys

    sign_in_fresh(browser, demo)
    choose(browser, "Health", "Healthy")
    choose(browser, "Data center", "EU")
    wait_for(browser, "[data-testid='stMarkdownContainer']", "page 1 of")
    click(browser, wait_for(browser, "button", "Select all"))
    ticked = wait_for(browser, "[data-testid='stText']", "Ticked: ").text
    count = int(ticked.split("Ticked: ")[1].split(" ")[0])
    choose(browser, "Health", "Failing")
    choose(browser, "Data center", "Any")
    wait_for(browser, "[data-testid='stMarkdownContainer']", "page 1 of")
    click(browser, wait_for(browser, "button", "Delete ticked rows"))
    text = steady(lambda: wait_for(browser, "[role='dialog']", "of them not in this view").text)
    # Each shows its health as it is now: an access token ticked healthy may have lapsed since (idle).
    marked = [line for line in text.splitlines() if line.endswith("← not in this view")]
    assert f"{count} of them not in this view" in text and len(marked) == min(count, 50), text
    assert all(" · 🟢 healthy  ←" in line or " · ⚪ idle  ←" in line for line in marked), text
    assert not steady(lambda: wait_for(browser, "[role='dialog'] button", "Delete").is_enabled())
    browser.save_screenshot(str(ARTIFACTS / "ticks-off-the-view.png"))
    name = steady(lambda: wait_for(browser, "[role='dialog'] [data-testid='stText']", "To confirm, type: ").text)
    steady(lambda: wait_for(browser, "[role='dialog'] input[aria-label^='Type ']").send_keys(
        name.split(": ")[1].strip(), Keys.ENTER))
    until(lambda: steady(lambda: wait_for(browser, "[role='dialog'] button", "Delete").is_enabled()),
          "Delete enabled by the name")
    wait_for(browser, "[role='dialog'] button", "Cancel").click()
    until(lambda: not dialogs(browser), "the dialog closes")
    click(browser, wait_for(browser, "button", "Clear ticks"))


def test_the_lifecycle_what_if_preview_shows_a_typed_policy(demo: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in_fresh(browser, demo)
    wait_for(browser, "[data-testid='stSidebar'] label", "Lifecycle").click()
    wait_for(browser, "[data-testid='stAlert']", "what-if preview")
    box = wait_for(browser, "[data-testid='stNumberInput']", "Idle for more than").find_element(By.CSS_SELECTOR, "input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("2", Keys.ENTER)
    said = wait_for(browser, "[data-testid='stMarkdownContainer']", "What if (revoke and delete tokens idle for more "
                                                                     "than 2 days)").text
    assert "to revoke and delete" in said and "Nothing applied" in said
    wait_for(browser, "[data-testid='stDataFrame']")
    time.sleep(1)  # the grid draws
    browser.save_screenshot(str(ARTIFACTS / "lifecycle-what-if.png"))
    assert not cut_labels(browser), cut_labels(browser)


@pytest.fixture(scope="module")
def accounts_dashboard(demo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second dashboard on the demo's database, with operator accounts: vera (viewer), ada (admin)."""
    folder = tmp_path_factory.mktemp("accounts")
    path = folder / "operators"
    for name, role in (("vera", "viewer"), ("ada", "admin")):
        subprocess.run([sys.executable, "-m", "mongo_store.cli", "add-operator", name, "--role", role, "--file",
                        str(path)], input=f"{name} has a long password\n", text=True, check=True, capture_output=True)
    uri = next(line.split("MongoDB: ")[1].split()[0] for line in TERMINAL.read_text().splitlines()
               if line.startswith("MongoDB: "))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_URI", "DASHBOARD_", "ZOHO_"))}
    env |= {"MONGODB_URI": uri, "ZOHO_MONGO_DATABASE": "zoho_demo", "DASHBOARD_OPERATORS_FILE": str(path)}
    process, url = start_dashboard(port, env), f"http://127.0.0.1:{port}"
    wait_started(process, url, 90)
    yield url
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)


def sign_in_as(browser: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url)
    forget_session(browser, url)
    browser.get(url)
    wait_for(browser, "input[type='password']")
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Account']").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys(f"{name} has a long password")
    wait_for(browser, "button", "Sign in").click()
    wait_for(browser, "[data-testid='stMetric']", "Tokens")
    wait_for(browser, "[data-testid='stSidebar'] label", "Tokens").click()
    wait_for(browser, "[data-testid='stDataFrame']")
    wait_for(browser, "button", "Delete all")


def test_a_viewer_sees_every_change_disabled_and_an_admin_may_delete_all(accounts_dashboard: str, browser: Any) -> None:
    sign_in_as(browser, accounts_dashboard, "vera")
    assert "Role: viewer" in wait_for(browser, "[data-testid='stSidebar']", "Role:").text
    for label in ("Check with Zoho", "Revoke at Zoho", "Delete token", "Delete all"):
        assert not wait_for(browser, "button", label).is_enabled(), label
    assert wait_for(browser, "button", "Export CSV").is_enabled()
    caption = wait_for(browser, "[data-testid='stCaptionContainer']", "Your role (viewer)").text
    assert "a viewer may not delete tokens" in caption
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", wait_for(browser, "h3", "Actions"))
    time.sleep(0.5)
    browser.save_screenshot(str(ARTIFACTS / "roles-viewer.png"))
    sign_in_as(browser, accounts_dashboard, "ada")
    assert "Role: admin" in wait_for(browser, "[data-testid='stSidebar']", "Role:").text
    for label in ("Check with Zoho", "Revoke at Zoho", "Delete token", "Delete all"):
        assert wait_for(browser, "button", label).is_enabled(), label


def test_a_stopped_database_is_said_and_the_page_comes_back_by_itself(demo: str, browser: Any) -> None:
    """mongod stopped (SIGSTOP) under an open Tokens page: one click that reads shows "the database
    is unreachable" with a countdown, after one timeout; resumed (SIGCONT), the grid comes back with
    nothing clicked. The times are printed (the closing note quotes them)."""
    import signal

    sign_in_fresh(browser, demo)
    pid = int((DEMO["data"] / "mongod.lock").read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        choose(browser, "Health", "Idle")  # a read: it meets the stopped server
        wait_for(browser, "[data-testid='stAlert']", "The database is unreachable", timeout=60)
        said = time.monotonic() - stopped
        countdown = wait_for(browser, "div.reconnecting", "Reconnecting: next try in").text
        assert "comes back by itself" in countdown
        browser.save_screenshot(str(ARTIFACTS / "outage-reconnecting.png"))
        assert not browser.find_elements("css selector", "[data-testid='stDataFrame']")
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(browser, "[data-testid='stDataFrame']", timeout=60)  # back, with no click
    back = time.monotonic() - resumed
    assert not [a for a in browser.find_elements("css selector", "[data-testid='stAlert']")
                if "unreachable" in a.text]
    browser.save_screenshot(str(ARTIFACTS / "outage-recovered.png"))
    print(f"\noutage: said after {said:.1f} s; back {back:.1f} s after mongod resumed")
    assert back < 20


def test_the_terminal_shows_no_stack_trace_and_no_deprecation_warning(demo: str, browser: object) -> None:
    """After every click the other tests made (paging, dialogs, ticks, filters): a clean terminal."""
    sign_in_fresh(browser, demo)
    for label in ("Last »", "‹ Prev", "Next ›", "« First"):
        button = wait_for(browser, "button", label)
        if button.is_enabled():
            click(browser, button)
            time.sleep(1.2)
    output = TERMINAL.read_text(errors="replace")
    assert "Traceback" not in output and "Exception" not in output, output[-3000:]
    assert "deprecat" not in output.lower(), output[-3000:]
