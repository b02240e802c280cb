"""The report in a real browser (Chromium through playwright) at desktop and phone widths.

Built from the tiny notebooks (tests/report/conftest.py) on the smoke profile, beside the committed paper
results in figures/paper/. Skipped, with the reason, where playwright or Chromium is not installed:
    uv pip install playwright   (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1; no browser download needed)
    apt-get install chromium    (or set LTH_CHROMIUM to a Chromium binary)
"""

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from lth.paths import workspace
from lth.report import batch
from lth.report.page import build_report

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (uv pip install playwright)")
CHROMIUM = os.environ.get("LTH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("no Chromium found (apt-get install chromium, or set LTH_CHROMIUM)", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}
NBCONVERT_DEFAULT_ALT = "No description has been provided for this image"
MACHINE_PATHS = tuple("/" + p + "/" for p in ("work", "root", "home", "tmp")) + ("PosixPath(",)

# Every element wider than the viewport, or starting left of it, that no scroll box of its own holds.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth, found = [];
  for (const element of document.querySelectorAll("body *")) {
    const box = element.getBoundingClientRect();
    if (!box.width || (box.right <= width + 1 && box.left >= -1)) continue;
    let parent = element.parentElement, scrolled = false;
    for (; parent && !scrolled; parent = parent.parentElement)
      scrolled = ["auto", "scroll"].includes(getComputedStyle(parent).overflowX);
    if (!scrolled) found.push(`${element.tagName.toLowerCase()}.${element.className} right=${Math.round(box.right)}`);
  }
  return found;
}"""


@pytest.fixture(scope="module")
def report(executed):
    """The smoke report of the tiny notebooks, with the committed paper results of every real notebook."""
    folder, _, _ = executed
    runs = batch.collect_runs(batch.notebook_sources(folder / "notebooks"), "smoke", folder / "build")
    committed = sorted(p.name for p in (workspace() / "figures" / "paper").iterdir() if (p / "claims.csv").exists())
    assert committed, "no committed paper results in figures/paper"
    reference = [batch.committed_run(name) for name in committed]
    return build_report(runs, "smoke", folder / "browser-report", reference=reference)


@pytest.fixture(scope="module", params=list(VIEWPORTS))
def page(request, report):
    width, height = VIEWPORTS[request.param]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(report.as_uri())
        yield page
        browser.close()


def test_the_page_does_not_scroll_sideways(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_nothing_sticks_out_of_the_viewport_except_inside_a_scroll_box(page):
    assert page.evaluate(OVERFLOWING) == []


def test_every_image_has_its_own_meaningful_alt_text(page):
    alts = page.eval_on_selector_all("img", "images => images.map(image => image.getAttribute('alt') || '')")
    assert len(alts) >= 10  # the tiny notebook's figure and the committed ones
    assert all(alt.strip() and alt != NBCONVERT_DEFAULT_ALT for alt in alts), alts
    assert len(set(alts)) == len(alts), alts


def test_no_machine_paths_or_reprs_in_the_text(page):
    text = page.evaluate("document.body.textContent")
    assert [marker for marker in MACHINE_PATHS if marker in text] == []


def test_the_committed_paper_results_are_shown_and_labelled(page):
    text = page.evaluate("document.body.innerText")
    assert "Committed results" in text and "profile paper" in text and "profile smoke" in text


def test_every_link_to_a_local_file_finds_its_file(page, report):
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(link => link.getAttribute('href'))")
    local = [href for href in hrefs if not href.startswith(("#", "http:", "https:", "mailto:", "data:"))]
    assert any(href.endswith(".config.gin") for href in local) and any(href.endswith(".ipynb") for href in local)
    missing = [href for href in local if not (report.parent / urllib.parse.unquote(href)).exists()]
    assert missing == []
    assert all(not Path(urllib.parse.unquote(href)).is_absolute() for href in local)
