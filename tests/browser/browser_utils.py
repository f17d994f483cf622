"""Helpers for tests that drive the app: launch it in-process on a free localhost port, open
it in Debian's headless chromium with Playwright, and save screenshots under test-artifacts/.

Never downloads a browser (no `playwright install`): the CI script installs the Debian
package `chromium`; without it the browser tests skip with that reason.
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 1000}

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("QGOFT_PRELOAD", "0")  # tests load the base when they need it


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium; "
                    "the CI script installs it)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need the playwright Python package (pip install playwright)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_test_app(**settings):
    """A fresh app (its own run registry) with the environment's Settings overridden by `settings`."""
    from dataclasses import replace

    import app
    from ui.context import AppContext
    from ui.settings import Settings

    ctx = AppContext(settings=replace(Settings.from_env(), **settings))
    return app.build_app(ctx), ctx


@contextmanager
def launched(demo, port: Optional[int] = None) -> Iterator[str]:
    """Serve `demo` on 127.0.0.1 in this process; yields the base URL (ending in '/')."""
    import app

    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                            server_port=port or free_port(), **app.launch_kwargs())
    try:
        yield url
    finally:
        demo.close()


@contextmanager
def browser_page(viewport: Optional[dict] = None) -> Iterator["object"]:
    """A Playwright page in headless Debian chromium (downloads accepted)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=viewport or VIEWPORT, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def screenshot(page, name: str, full_page: bool = False, selector: Optional[str] = None) -> Path:
    """Save a PNG under test-artifacts/ (look at it!) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=full_page)
    return path


def wait_for_app(page, url: str, timeout_ms: int = 60_000) -> None:
    """Open `url` and wait until Gradio has rendered the app.

    (Not "networkidle": the page keeps a heartbeat connection open for as long as it lives.)
    """
    page.goto(url, timeout=timeout_ms)
    page.wait_for_selector("gradio-app .gradio-container", timeout=timeout_ms)
    page.wait_for_selector("#train-btn", state="visible", timeout=timeout_ms)


def choose(page, elem_id: str, option_text: str) -> None:
    """Pick an option of a gr.Dropdown by its visible text."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option_text).first.click()


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Tab")


def plot_svg(page, elem_id: str):
    """The drawn plotly chart of a gr.Plot (exists once plotly has rendered it)."""
    return page.locator(f"#{elem_id} .main-svg").first


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
