"""The studio's fast path in a real browser (chromium through Playwright, a real
uvicorn server, the real VGG19 to relu3_1 and a tiny decoder file): with a decoder
"fast, then refine" is the default; pressing Start shows the fast result before the
step counter moves, then the optimization runs to the end. Without a decoder the fast
choices are off with the server's reason (the other browser test runs that way)."""

from __future__ import annotations

from pathlib import Path

import pytest

import nst.serve.jobs as serve_jobs
from fastkit import tiny_decoder
from nst.samples import sample_path

from .test_studio_browser import RUN_WAIT_MS, WAIT_MS, _browser, _card, _open, _watch, studio

# Installed before Start: notes when the live image first shows and what the step
# counter said then (a data: URL is the fast result of a frame event; step frames are blobs).
WATCH_FIRST_FRAME = """() => {
  window.__first = null;
  window.__started = performance.now();
  const frame = document.getElementById('frame');
  new MutationObserver(() => {
    if (window.__first === null && !frame.hidden && frame.src) {
      window.__first = {src: frame.src.slice(0, 30), step: document.getElementById('stat-step').textContent,
                        progress: !document.getElementById('progress').hidden,
                        ms: performance.now() - window.__started};
    }
  }).observe(frame, {attributes: true});
}"""


def test_fast_then_refine_in_a_browser(tmp_path: Path) -> None:
    sync_playwright, executable = _browser()
    decoder = tiny_decoder(tmp_path / "decoder.safetensors", width=4)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            _watch(page, problems)
            with studio(tmp_path / "library", decoder=decoder) as url:
                _open(page, url)
                assert page.is_checked("input[name='mode'][value='refine']")  # the default with a decoder
                assert page.is_visible("#strength-field") and page.is_hidden("#init-field")
                page.click("input[name='mode'][value='fast'] + span")
                assert page.is_hidden("#steps") and page.is_hidden("#content_weight")  # no optimization
                page.click("input[name='mode'][value='refine'] + span")
                page.set_input_files("#content-file", str(sample_path("tubingen")))
                page.set_input_files("#style-file", str(sample_path("starry_night")))
                page.wait_for_selector("#style-chosen .thumb-item", timeout=WAIT_MS)
                page.fill("#size", "64")
                page.fill("#steps", "30")
                page.evaluate(WATCH_FIRST_FRAME)
                page.click("#start")
                page.wait_for_function("window.__first !== null", polling=50, timeout=RUN_WAIT_MS)
                first = page.evaluate("window.__first")
                assert first["src"].startswith("data:image/jpeg;base64,"), first  # the fast result
                assert not first["progress"] and first["step"] == "–", first  # before any step
                assert "fast result" in page.inner_text("#live-note")
                finished = _card(page, "finished")
                page.click(f"#gallery .card[data-id='{finished}']")
                page.wait_for_function("document.getElementById('frame').naturalWidth > 0", timeout=WAIT_MS)
                facts = page.inner_text("#run-facts")
                assert "fast" in facts and "30" in facts  # started from the fast result, 30 steps
                page.goto("about:blank")
        finally:
            browser.close()
    assert problems == []


def test_without_a_decoder_the_fast_choices_are_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the shipped decoder were missing (a broken install): the page says why fast is off.
    monkeypatch.setattr(serve_jobs, "shipped_decoder_path", lambda: tmp_path / "missing.safetensors")
    sync_playwright, executable = _browser()
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            _watch(page, problems)
            with studio(tmp_path / "library") as url:
                _open(page, url)
                assert page.is_checked("input[name='mode'][value='gatys']")
                assert page.is_disabled("input[name='mode'][value='fast']")
                assert page.is_disabled("input[name='mode'][value='refine']")
                assert "--decoder" in page.inner_text("#mode-note")
                page.goto("about:blank")
        finally:
            browser.close()
    assert problems == []
