"""The HTML report in a real browser: headless Chromium (Playwright), opened from disk, and printed.

``python -m workbench report --quick`` is run (as ``make report QUICK=1``
does) and its HTML opened from disk with the network blocked: every figure
must load (``naturalWidth > 0``), every widget cell shows its snapshot, and
printed to A4 nothing runs past the page. Needs what ``test_browser.py``
needs (Playwright and Debian's ``chromium``; ``WORKBENCH_SKIP_BROWSER=1``
skips), plus ``pdftoppm`` (poppler-utils).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow(100),  # about 100 s: started first
    pytest.mark.skipif(os.environ.get("WORKBENCH_SKIP_BROWSER") == "1",
                       reason="WORKBENCH_SKIP_BROWSER=1"),
]

REPO = Path(os.environ.get("WORKBENCH_REPO") or Path(__file__).resolve().parents[2])


# -- the HTML report ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_report():
    """`python -m workbench report --quick` (what `make report QUICK=1` runs): the HTML file's path.
    A successful run prints only where it wrote and how long each step took: nothing on stderr (no
    kernel warnings, no KeyboardInterrupt from a kernel shutting down)."""
    r = subprocess.run([sys.executable, "-m", "workbench", "report", "--quick", "--quiet"], cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "", f"a successful report printed on stderr:\n{r.stderr[-2000:]}"
    for line in r.stdout.splitlines():
        assert re.fullmatch(r"wrote \S+|  [a-z ]+: \d+\.\d s", line), f"unexpected output line: {line!r}"
    html_path = Path(r.stdout.split("wrote ")[-1].splitlines()[0].strip())
    assert html_path.name == "report_quick.html" and html_path.is_file(), r.stdout
    return html_path


def test_report_html_shows_every_figure_offline(browser, shots, quick_report):
    """The report opened from disk in Chromium with every network request refused: each figure and
    notebook image loads, and every widget cell shows its static snapshot."""
    html_path = quick_report
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, offline=True)
    requests = []
    context.route(re.compile(r"^(https?|wss?)://"), lambda route: (requests.append(route.request.url), route.abort()))
    pg = context.new_page()
    try:
        pg.goto(html_path.as_uri())
        pg.wait_for_load_state("load")
        images = pg.evaluate("""() => Array.from(document.images, i => ({alt: i.alt, complete: i.complete,
                                                                      w: i.naturalWidth, h: i.naturalHeight}))""")
        figures = [i for i in images if i["alt"].startswith("fig")]
        from workbench.figures.job import FIGURES

        assert sorted(i["alt"] for i in figures) == sorted(f"{f.name}_quick" for f in FIGURES)
        broken = [i for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
        assert not broken, f"images that did not load: {broken}"
        assert len(images) > len(figures), "the executed notebooks' figures are missing"
        assert requests == [], f"the report fetched from the network: {requests}"
        text = pg.inner_text("body")
        assert "Provenance" in text and "quick" in text and "papermill" in text
        # one static snapshot per widget cell: 02's viewer, 06's explorer (with its plot) and viewer, 07's
        snaps = pg.locator(".wb-snap")
        assert snaps.count() == 4, snaps.count()
        assert pg.locator("#nb-06_explorer .wb-snap img[alt=plot]").count() == 1
        # the page is no wider than the window: wide tables scroll inside their own box
        assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        pg.screenshot(path=str(shots / "report-top.png"))
        pg.locator("#fig5_tradeoff_quick").scroll_into_view_if_needed()
        pg.screenshot(path=str(shots / "report-fig5.png"))
        pg.locator("#t-drops_vs_cpus_quick").scroll_into_view_if_needed()
        pg.screenshot(path=str(shots / "report-table.png"))
    finally:
        context.close()


# A4 less the report's @page margins (12 mm each side), in CSS pixels (96 per inch)
_A4_CONTENT_PX = int((210 - 24) / 25.4 * 96)


def test_report_prints_to_a4_with_nothing_cut(browser, shots, quick_report):
    """Printed to PDF by Chromium (page.pdf, A4): laid out at the printed width no element runs past
    the page's content box, and on every page, rendered back to an image with pdftoppm, the right
    margin is blank (Chromium draws what overflows the page into it, up to the paper's edge)."""
    from PIL import Image

    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.fail("pdftoppm not found: install Debian's poppler-utils (scripts/system-deps --browser does)",
                    pytrace=False)
    context = browser.new_context(viewport={"width": _A4_CONTENT_PX, "height": 1000}, offline=True)
    pg = context.new_page()
    out = shots / "report-print"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        pg.goto(quick_report.as_uri())
        pg.wait_for_load_state("load")
        pg.emulate_media(media="print")
        wide = pg.evaluate("""(w) => Array.from(document.body.querySelectorAll('*'))
            .filter(e => e.getBoundingClientRect().right > w + 1 && e.getClientRects().length)
            .filter(e => !Array.from(e.children).some(c => c.getBoundingClientRect().right > w + 1))
            .slice(0, 10).map(e => `${e.tagName}.${e.className} in ${(e.closest('section, figure') || {}).id}: `
                                   + `${Math.round(e.getBoundingClientRect().right)} px`)""", _A4_CONTENT_PX)
        assert not wide, f"wider than the printed page ({_A4_CONTENT_PX} px):\n" + "\n".join(wide)
        pdf = out / "report.pdf"
        pg.pdf(path=str(pdf), format="A4", print_background=True, prefer_css_page_size=True)
    finally:
        context.close()
    subprocess.run([pdftoppm, "-r", "50", "-png", str(pdf), str(out / "page")], check=True, timeout=300)
    pages = sorted(out.glob("page-*.png"))
    assert len(pages) > 10, f"{len(pages)} pages"
    cut = []
    for p in pages:
        im = Image.open(p).convert("L")
        w, h = im.size
        strip = im.crop((w - int(w * 0.04), 0, w, h))  # the right 4% of the page: inside the 12-mm margin
        if strip.getextrema()[0] < 200:
            cut.append(p.name)
    assert not cut, f"content in the right margin (cut at the paper's edge) on {cut}; pages in {out}"
