"""The dashboard in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium) loads /dashboard from a live server with real workers,
the plan table and charts render, and they update after requests are sent. Saves the
screenshot docs/img/dashboard.png."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_server import LiveServer  # noqa: E402

from argus.api import create_app  # noqa: E402
from argus.config import parse_config  # noqa: E402
from argus.defaults import load_config  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard.png"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no Chromium here: `apt-get install chromium chromium-driver` (as root; `make test` "
    "does it where apt-get works)",
)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """The default server on one worker; every image audited, l-5 miscalibrated by +0.3 so the
    audit section has something to show."""
    data = load_config(None).model_dump()
    data["server"].update(workers=1, threads_per_worker=1)
    data["audit"].update(share=1.0, budget_per_min=1000, min_samples=3, alarm_after_s=1.0,
                         offsets={"l-5": 0.3})
    running = LiveServer(create_app(parse_config(data))).wait_ready()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1500", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _wait(condition, timeout_s: float = 30.0, what: str = "") -> object:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _count(driver, css: str) -> int:  # noqa: ANN001 - a selenium WebDriver
    return len(driver.find_elements("css selector", css))


def test_dashboard_renders_and_updates_after_requests(server: LiveServer, browser) -> None:  # noqa: ANN001
    """Plan table and charts render from the live state; after requests, the recent-request
    table, thumbnails, arrival chart and audit table fill in and the page keeps polling."""
    browser.get(f"{server.url}/dashboard")
    _wait(lambda: int(browser.find_element("tag name", "body").get_attribute("data-updates"))
          >= 1, what="the first state poll")
    _wait(lambda: _count(browser, "#plan-table tbody tr[data-level]") >= 1, what="a plan row")
    assert _count(browser, "#chart-workers path.series") >= 1
    assert "trigger" in browser.find_element("id", "plan-trigger").text
    assert _count(browser, "#recent-table tbody tr") == 0
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for seed in range(8):
            response = client.post("/v1/images/generations",
                                   json={"prompt": "a red circle above a blue square",
                                         "seed": seed})
            assert response.status_code == 200
    _wait(lambda: _count(browser, "#recent-table tbody tr") == 8, what="8 recent requests")
    _wait(lambda: _count(browser, "#thumbs img") == 6, what="6 thumbnails")
    _wait(lambda: _count(browser, "#audit-table tbody tr") >= 1, what="an audit row")
    _wait(lambda: _count(browser, "#chart-share rect.bar") >= 1, what="level share bars")
    arrivals = browser.find_element("css selector", '#chart-arrivals path[data-name="arrivals"]')
    assert arrivals.get_attribute("d").count("L") > 2
    polls = int(browser.find_element("tag name", "body").get_attribute("data-updates"))
    _wait(lambda: int(browser.find_element("tag name", "body").get_attribute("data-updates"))
          > polls, what="another poll")
    time.sleep(1.5)  # one more poll, so the screenshot shows the audit of the last image
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.find_element("tag name", "body").screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
