"""End-to-end: the status page ([13] parts 1 and 2), GET /status on the management port (and
GET / for a browser), in a real browser: Debian's chromium, headless, driven by selenium
through Debian's chromedriver (Service names it, so selenium-manager never runs and nothing
is downloaded). The page must load without a console error, show what /status.json says and
follow it as requests arrive, carry out the scale, set-default and unregister actions
through its own confirmation step, show names and messages that hold markup as text, and
ask for the management key when tokens are on.

chromium and chromium-driver come from scripts/install-deps.sh; without them these tests
fail, unless WICK_NO_BROWSER=1 says to skip the browser (the plain HTTP checks still run)."""
import base64
import hashlib
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import pack, request
from models import MLP, save_script

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NO_BROWSER = os.environ.get("WICK_NO_BROWSER") == "1"
ROW = json.dumps([[0.5] * 16])
MARKUP = "<img src=x onerror=alert(1)>"
MARKUP_URL = "<img src=x onerror=alert(2)>.mar"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """mlp.mar (mlp 1.0), mlp_v2.mar (mlp 2.0), and a file named with markup that is no archive."""
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt", version="2.0")
    (d / "mlp.mar").rename(d / "mlp_v2.mar")
    pack(d, "mlp", src / "mlp.pt")
    (d / MARKUP_URL).write_bytes(b"not a model archive")  # its registration fails
    return d


# ---- the page over plain HTTP: headers, policy, who gets it ----

def inline(page, tag):
    """The text of each <tag>...</tag> of page (bytes), as the policy hashes it."""
    return re.findall(rb"<" + tag + rb">(.*?)</" + tag + rb">", page, re.S)


def sha256_source(text):
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode() + "'"


def check_page(r):
    assert r.status == 200, r
    h = r.headers
    assert h["Content-Type"] == "text/html; charset=utf-8", h
    assert h["Cache-Control"] == "no-store"
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    assert not any(k.lower().startswith("access-control-") for k in h), h  # no CORS
    assert "Set-Cookie" not in h
    csp = dict(d.strip().split(" ", 1) for d in h["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'", csp
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'", csp
    # exactly the page's own inline script and style may run and apply
    scripts, styles = inline(r.body, b"script"), inline(r.body, b"style")
    assert len(scripts) == 1 and len(styles) == 1
    assert csp["script-src"] == sha256_source(scripts[0]), csp
    assert csp["style-src"] == sha256_source(styles[0]), csp
    # static: no data of the server in it, and nothing loaded from elsewhere
    assert b"mlp" not in r.body
    assert re.findall(rb'(?:src|href|action)\s*=\s*"([^"]*)"', r.body) == [b"data:,"]
    assert b"innerHTML" not in r.body and b"insertAdjacentHTML" not in r.body
    assert b"document.write" not in r.body and b"eval(" not in r.body
    return r.body


def test_page_is_static_public_and_locked_down(serve, store, tmp_path):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar",
              "--disable_token_authorization", "false", cwd=tmp_path)
    key = json.loads((tmp_path / "key_file.json").read_text())["management"]["key"]
    assert s.mgmt("GET", "/status.json").status == 401  # the data needs the key...
    page = check_page(s.mgmt("GET", "/status"))  # ...the page does not
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    r = s.mgmt("GET", "/", headers=browser)
    assert check_page(r) == page and r.headers["Vary"] == "Accept"
    # anything that does not ask for HTML gets the API description, as OPTIONS / answers
    for accept in (None, "*/*", "application/json", "text/html;q=0", "text/htmlx"):
        r = s.mgmt("GET", "/", headers={"Accept": accept} if accept else {})
        assert r.status == 200 and r.headers["Content-Type"] == "application/json", (accept, r)
        assert r.json()["info"]["title"] == "wick management API" and r.headers["Vary"] == "Accept"
    assert s.mgmt("GET", "/", headers={"Accept": "TEXT/HTML; q=0.5"}).body == page
    # the page's route describes itself, and the management port only has it
    doc = s.mgmt("OPTIONS", "/").json()
    assert set(doc["paths"]["/status"]["get"]["responses"]["200"]["content"]) == {"text/html"}
    assert set(doc["paths"]["/"]["get"]["responses"]["200"]["content"]) == {"text/html", "application/json"}
    assert doc["paths"]["/status"]["get"]["security"] == []
    inference_key = json.loads((tmp_path / "key_file.json").read_text())["inference"]["key"]
    assert s.infer("GET", "/status", headers={"Authorization": "Bearer " + inference_key}).status == 404
    assert request(s.ports["metrics"], "GET", "/status").status == 404
    assert s.mgmt("POST", "/status").status == 405 and s.mgmt("DELETE", "/").status == 405
    # the page's data, with the key
    assert s.mgmt("GET", "/status.json", headers={"Authorization": "Bearer " + key}).status == 200


# ---- the page in chromium ----

@pytest.fixture
def browser(tmp_path):
    """A headless chromium (Debian's) with its console log kept; quit at teardown."""
    if NO_BROWSER:
        pytest.skip("WICK_NO_BROWSER=1: the status page's browser tests are skipped")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    assert not missing, (f"{missing} missing: scripts/install-deps.sh installs Debian's chromium and "
                         "chromium-driver (or set WICK_NO_BROWSER=1 to skip the browser tests)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-component-update",
              "--disable-default-apps", "--disable-sync", "--metrics-recording-only",
              f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=opts)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, pred, what, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - elements come and go while the page renders
            last = e
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"in {timeout} s the page did not show {what} (last: {last!r})\n"
                         + text_of(driver)[:3000])


