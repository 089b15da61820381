"""The HTML report: its content, and the page in a real headless browser
(Debian's chromium driven by Playwright; .ci/run installs chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from nst.files.report import SECTIONS, render
from nst.results import StudyResults

# CI sets this so a missing browser fails the suite instead of skipping the test.
REQUIRE_BROWSER = os.environ.get("NST_REQUIRE_BROWSER") == "1"


def _results(folder: Path) -> StudyResults:
    return StudyResults.from_dict(json.loads((folder / "results.json").read_text()))


def test_report_has_the_study_sections_in_order(mini_study: Path) -> None:
    page = (mini_study / "index.html").read_text()
    headings = re.findall(r'<h2 id="(\w+)">', page)
    assert headings == ["reconstruction", "texture", "transfer", "init", "weighting", "other"]
    assert [SECTIONS[h][0] for h in headings[:5]] == [
        "Content reconstruction", "Texture synthesis", "Style transfer", "Init comparison",
        "Input-image weighting"]
    assert 'type="range"' in page and "pixel difference" in page
    # Nothing is fetched from elsewhere: every src/href is relative or a data: URL.
    for link in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not re.match(r"\w+://", link), link


def test_the_report_is_titled_by_the_study(mini_study: Path) -> None:
    """The title a study's TOML gives (MINI_STUDY: "Mini study"), in results.json, the
    page's title and its heading; not the name of a sweep command."""
    assert _results(mini_study).title == "Mini study"
    page = (mini_study / "index.html").read_text()
    header = page.split("</header>")[0]
    assert "<title>Mini study</title>" in header and "<h1>Mini study</h1>" in header
    assert "nst sweep" not in header


def test_report_escapes_text_from_the_study(mini_study: Path) -> None:
    results = _results(mini_study)
    results.title = "<script>alert(1)</script>"
    results.sweeps[0].runs[0].label = "<img src=x onerror=alert(2)>"
    page = render(results)
    assert "<script>alert(1)" not in page and "<img src=x" not in page






def _browser():  # type: ignore[no-untyped-def]
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        missing = "chromium" if executable is None else "the playwright package"
        if REQUIRE_BROWSER:
            pytest.fail(f"{missing} is not installed (needed for the report test)")
        pytest.skip(f"{missing} is not installed")
    return sync_playwright, executable


def test_report_in_a_headless_browser(mini_study: Path, tmp_path: Path) -> None:
    sync_playwright, executable = _browser()
    screenshots = Path(os.environ.get("NST_SCREENSHOT_DIR", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto((mini_study / "index.html").as_uri(), wait_until="load")

            images = page.evaluate(
                "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
            assert len(images) > 21  # every run's card, every grid, the slider
            assert [src for src, complete, width in images if not complete or width == 0] == []

            slider = page.locator(".slider")
            shown = slider.locator("img")
            first = shown.get_attribute("src")
            assert first == "images/alpha/alpha-0.png"
            assert slider.locator("output").inner_text() == "alpha 0"
            slider.locator("input[type=range]").focus()
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            assert shown.get_attribute("src") == "images/alpha/alpha-1.png"
            assert slider.locator("output").inner_text() == "alpha 1"
            page.wait_for_function("document.querySelector('.slider img').naturalWidth > 0")

            page.screenshot(path=str(screenshots / "report.png"), full_page=True)
            slider.screenshot(path=str(screenshots / "report-slider.png"))
        finally:
            browser.close()
    assert problems == []
    assert (screenshots / "report.png").stat().st_size > 10_000
