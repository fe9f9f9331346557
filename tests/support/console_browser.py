"""Headless Chromium (Debian's /usr/bin/chromium and /usr/bin/chromedriver) driven by Selenium,
and axe-core (npm, pinned, installed under build/node-axe/ on first use) for the automated
accessibility check. The machine's network is closed: Chromium's background connections are
switched off and a fresh profile is used per browser."""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE_VERSION = "4.10.3"
AXE_PREFIX = os.path.join(REPO, "build", "node-axe")
AXE_JS = os.path.join(AXE_PREFIX, "node_modules", "axe-core", "axe.min.js")
SHOTS = os.path.join(REPO, "build", "screenshots")
# WCAG 2.0/2.1 A and AA rules: labels, names, contrast, landmarks, lang, headings, ARIA use
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def chromium_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip("%s missing: `make services` installs Debian's chromium and chromium-driver" % ", ".join(missing))


def start_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rating-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--user-data-dir=" + profile,
        "--window-size=1280,1000",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.profile_dir = profile
    return driver


def stop_browser(driver):
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)


def axe_source():
    """axe.min.js, installed with npm once (pinned) like the other node packages the tests use;
    under a lock, so that test processes side by side (pytest-xdist) install it once."""
    os.makedirs(AXE_PREFIX, exist_ok=True)
    with open(AXE_PREFIX + ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        return _install_axe()


def _install_axe():
    marker = os.path.join(AXE_PREFIX, "node_modules", "axe-core", "package.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f).get("version") == AXE_VERSION and os.path.exists(AXE_JS):
                with open(AXE_JS, encoding="utf-8") as f:
                    return f.read()
    if not shutil.which("npm"):
        pytest.skip("npm not found: the accessibility check needs axe-core from npm")
    os.makedirs(AXE_PREFIX, exist_ok=True)
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", AXE_PREFIX, "axe-core@%s" % AXE_VERSION],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 or not os.path.exists(AXE_JS):
        pytest.fail("npm install axe-core@%s failed: %s" % (AXE_VERSION, proc.stderr[-2000:]))
    with open(AXE_JS, encoding="utf-8") as f:
        return f.read()


def axe_violations(driver, source):
    """The axe-core violations of the page as [(rule id, help, [targets])]."""
    driver.execute_script(source)
    found = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: %s}, resultTypes: ['violations']})"
        ".then(function (r) { done(r.violations.map(function (v) {"
        "  return [v.id, v.help, v.nodes.map(function (n) { return n.target.join(' '); })]; })); })"
        ".catch(function (e) { done([['axe-error', String(e), []]]); });" % json.dumps(AXE_TAGS)
    )
    return [tuple(v) for v in found]


def shot(driver, name):
    """Save a full-page screenshot under build/screenshots/ (a test artefact); returns its path."""
    os.makedirs(SHOTS, exist_ok=True)
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 4000)")
    driver.set_window_size(1280, max(700, height + 20))
    path = os.path.join(SHOTS, name + ".png")
    driver.save_screenshot(path)
    driver.set_window_size(1280, 1000)
    return path


def navigating(driver, action, timeout=10):
    """Run action() (a key press or click that loads a page) and wait for the new page."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__ratingOld = true")
    action()
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return !window.__ratingOld && document.readyState === 'complete'")
    )
    return driver


def press(driver, key, navigates=True):
    """Type `key` on the page (not into a field), as a person at the keyboard would."""

    def send():
        driver.find_element("tag name", "body").send_keys(key)

    return navigating(driver, send) if navigates else send()


def sign_in(driver, base_url, username, password):
    """Sign `username` in on the console at base_url through its login form (cookies cleared
    first: one browser serves a whole module)."""
    driver.delete_all_cookies()
    driver.get(base_url + "/login")
    driver.find_element("id", "username").send_keys(username)
    navigating(driver, lambda: driver.find_element("id", "password").send_keys(password + "\n"))
    return driver


def rating_report_json(db_url, *args):
    """`rating report --format json --lang en` as a user runs it (a subprocess), parsed."""
    out = subprocess.run(
        [sys.executable, "-m", "rating", "report", "--db", db_url, "--format", "json", "--lang", "en", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
