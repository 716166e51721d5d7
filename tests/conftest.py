"""Shared test settings: one torch thread, so that a busy 2-core machine (CI) gives stable timings.

Browser tests (marked `browser`) drive Debian's chromium (/usr/bin/chromium; `make test` installs it)
through Playwright, which cannot download its own browser here. Fixtures:

    chromium_browser   session: one headless chromium, launched with CHROMIUM_LAUNCH_ARGS
    browser_page       a fresh page (its own context) in that browser, closed after the test
    browser_log        what that page did: console errors, page errors (uncaught exceptions), request URLs

    @pytest.mark.browser
    def test_x(browser_page, browser_log):
        browser_page.goto(path.as_uri())
        assert browser_log.console_errors == [] and browser_log.page_errors == []

pytest-playwright's own fixtures (page, browser, ...) launch the same chromium: browser_type_launch_args
is overridden below, and everything shares pytest-playwright's one `playwright` session.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # git-ignored: screenshots for people to look at


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    """Launch options for chromium (also used by pytest-playwright's own browser/page fixtures)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"browser tests: expected Debian's chromium at {CHROMIUM}, got no such file "
                    "(install it: apt-get install -y chromium; `make test` does)", pytrace=False)
    return {"executable_path": str(CHROMIUM), "headless": True, "args": list(CHROMIUM_ARGS)}


@pytest.fixture(scope="session")
def chromium_browser(playwright, browser_type_launch_args):
    """One headless chromium for the whole session (a Playwright Browser)."""
    browser = playwright.chromium.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@dataclasses.dataclass
class BrowserLog:
    """What a browser_page did: console messages of type error, uncaught page errors, requested URLs."""

    console_errors: list[str] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)
    requests: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def browser_page(chromium_browser, browser_log):
    """A fresh Playwright Page (own context, 1200 x 900 viewport) that records into browser_log."""
    context = chromium_browser.new_context(viewport={"width": 1200, "height": 900}, service_workers="block")
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and browser_log.console_errors.append(f"{m.text} ({m.location})"))
    page.on("pageerror", lambda e: browser_log.page_errors.append(str(e)))
    page.on("request", lambda r: browser_log.requests.append(r.url))
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/ under the repository root (git-ignored), created on first use."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