def text_of(driver):
    return driver.execute_script("return document.body.innerText")


def severe(driver):
    """The console's SEVERE entries since the last call (a failed load, a script error, a
    policy violation)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def no_alert(driver):
    from selenium.common.exceptions import NoAlertPresentException
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return True
    raise AssertionError(f"an alert fired: {text!r}")


def card(driver, name, version):
    """The model card of name and version (found by its data attributes, so any name works)."""
    return driver.execute_script(
        "for (const c of document.querySelectorAll('article.model'))"
        "  if (c.dataset.model === arguments[0] && c.dataset.version === arguments[1]) return c;"
        "return null;", name, version)


def field(driver, name, version, key):
    c = card(driver, name, version)
    return None if c is None else c.find_element("css selector", f'[data-field="{key}"]').text


def lowest_point(driver, name, version, chart):
    """The smallest y drawn in one chart of a card (the top of its highest value), or None."""
    return driver.execute_script(
        "const c = arguments[0].querySelector('[data-chart=\"' + arguments[1] + '\"]');"
        "let low = null;"
        "for (const p of c.querySelectorAll('polyline'))"
        "  for (const xy of p.getAttribute('points').split(' ')) {"
        "    const y = Number(xy.split(',')[1]); if (low === null || y < low) low = y; }"
        "for (const p of c.querySelectorAll('circle')) {"
        "  const y = Number(p.getAttribute('cy')); if (low === null || y < low) low = y; }"
        "return low;", card(driver, name, version), chart)


def click(driver, name, version, action):
    c = card(driver, name, version)
    c.find_element("css selector", f'[data-action="{action}"]').click()


def confirm(driver, name, version, question_has):
    """Checks the page's own confirmation step, confirms, and returns the server's reply as
    the page's log of actions shows it (the card itself may be gone: unregister)."""
    c = card(driver, name, version)
    box = c.find_element("css selector", ".confirm")
    assert box.is_displayed()
    assert question_has in box.find_element("css selector", ".question").text, box.text
    before = driver.execute_script("return document.getElementById('log').rows.length")
    box.find_element("css selector", '[data-action="confirm"]').click()
    wait(driver, lambda: driver.execute_script("return document.getElementById('log').rows.length") > before,
         "the server's reply")
    return driver.execute_script("return document.getElementById('log').rows[0].cells[2].textContent")


def status_json(s, headers=None):
    r = s.mgmt("GET", "/status.json", headers=headers or {})
    assert r.status == 200, r
    return r.json()


def model_of(st, name, version):
    found = [m for m in st["models"] if m["name"] == name and m["version"] == version]
    return found[0] if found else None


