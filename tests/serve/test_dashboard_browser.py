"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, selenium).

Screenshots (desktop and phone widths) are saved under $SERVE_SCREENSHOTS, default
``<pytest tmp>/screenshots`` (CI: .ci/run sets it to ci-output/screenshots).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from servehelpers import TOKEN, Served

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium/chromium-driver are not installed (apt-get install; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


RESET = (
    'document.querySelector(\'#breakers tr[data-breaker="payments"]'
    ' button[data-action="reset"]\').click()'
)


def wait(predicate, what: str, bound: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound  # generous: detects a hang only
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_in_a_real_browser(served: Served, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The page loads with no console error; a breaker tripped from the CLI shows open within
    one refresh; reset without the token is refused and with it closes the breaker; a failing
    check turns the overall status CRITICAL (red) and /healthz 503; the overdue job is listed
    first in the jobs table; a check and a job silenced with `reliactl silence add` carry a
    "silenced by ... until ...: REASON" marker in words; the queue check's sparkline is drawn
    from /api/history's times. Screenshots are saved."""
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("SERVE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    served.cli("run", "--name", "nightly-backup", "--", "true")
    for target in ("perf", "weekly"):
        silence = ("silence", "add", target, "--for", "2h", "--reason", "swapping the disk")
        assert served.cli(*silence).returncode == 0

    def queue_points() -> bool:  # the page reads the history once a minute: two points first
        _status, doc = served.json("/api/history?since=24h&max_points=120")
        queue = [c for c in doc.get("checks", []) if c.get("name") == "queue"]
        return bool(queue) and len(queue[0].get("aggregates", []) + queue[0]["points"]) >= 2

    wait(queue_points, "two points of the queue check's history")
    browser.get(served.base + "/?refresh=1000")
    overall = browser.find_element(By.ID, "overall")
    wait(lambda: browser.find_element(By.ID, "overall").text == "OK", "the status OK")
    wait(lambda: "queue" in browser.find_element(By.ID, "checks").text, "the queue check")
    # The sparkline reads /api/history's `at_epoch` (version 2; `t` before): drawn in the box.
    spark = (
        "const p = document.querySelector('#checks [data-check=\"queue\"] polyline.line');"
        " return p ? p.getAttribute('points') : null;"
    )
    drawn = wait(
        lambda: (p := browser.execute_script(spark)) and len(p.split()) >= 2 and p, "a sparkline"
    )
    assert "NaN" not in drawn, drawn
    assert all(0 <= float(xy.split(",")[0]) <= 200.5 for xy in drawn.split()), drawn
    note = "const n = document.querySelector(arguments[0]); return n ? n.textContent : null;"
    for where in ('#checks [data-check="perf"] .note', '#jobs tr[data-job="weekly"] .note'):
        text = wait(lambda w=where: browser.execute_script(note, w), f"the marker at {where}")
        assert text.startswith("silenced by ") and " until " in text, text
        assert text.endswith(": swapping the disk"), text
    assert browser.execute_script(note, '#checks [data-check="queue"] .note') is None
    browser.save_screenshot(str(shots / "desktop-silenced.png"))
    # The recent run's peak RSS and CPU, as `reliactl runs` writes them.
    from reliactl.units import format_seconds_short, format_size_short

    recorded = served.json("/api/runs")[1]["runs"][0]
    cells = (
        "return [...document.querySelectorAll('#runs tbody tr:first-child td')]"
        ".map((td) => td.textContent);"
    )
    shown = wait(lambda: (c := browser.execute_script(cells)) and len(c) == 7 and c, "run cells")
    assert shown[:1] + shown[5:] == [
        "nightly-backup",
        format_size_short(recorded["peak_rss"]),
        format_seconds_short(recorded["cpu_time"]),
    ]
    assert served.cli("breaker", "trip", "payments").returncode == 0
    row = '#breakers tr[data-breaker="payments"] td:nth-child(2)'
    wait(lambda: browser.find_element(By.CSS_SELECTOR, row).text == "open", "open shown", 5)
    # Reset without the token: refused, still open.
    browser.execute_script(RESET)  # found and clicked in one step: the table is rebuilt often
    wait(lambda: "refused" in browser.find_element(By.ID, "action").text, "a refusal")
    assert served.json("/api/breakers")[1]["open"] == ["payments"]
    browser.save_screenshot(str(shots / "desktop-breaker-open.png"))
    token = browser.find_element(By.ID, "token")
    token.send_keys(TOKEN)
    browser.find_element(By.TAG_NAME, "h1").click()  # change event: kept in sessionStorage
    browser.execute_script(RESET)  # found and clicked in one step: the table is rebuilt often
    wait(lambda: browser.find_element(By.CSS_SELECTOR, row).text == "closed", "closed shown")
    assert served.json("/api/breakers")[1]["open"] == []
    # Read in one script: the table is rebuilt on every refresh (no stale element).
    first_job = (
        "const r = document.querySelector('#jobs tbody tr');"
        " return r ? [r.dataset.job, r.textContent] : null;"
    )
    first = wait(
        lambda: (found := browser.execute_script(first_job)) and "overdue" in found[1] and found,
        "the overdue job listed first",
    )
    assert first[0] == "nightly-report"
    served.flag.touch()
    wait(lambda: overall.text == "CRITICAL", "the overall status CRITICAL")
    overall = browser.find_element(By.ID, "overall")
    assert "CRITICAL" in overall.get_attribute("class")
    color = overall.value_of_css_property("color")
    red, green = (int(x) for x in color[color.index("(") + 1 :].split(",")[:2])
    assert red > 150 and green < 100, color
    assert served.get("/healthz")[0] == 503
    browser.save_screenshot(str(shots / "desktop-critical.png"))
    browser.set_window_size(390, 844)
    time.sleep(1.5)
    browser.save_screenshot(str(shots / "phone-critical.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, "the page must fit a phone's width"
    errors = [
        e
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "/reset - " not in e["message"]  # the refusal we caused
    ]
    assert errors == [], errors


def test_refresh_has_a_floor(served: Served, browser) -> None:  # type: ignore[no-untyped-def]
    """?refresh=MS is kept between 1 s and an hour, anything not a number is the 2 s
    default; /?refresh=0 (1,554 requests in 12 s from one tab before) polls /api/health
    about once a second, one poll at a time."""
    browser.get(served.base + "/?refresh=0")
    wait(lambda: browser.find_element("id", "overall").text == "OK", "the status OK")
    clamp = "return arguments[0].map((s) => refreshMs(s));"
    asked = ["?refresh=0", "?refresh=-5", "?refresh=abc", "?refresh=", "", "?refresh=1e12"]
    asked += ["?refresh=999", "?refresh=1500", "?refresh=Infinity"]
    got = browser.execute_script(clamp, asked)
    assert got == [1000, 1000, 2000, 2000, 2000, 3600000, 1000, 1500, 2000], got
    time.sleep(4)  # a rate, not a duration: about 5 polls at the floor, hundreds without it
    count = (
        "return performance.getEntriesByType('resource')"
        ".filter((e) => e.name.includes('/api/health')).length;"
    )
    polls = browser.execute_script(count)
    assert 1 <= polls <= 10, polls
