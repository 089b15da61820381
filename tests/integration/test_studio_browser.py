"""The studio's page in a real browser: a real uvicorn server on a loopback port and
Debian's chromium driven by Playwright (as the report test does; no browser download).

One short session walks what a user does: upload a content and a style image, start
a 64 px run, watch the live frames change (a second tab picks the run up), stop it,
refuse a bad value and a bad upload with the server's message, run a few steps to the
end, find the run in the history and download it (a PNG with nst's metadata), restart
the server on the same library and find both runs again. Another test opens a studio
that needs a token.

NST_REQUIRE_BROWSER=1 turns a missing chromium, playwright or serve extra into a
failure; NST_SCREENSHOT_DIR keeps the screenshots; NST_STUDIO_README_SHOT=1 also writes
the README's picture of the studio mid-run (docs/images/studio.png, a larger run).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from nst.files.images import read_metadata
from nst.samples import sample_path

REQUIRE_BROWSER = os.environ.get("NST_REQUIRE_BROWSER") == "1"
README_SHOT = os.environ.get("NST_STUDIO_README_SHOT") == "1"
README_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "studio.png"
WAIT_MS = 30_000  # page-side waits
RUN_WAIT_MS = 120_000  # waits on a run (model loading included) on a slow, shared CPU


def _missing(what: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"{what} is not installed (needed for the studio browser test)")
    pytest.skip(f"{what} is not installed")


def _browser():  # type: ignore[no-untyped-def]
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None:
        _missing("chromium")
    if sync_playwright is None:
        _missing("the playwright package")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        _missing("the serve extra (fastapi, uvicorn)")
    return sync_playwright, executable


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def studio(library: Path, token: str | None = None, decoder: Path | None = None) -> Iterator[str]:
    """A real server (uvicorn in a thread) on a free loopback port; yields its URL."""
    import uvicorn

    from nst.serve.app import create_app

    app = create_app(library, token=token, device="cpu", decoder=decoder)
    config = uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="studio-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the studio server did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}/"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the studio server did not stop within 30 s"


def _watch(page: Any, problems: list[str]) -> None:
    """Record console errors, page errors, failed requests; refuse any request that
    does not go to this machine (the studio works offline)."""
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and "status of 4" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            problems.append(f"request off this machine: {url}")
            route.abort()

    page.route("**/*", route)


def _open(page: Any, url: str) -> None:
    page.goto(url, wait_until="load", timeout=WAIT_MS)
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=WAIT_MS)
    page.wait_for_selector("#connection[data-state='live']", timeout=WAIT_MS)


# Collects every (frame number, image URL) the live view shows; true once `count` differ.
SEEN_FRAMES = """count => {
  const frame = document.getElementById('frame');
  window.__frames = window.__frames || new Map();
  if (frame && !frame.hidden && frame.dataset.frame && frame.src.startsWith('blob:')) {
    window.__frames.set(frame.dataset.frame, frame.src);
  }
  return new Set(window.__frames.values()).size >= count && window.__frames.size >= count;
}"""


# The README's picture waits until the run is 60% done (the last of its scales).
README_READY = """() => {
  const [done, total] = document.getElementById('stat-step').textContent.split('/').map(Number);
  return total > 0 && done >= 0.6 * total;
}"""


def _message(page: Any) -> str:
    page.wait_for_selector("#message[data-kind='error']", state="visible", timeout=WAIT_MS)
    return str(page.inner_text("#message-text"))


def _card(page: Any, status: str) -> str:
    selector = f"#gallery .card[data-status='{status}']"
    page.wait_for_selector(selector, timeout=RUN_WAIT_MS)
    return str(page.get_attribute(selector, "data-id"))


def test_studio_in_a_browser(tmp_path: Path) -> None:
    sync_playwright, executable = _browser()
    screenshots = Path(os.environ.get("NST_SCREENSHOT_DIR", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    library = tmp_path / "library"
    notes = tmp_path / "notes.txt"
    notes.write_text("these are notes, not an image\n")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
            page = context.new_page()
            _watch(page, problems)
            with studio(library) as url:
                _open(page, url)
                assert page.inner_text("#device") == "cpu"
                assert page.input_value("#content_weight") == "10"  # nst's defaults
                assert page.input_value("#style_weight") == "1e6"

                # Inputs: a content and a style image through the file pickers.
                page.set_input_files("#content-file", str(sample_path("tubingen")))
                page.set_input_files("#style-file", str(sample_path("starry_night")))
                page.wait_for_selector("#content-chosen .thumb-item", timeout=WAIT_MS)
                page.wait_for_selector("#style-chosen .thumb-item", timeout=WAIT_MS)
                assert "tubingen.jpg" in page.inner_text("#content-chosen")
                page.wait_for_function("document.querySelector('#content-chosen img').naturalWidth > 0",
                                       timeout=WAIT_MS)

                # A bad value: the server's one-line message, and nothing is queued.
                page.fill("#content_weight", "lots")
                page.press("#content_weight", "Tab")
                page.click("#start")
                assert "content-weight must be a number" in _message(page)
                assert page.locator("#gallery .card").count() == 0
                page.fill("#content_weight", "10")
                page.press("#content_weight", "Tab")

                # A long run at 64 px: live frames, picked up by a second tab, stopped.
                size = 192 if README_SHOT else 64
                page.fill("#size", str(size))
                page.fill("#steps", "200" if README_SHOT else "400")
                page.click("#start")
                page.wait_for_selector("#view-badge[data-status='running']", timeout=RUN_WAIT_MS)
                page.wait_for_function(SEEN_FRAMES, arg=2, polling=100, timeout=RUN_WAIT_MS)
                frames = page.evaluate("[...window.__frames.keys()].map(Number)")
                assert len(set(frames)) >= 2 and max(frames) > min(frames)
                assert page.inner_text("#stat-scale") == ("1 of 1" if size == 64 else "1 of 3")
                assert page.locator("#curve polyline").count() >= 2  # total and each term
                assert page.is_visible("#stop") and page.is_visible("#restart")
                page.screenshot(path=str(screenshots / "studio-live.png"))
                if README_SHOT:  # a picture worth showing: well into the finest scale
                    page.wait_for_function(README_READY, polling=500, timeout=600_000)
                    README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
                    page.evaluate("window.scrollTo(0, 0)")
                    page.screenshot(path=str(README_IMAGE))

                other = context.new_page()  # a second tab, as after a reload, mid-run
                _watch(other, problems)
                _open(other, url)
                other.wait_for_selector("#view-badge[data-status='running']", timeout=WAIT_MS)
                other.wait_for_function(SEEN_FRAMES, arg=1, polling=100, timeout=WAIT_MS)
                assert other.locator("#queue li[data-status='running']").count() == 1
                other.close()

                page.click("#stop")
                page.wait_for_selector("#view-badge[data-status='stopped']", timeout=WAIT_MS)
                stopped = _card(page, "stopped")
                assert not page.is_visible("#download")  # a stopped run keeps no image

                # A bad upload: the message names the file; the page keeps working.
                page.set_input_files("#content-file", str(notes))
                text = _message(page)
                assert "notes.txt" in text and "\n" not in text.strip()
                assert "tubingen.jpg" in page.inner_text("#content-chosen")
                page.screenshot(path=str(screenshots / "studio-error.png"))

                # A short run to the end: in the history, downloaded with nst's metadata.
                page.fill("#steps", "5")
                page.fill("#size", "64")
                page.click("#start")
                finished = _card(page, "finished")
                page.click(f"#gallery .card[data-id='{finished}']")
                page.wait_for_selector("#download", state="visible", timeout=WAIT_MS)
                page.wait_for_function("document.getElementById('frame').naturalWidth > 0", timeout=WAIT_MS)
                with page.expect_download(timeout=WAIT_MS) as waiting:
                    page.click("#download")
                saved = tmp_path / "downloaded.png"
                waiting.value.save_as(saved)
                assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                metadata = read_metadata(saved)
                assert metadata is not None
                assert metadata["config"]["size"] == 64 and metadata["steps"] == 5
                assert metadata["config"]["task"] == "transfer"
                assert page.locator("#gallery .card").count() == 2
                page.locator("#history").scroll_into_view_if_needed()
                page.screenshot(path=str(screenshots / "studio-history.png"))
                page.goto("about:blank")  # closes the event stream before the server stops

            # The same library under a new server: both runs are still there.
            with studio(library) as url:
                _open(page, url)
                page.wait_for_selector(f"#gallery .card[data-id='{finished}'][data-status='finished']",
                                       timeout=WAIT_MS)
                page.wait_for_selector(f"#gallery .card[data-id='{stopped}'][data-status='stopped']",
                                       timeout=WAIT_MS)
                page.click(f"#gallery .card[data-id='{finished}']")
                page.wait_for_function("document.getElementById('frame').naturalWidth > 0", timeout=WAIT_MS)
                page.screenshot(path=str(screenshots / "studio-restarted.png"))
                page.goto("about:blank")
        finally:
            browser.close()
    assert problems == []


# Drops a 40 x 30 PNG (drawn on a canvas) on a drop zone, as a file manager would.
DROP_AN_IMAGE = """async zone => {
  const canvas = document.createElement('canvas');
  canvas.width = 40;
  canvas.height = 30;
  const context = canvas.getContext('2d');
  context.fillStyle = '#c84';
  context.fillRect(0, 0, 40, 30);
  const blob = await new Promise(done => canvas.toBlob(done, 'image/png'));
  const data = new DataTransfer();
  data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
  document.getElementById(zone).dispatchEvent(
    new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def test_studio_with_a_token(tmp_path: Path) -> None:
    """With --token the page takes it from its own URL and sends it with every request
    (thumbnails and the event stream included); an image dropped on a zone is uploaded."""
    sync_playwright, executable = _browser()
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _watch(page, problems)
            with studio(tmp_path / "library", token="s3cret-token") as url:
                _open(page, url + "?token=s3cret-token")
                page.wait_for_selector("#style-samples .sample img", timeout=WAIT_MS)
                page.wait_for_function(
                    "document.querySelector('#style-samples .sample img').naturalWidth > 0", timeout=WAIT_MS)
                page.set_input_files("#style-file", str(sample_path("great_wave")))
                page.wait_for_selector("#style-chosen .thumb-item", timeout=WAIT_MS)
                page.evaluate(DROP_AN_IMAGE, "content-drop")  # drag and drop, as from a file manager
                page.wait_for_selector("#content-chosen .thumb-item", timeout=WAIT_MS)
                assert "dropped.png" in page.inner_text("#content-chosen")
                assert "40 × 30" in page.inner_text("#content-chosen")
                assert page.is_hidden("#message")
                page.goto("about:blank")
        finally:
            browser.close()
    assert problems == []