def test_page_follows_the_server_and_acts_on_it(serve, store, browser):
    s = serve("--model-store", store, "--enable_model_api", "true", "--status_interval_ms", "500",
              "--default_workers_per_model", "1")
    for q in ("url=mlp.mar&initial_workers=1&synchronous=true",
              "url=mlp_v2.mar&initial_workers=1&synchronous=true",
              f"url=mlp.mar&model_name={quote(MARKUP)}&initial_workers=1&synchronous=true"):
        r = s.mgmt("POST", "/models?" + q)
        assert r.status == 200, r
    # a failed registration whose url holds markup lands in the recent errors
    assert s.mgmt("POST", "/models?url=" + quote(MARKUP_URL)).status == 400

    browser.get(f"http://127.0.0.1:{s.ports['management']}/status")
    wait(browser, lambda: field(browser, "mlp", "1.0", "requests") == "0", "mlp 1.0 with 0 requests")
    assert card(browser, "mlp", "2.0") is not None
    assert field(browser, "mlp", "1.0", "runtime") == "native"
    assert field(browser, "mlp", "1.0", "default") == "default"
    assert field(browser, "mlp", "1.0", "state") == "ready"
    c = card(browser, "mlp", "1.0")
    assert "handler tensor" in c.find_element("css selector", ".meta").text
    assert len(c.find_elements("css selector", "tr[data-worker]")) == 1
    assert lowest_point(browser, "mlp", "1.0", "rps") >= 49  # no traffic: a flat line at 0

    # traffic moves the figures and the charts
    for _ in range(40):
        assert s.infer("POST", "/predictions/mlp", ROW).status == 200
    assert s.infer("POST", "/predictions/mlp", json.dumps([[1.0, 2.0]])).status == 400
    wait(browser, lambda: field(browser, "mlp", "1.0", "requests") == "41", "41 requests")
    wait(browser, lambda: lowest_point(browser, "mlp", "1.0", "rps") < 40, "requests/s above 0")
    wait(browser, lambda: re.fullmatch(r"p50 [0-9.]+ ms", field(browser, "mlp", "1.0", "now-p50_ms")),
         "a p50 latency")
    assert re.fullmatch(r"p99 [0-9.]+ ms", field(browser, "mlp", "1.0", "now-p99_ms"))
    assert lowest_point(browser, "mlp", "1.0", "p50_ms") < 50
    statuses = card(browser, "mlp", "1.0").find_element("css selector", '[data-field="answers_by_status"]')
    wait(browser, lambda: "200: 40" in statuses.text and "400: 1" in statuses.text, "answers by status")
    errors = browser.find_element("id", "errors")
    wait(browser, lambda: "[1,2]" in errors.text, "the 400 in the recent errors")

    # scale through the page: its own confirmation, then the server's reply
    c = card(browser, "mlp", "1.0")
    for which, value in (("min", "3"), ("max", "3")):
        box = c.find_element("css selector", f'[data-input="{which}"]')
        box.clear()
        box.send_keys(value)
    click(browser, "mlp", "1.0", "scale")
    reply = confirm(browser, "mlp", "1.0", "Scale mlp 1.0 to min 3, max 3 workers?")
    assert reply.startswith("200 Workers scaled to 3"), reply
    m = model_of(status_json(s), "mlp", "1.0")
    assert (m["workers_live"], m["workers_min"], m["workers_max"]) == (3, 3, 3), m
    wait(browser, lambda: field(browser, "mlp", "1.0", "workers_live") == "3", "3 live workers")
    wait(browser, lambda: len(card(browser, "mlp", "1.0").find_elements("css selector", "tr[data-worker]")) == 3,
         "3 rows of workers")
    # Cancel sends nothing
    click(browser, "mlp", "1.0", "unregister")
    card(browser, "mlp", "1.0").find_element("css selector", '[data-action="cancel"]').click()
    assert model_of(status_json(s), "mlp", "1.0") is not None

    # set-default: 2.0 becomes the default
    click(browser, "mlp", "2.0", "set-default")
    reply = confirm(browser, "mlp", "2.0", "Make version 2.0 the default of mlp?")
    assert reply.startswith("200 "), reply
    st = status_json(s)
    assert model_of(st, "mlp", "2.0")["default"] and not model_of(st, "mlp", "1.0")["default"]
    wait(browser, lambda: field(browser, "mlp", "2.0", "default") == "default", "2.0 as the default")

    # markup is text: the name, the failed url in the errors, no element made, no alert
    c = wait(browser, lambda: card(browser, MARKUP, "1.0"), "the model named with markup")
    assert c.find_element("css selector", ".name").text == MARKUP
    wait(browser, lambda: MARKUP_URL in errors.text, "the failed url in the recent errors")
    assert MARKUP_URL in browser.find_element("id", "loads").text  # and in the failed loads
    assert browser.execute_script("return document.images.length") == 0
    assert browser.execute_script("return document.querySelectorAll('img, iframe, object, embed').length") == 0
    no_alert(browser)

    # unregister the oddly named one through the page (its name travels URL-encoded)
    click(browser, MARKUP, "1.0", "unregister")
    reply = confirm(browser, MARKUP, "1.0", f"Unregister {MARKUP} 1.0?")
    assert reply.startswith("200 "), reply
    assert model_of(status_json(s), MARKUP, "1.0") is None
    wait(browser, lambda: card(browser, MARKUP, "1.0") is None, "the card gone")
    log = browser.find_element("id", "log").text
    assert f"DELETE /models/{MARKUP}/1.0" in log and "PUT /models/mlp/1.0?min_worker=3" in log, log
    no_alert(browser)

    # nothing went wrong in the browser: no script error, no refused load, no policy violation
    assert severe(browser) == []
    # and the key-less page never stored anything
    assert browser.execute_script("return [document.cookie, localStorage.length, sessionStorage.length]") == \
        ["", 0, 0]


