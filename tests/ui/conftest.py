"""The browser the end-to-end UI checks share: headless Chromium (Playwright), its pages, where screenshots go.

Used by ``test_browser.py`` (notebooks in JupyterLab) and
``test_report_browser.py`` (the HTML report from disk); two modules, so that
the end-to-end part's workers run them side by side. Each module launches
its own browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(os.environ.get("WORKBENCH_REPO") or Path(__file__).resolve().parents[2])


# -- the browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install 'playwright>=1.40,<2' "
                    "(or set WORKBENCH_SKIP_BROWSER=1 to skip them)", pytrace=False)
    exe = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).is_file():
        pytest.fail(f"Chromium not found at {exe}: install it with `apt-get install -y chromium` "
                    "(or point WORKBENCH_CHROMIUM at a Chromium binary; WORKBENCH_SKIP_BROWSER=1 skips "
                    "these tests)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def _screenshot_dir() -> Path:
    d = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or REPO / "data" / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def shots():
    return _screenshot_dir()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.shots = _screenshot_dir()  # where a failed wait leaves its screenshot
    pg.problems = []  # uncaught page errors and console errors, for failure messages
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
    try:
        yield pg
    finally:
        context.close()