def test_page_asks_for_the_management_key(serve, store, browser, tmp_path):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--status_interval_ms", "500",
              "--disable_token_authorization", "false", cwd=tmp_path)
    keys = json.loads((tmp_path / "key_file.json").read_text())
    browser.get(f"http://127.0.0.1:{s.ports['management']}/")  # a browser's GET / is the page
    form = wait(browser, lambda: (lambda a: a if a.is_displayed() else None)(browser.find_element("id", "auth")),
                "the key form")
    assert "management key" in form.text
    assert not browser.find_element("id", "content").is_displayed()
    assert card(browser, "mlp", "1.0") is None

    # the inference key is not the management key: refused, still asking
    box = browser.find_element("id", "auth-key")
    box.send_keys(keys["inference"]["key"])
    browser.find_element("id", "auth-submit").click()
    wait(browser, lambda: "refused" in browser.find_element("id", "auth-why").text, "the key refused")
    assert card(browser, "mlp", "1.0") is None

    box.send_keys(keys["management"]["key"])
    browser.find_element("id", "auth-submit").click()
    wait(browser, lambda: field(browser, "mlp", "1.0", "state") == "ready", "mlp with the key")
    assert not browser.find_element("id", "auth").is_displayed()
    # the page keeps polling with the key: new traffic shows up
    assert s.infer("POST", "/predictions/mlp", ROW,
                   headers={"Authorization": "Bearer " + keys["inference"]["key"]}).status == 200
    wait(browser, lambda: field(browser, "mlp", "1.0", "requests") == "1", "1 request")
    # the model API is off: no action is offered
    c = card(browser, "mlp", "1.0")
    assert not c.find_element("css selector", ".actions").is_displayed()
    assert "model API is off" in browser.find_element("id", "model-api-note").text
    # the key stays in the page's memory: no cookie, no storage, not in the URL
    assert browser.execute_script("return [document.cookie, localStorage.length, sessionStorage.length]") == \
        ["", 0, 0]
    assert keys["management"]["key"] not in browser.current_url
    # forgetting it asks again
    browser.find_element("id", "forget-key").click()
    assert browser.find_element("id", "auth").is_displayed()

    # the console: only the two refusals of /status.json (no key, the wrong key)
    bad = severe(browser)
    assert len(bad) == 2 and all("/status.json" in e["message"] and "401" in e["message"] for e in bad), bad
    no_alert(browser)
