"""The studio's HTTP API (nst.serve.app) through FastAPI's test client: uploads,
jobs and their events, stop, history, downloads, deletes, bad input, path
traversal, the token, restarts and a one-axis sweep. Runs are tiny (32 px, a few
steps, on the CPU)."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's note on httpx's successor (a UserWarning)
    warnings.filterwarnings("ignore", message=".*httpx")
    from fastapi.testclient import TestClient  # noqa: E402

from nst.files.images import read_metadata  # noqa: E402
from nst.samples import sample_path  # noqa: E402
from nst.serve.app import create_app  # noqa: E402
from nst.serve.hub import Subscriber  # noqa: E402
from nst.serve.library import Library  # noqa: E402

TINY = {"size": 32, "steps": 4, "seed": 1}
LONG = {"size": 32, "steps": 5000, "seed": 1}  # never finishes in a test: stopped or interrupted
Events = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def client(library: Path) -> Iterator[TestClient]:
    with TestClient(create_app(library, device="cpu")) as test_client:
        yield test_client


def upload(client: TestClient, path: Path, name: str | None = None) -> str:
    response = client.post("/api/uploads", content=path.read_bytes(),
                           headers={"Content-Type": "application/octet-stream",
                                    "X-Filename": name or path.name})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def post_job(client: TestClient, options: dict[str, Any], content: str = "sample:tubingen",
             styles: tuple[str, ...] = ("sample:starry_night",)) -> dict[str, Any]:
    response = client.post("/api/jobs", json={"task": "transfer", "content": content, "styles": list(styles),
                                              "mask": None, "options": options})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def wait_for(client: TestClient, run_id: str, statuses: tuple[str, ...],
             timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in statuses or time.monotonic() > deadline:
            assert run["status"] in statuses, run
            return run
        time.sleep(0.05)


class EventReader:
    """Reads /api/events on a thread of its own until `done(events)` says so."""

    def __init__(self, client: TestClient, done: Callable[[Events], bool], path: str = "/api/events") -> None:
        self.events: Events = []
        self.connected = threading.Event()
        self.done = done
        self.status = 0
        self.thread = threading.Thread(target=self._read, args=(client, path), daemon=True)
        self.thread.start()

    def _read(self, client: TestClient, path: str) -> None:
        with client.stream("GET", path) as response:
            self.status = response.status_code
            self.connected.set()
            if response.status_code != 200:
                return
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.append((kind, json.loads(line[6:])))
                    if self.done(self.events):
                        return

    def join(self, timeout: float = 30) -> Events:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"events still awaited after {timeout} s: {self.events[-5:]}"
        return self.events

    def started(self) -> EventReader:
        """Wait until the stream gave the current state (the queue comes first)."""
        assert self.connected.wait(10)
        deadline = time.monotonic() + 10
        while not self.events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.events and self.events[0][0] == "queue"
        return self


def of(events: Events, kind: str, run_id: str | None = None) -> list[dict[str, Any]]:
    return [data for k, data in events if k == kind and (run_id is None or data.get("id") == run_id)]


# ------------------------------------------------------------------ imports and info

def test_importing_nst_serve_loads_neither_fastapi_nor_torch() -> None:
    code = ("import sys, nst.serve, nst.serve.library, nst.serve.hub, nst.serve.jobs, nst.serve.worker; "
            "print('fastapi' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_info_gives_nst_defaults_samples_and_limits(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert info["device"] == "cpu"
    assert info["defaults"]["content_weight"] == 10.0 and info["defaults"]["style_layers"][0] == "conv_1"
    assert info["task_defaults"]["reconstruct"]["style_weight"] == 0.0
    assert "tubingen" in info["samples"]["content"] and "starry_night" in info["samples"]["style"]
    assert info["max_upload_bytes"] == 50 * 1024 * 1024
    assert client.get("/api/samples/starry_night").headers["content-type"] == "image/jpeg"
    assert client.get("/nowhere").json() == {"error": "not found"}


# ------------------------------------------------------------------ a run, start to finish

def test_upload_run_events_history_download_delete_and_restart(client: TestClient, library: Path,
                                                                tmp_path: Path) -> None:
    content = upload(client, sample_path("tubingen"), "my photo.jpg")
    style = upload(client, sample_path("starry_night"), "../../etc/passwd")  # a name, never a path
    assert content.endswith(".jpg") and len(content) == 64 + 4
    assert sorted(p.name for p in (library / "uploads").iterdir() if not p.name.endswith(".json")) \
        == sorted([content, style])
    assert client.get(f"/api/uploads/{content}").content == sample_path("tubingen").read_bytes()

    ids: list[str] = []
    reader = EventReader(client, lambda events: any(
        d.get("status") == "finished" for d in of(events, "job", ids[0] if ids else "-"))).started()
    run = post_job(client, TINY, f"upload:{content}", (f"upload:{style}",))
    ids.append(run["id"])
    assert run["status"] == "queued" and run["label"] == "my photo.jpg × passwd"
    events = reader.join()
    statuses = [d["status"] for d in of(events, "job", run["id"])]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "finished"
    steps = of(events, "step", run["id"])
    assert steps and steps[-1]["step"] == steps[-1]["total_steps"] == 4
    assert set(steps[-1]["losses"]) >= {"content", "style", "total"} and steps[-1]["frame"] >= 1
    assert {"queue": [], "running": run["id"]} in of(events, "queue")

    done = client.get(f"/api/runs/{run['id']}").json()
    assert done["status"] == "finished" and done["record"]["steps"] == 4
    assert len(done["record"]["history"]) == 4
    assert done["inputs"] == {"content": f"upload:{content}", "styles": [f"upload:{style}"], "mask": None}
    listed = client.get("/api/runs").json()
    assert [r["id"] for r in listed] == [run["id"]] and "history" not in listed[0]["record"]
    assert client.get(f"/api/jobs/{run['id']}/frame").status_code == 404  # live frames end with the run

    image = client.get(f"/api/runs/{run['id']}/image", params={"download": 1})
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("attachment")
    saved = tmp_path / "download.png"
    saved.write_bytes(image.content)
    metadata = read_metadata(saved)
    assert metadata is not None and metadata["config"]["size"] == 32 and metadata["steps"] == 4

    # A new server on the same library: the history is still there.
    with TestClient(create_app(library, device="cpu")) as again:
        assert [r["status"] for r in again.get("/api/runs").json()] == ["finished"]
        assert again.get(f"/api/runs/{run['id']}/image").content == image.content

    assert client.delete(f"/api/runs/{run['id']}").json() == {"deleted": run["id"]}
    assert client.get(f"/api/runs/{run['id']}").status_code == 404
    assert client.get("/api/runs").json() == []


# ------------------------------------------------------------------ stop, queue, several pages

def test_stop_two_pages_a_late_page_and_a_closed_page(client: TestClient) -> None:
    running = post_job(client, LONG)
    queued = post_job(client, TINY)
    wait_for(client, running["id"], ("running",))

    # Two pages both get step events; they connect mid-run and get the state at once.
    first = EventReader(client, lambda events: len(of(events, "step")) >= 2)
    second = EventReader(client, lambda events: len(of(events, "step")) >= 2)
    for reader in (first, second):
        events = reader.join()
        assert events[0] == ("queue", {"queue": [queued["id"]], "running": running["id"]})
        assert [d["status"] for d in of(events, "job", running["id"])][0] == "running"
        assert of(events, "job", queued["id"])[0]["status"] == "queued"
    # Both pages are closed: the job goes on.
    time.sleep(0.3)
    assert client.get(f"/api/runs/{running['id']}").json()["status"] == "running"

    frame = client.get(f"/api/jobs/{running['id']}/frame")
    assert frame.headers["content-type"] == "image/jpeg" and frame.content[:2] == b"\xff\xd8"
    assert int(frame.headers["x-frame"]) >= 1
    assert client.delete(f"/api/runs/{running['id']}").status_code == 409

    # A queued job stops at once, a running one within a step.
    assert client.post(f"/api/jobs/{queued['id']}/stop").json()["status"] == "stopped"
    asked = time.monotonic()
    client.post(f"/api/jobs/{running['id']}/stop")
    stopped = wait_for(client, running["id"], ("stopped",), timeout=10)
    assert time.monotonic() - asked < 5 and stopped["record"] is None
    assert client.get(f"/api/runs/{running['id']}/image").status_code == 404
    assert client.delete(f"/api/runs/{running['id']}").status_code == 200


def test_a_slow_page_loses_step_events_and_never_blocks() -> None:
    loop = asyncio.new_event_loop()
    try:
        subscriber = Subscriber(loop, limit=4)
        assert subscriber.offer("job", "a", "{}")
        for step in range(1000):  # one step event per job waits, the newest
            assert subscriber.offer("step", "a", json.dumps({"step": step}))
        assert [item[0] for item in subscriber.pending] == ["job", "step"]
        assert subscriber.pending[1][2] == '{"step": 999}'
        for _ in range(2):
            assert subscriber.offer("job", "a", "{}")
        assert subscriber.offer("step", "b", "{}")  # full: dropped, not waited for
        assert len(subscriber.pending) == 4
        assert not subscriber.offer("job", "a", "{}")  # too far behind: disconnected
        kinds = [loop.run_until_complete(subscriber.next(1.0)) for _ in range(5)]
        assert [k[0] if k else None for k in kinds] == ["job", "step", "job", "job", None]
    finally:
        loop.close()



def test_a_cpu_run_sends_its_step_event_and_frame_together_every_3_s(tmp_path: Path) -> None:
    """One page update per 3 s of a CPU run (every repaint takes CPU from torch), more
    often only at the first step and at the end of a scale; each step event names a new
    frame, so the page repaints once for both."""
    import torch  # noqa: PLC0415

    from nst.core.geometry import Scale  # noqa: PLC0415
    from nst.events import StepEvent  # noqa: PLC0415
    from nst.serve.hub import Hub  # noqa: PLC0415
    from nst.serve.jobs import Job  # noqa: PLC0415
    from nst.serve.worker import CPU_UPDATE_INTERVAL_S, Worker  # noqa: PLC0415

    published: list[dict[str, Any]] = []

    class Recorder(Hub):
        def publish(self, kind: str, data: Any, key: str = "") -> None:
            published.append(dict(data))

    now = [100.0]
    worker = Worker(Library(tmp_path / "library"), "cpu", Recorder(), clock=lambda: now[0])
    job = Job(run={"id": "20261129-000000-0001"}, started_t=100.0)
    image = torch.rand(1, 3, 16, 16)
    scales = (Scale(8, 8, 20), Scale(16, 16, 20))
    for scale, steps in enumerate((20, 20)):  # 0.25 s a step: 10 s in two scales
        for step in range(1, steps + 1):
            now[0] += 0.25
            worker._on_step(job, StepEvent(step, steps, {"total": 1.0 / step}, now[0] - 100.0, image, scale,
                                           scales))
    assert CPU_UPDATE_INTERVAL_S == 3.0
    # The first step, then every 3 s (12 steps) across the scales' boundary, and the last.
    assert [(event["scale"], event["scale_step"]) for event in published] == \
        [(0, 1), (0, 13), (1, 5), (1, 17), (1, 20)]
    assert [event["step"] for event in published] == [1, 13, 25, 37, 40]
    assert [event["frame"] for event in published] == [1, 2, 3, 4, 5]
    assert job.frame is not None and job.frame[:2] == b"\xff\xd8"  # the latest frame, a JPEG


def test_the_studio_page_has_nothing_that_moves_by_itself() -> None:
    """A CSS transition or animation can keep chromium drawing 60 frames a second while
    the page sits idle (measured: 11% of a core), CPU a CPU run does not get."""
    static = Path(__file__).resolve().parents[2] / "src" / "nst" / "serve" / "static"
    for name in ("studio.css", "index.html"):
        text = re.sub(r"/\*.*?\*/|<!--.*?-->", "", (static / name).read_text(encoding="utf-8"), flags=re.S)
        for word in ("transition", "animation", "@keyframes", "backdrop-filter"):
            assert word not in text, f"{name} uses {word}"


# ------------------------------------------------------------------ restarts

def test_jobs_left_by_a_stopped_server_are_interrupted_with_their_inputs(library: Path) -> None:
    with TestClient(create_app(library, device="cpu")) as client:
        content = upload(client, sample_path("tubingen"))
        running = post_job(client, LONG, f"upload:{content}")
        queued = post_job(client, TINY, f"upload:{content}")
        wait_for(client, running["id"], ("running",))
    # The server shut down cleanly: both are interrupted.
    store = Library(library)
    for run in (running, queued):
        assert store.read_run(run["id"])["status"] == "interrupted"  # type: ignore[index]
    # A server that died (kill -9) leaves them queued or running: the next one says interrupted.
    dead = store.new_run({"kind": "run", "task": "transfer", "status": "running",
                          "inputs": {"content": f"upload:{content}", "styles": ["sample:starry_night"],
                                     "mask": None},
                          "options": {"size": 32, "content_weight": 5}, "error": None, "record": None,
                          "label": "x"})
    with TestClient(create_app(library, device="cpu")) as client:
        again = client.get(f"/api/runs/{dead['id']}").json()
        assert again["status"] == "interrupted" and "server stopped" in again["error"]
        assert again["inputs"]["content"] == f"upload:{content}" and again["options"]["content_weight"] == 5
        assert client.get(f"/api/uploads/{content}").status_code == 200
        assert {r["status"] for r in client.get("/api/runs").json()} == {"interrupted"}


# ------------------------------------------------------------------ bad input

def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size (no pixels follow): probing reads only this."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_bad_uploads_get_one_line_messages(library: Path) -> None:
    with TestClient(create_app(library, device="cpu", max_upload_bytes=200_000)) as client:
        def send(data: bytes, name: str = "x.png", kind: str = "application/octet-stream") -> Any:
            return client.post("/api/uploads", content=data,
                               headers={"Content-Type": kind, "X-Filename": name})

        text = send(b"hello, not a picture", "notes.txt")
        assert text.status_code == 400
        assert text.json()["error"] == "not an image file (or an unsupported format): notes.txt"
        assert str(library) not in text.text
        huge = send(png_header(100_000, 100_000), "huge.png")
        assert huge.status_code == 400 and "over the limit of 40,000,000 pixels" in huge.json()["error"]
        assert send(b"\0" * 200_001).status_code == 413
        assert send(b"").json()["error"] == "the upload is empty"
        assert send(sample_path("tubingen").read_bytes(), kind="text/plain").status_code == 400
        # Nothing was kept.
        assert [p.name for p in (library / "uploads").iterdir()] == []


@pytest.mark.parametrize(("body", "message"), [
    ({"options": {"contnt_weight": 1}}, "unknown option 'contnt_weight' (did you mean content_weight?)"),
    ({"options": {"size": -1}}, "size must be at least 1, got -1"),
    ({"options": {"alpha": 2}}, "alpha must be between 0 and 1, got 2"),
    ({"options": {"content_layers": 5}}, "content_layers must be a list, got 5"),
    ({"options": {"init": "/etc/passwd"}}, "init image: expected \"upload:<id>\" or \"sample:<name>\""),
    ({"options": {"weights": "/tmp/evil.pth"}}, "weights must be one of caffe, torchvision"),
    ({"styles": []}, "transfer needs at least one style image"),
    ({"styles": ["upload:../x"]}, "style image: no such upload '../x'"),
    ({"content": "/etc/passwd"}, "content image: expected \"upload:<id>\" or \"sample:<name>\""),
    ({"content": "sample:../../config"}, "content image: no such sample '../../config'"),
    ({"task": "paint"}, "unknown task 'paint'"),
])
def test_bad_job_values_are_refused_with_nsts_message(client: TestClient, body: dict[str, Any],
                                                      message: str) -> None:
    full = {"task": "transfer", "content": "sample:tubingen", "styles": ["sample:starry_night"],
            "options": {"size": 32}, **body}
    response = client.post("/api/jobs", json=full)
    assert response.status_code == 400 and response.json()["error"].startswith(message)
    assert client.get("/api/runs").json() == []


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    broken = client.post("/api/jobs", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"].startswith("the body is not JSON")
    plain = client.post("/api/jobs", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 400 and "application/json" in plain.json()["error"]


# ------------------------------------------------------------------ path traversal

def test_nothing_outside_the_library_is_ever_served(client: TestClient, library: Path,
                                                     tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("SECRET")
    (library / "secret.txt").write_text("SECRET")
    study = library / "studies" / "x"
    study.mkdir()
    (study / "index.html").write_text("<p>report</p>")
    (study / ".nst-lock").write_text("SECRET")
    (study / "link.txt").symlink_to(tmp_path / "secret.txt")
    (library / "studies" / "out").symlink_to(tmp_path)
    run_id = post_job(client, {"size": 32, "steps": 1})["id"]
    wait_for(client, run_id, ("finished",))

    assert client.get("/studies/x/index.html").text == "<p>report</p>"
    assert client.get("/studies/x/").text == "<p>report</p>"
    attempts = [
        "/api/runs/../../etc/passwd", "/api/runs/..%2F..%2Fetc%2Fpasswd", "/api/runs/%2e%2e",
        f"/api/runs/{run_id}/../../secret.txt", f"/api/runs/{run_id}%2F..%2F..%2Fsecret.txt",
        f"/api/runs/{run_id}.json", "/api/runs/..%2Fsecret.txt/image",
        "/api/uploads/..%2Fsecret.txt", "/api/uploads/%2e%2e%2fsecret.txt",
        "/api/samples/..%2F..%2Fconfig.py", "/studies/x/../../secret.txt", "/studies/x/..%2F..%2Fsecret.txt",
        "/studies/x/%2e%2e/%2e%2e/secret.txt", "/studies/x/link.txt", "/studies/x/.nst-lock",
        "/studies/..%2F/secret.txt", "/studies/%2e%2e/secret.txt",
        "/studies/out/secret.txt", "/studies/x/%2Fetc%2Fpasswd", "/static/..%2F..%2Fapp.py",
        "/static/..%2Flibrary.py", "/api/jobs/..%2Fx/frame",
    ]
    for url in attempts:
        response = client.get(url)
        assert response.status_code in (400, 404), url
        assert "SECRET" not in response.text and "root:" not in response.text, url
    for url in ("/api/runs/..%2F..%2Fstudies", "/api/runs/%2e%2e", "/api/runs/x.y"):
        assert client.delete(url).status_code in (400, 404, 405), url
    assert client.post("/api/jobs/..%2Fx/stop").status_code in (400, 404)
    assert (library / "studies" / "x" / "index.html").exists() and (tmp_path / "secret.txt").exists()
    assert client.get(f"/api/runs/{run_id}").status_code == 200


# ------------------------------------------------------------------ the token

def test_with_a_token_every_route_needs_it(library: Path) -> None:
    with TestClient(create_app(library, token="s3cret", device="cpu")) as client:
        for url in ("/", "/static/studio.js", "/api/info", "/api/runs", "/api/events",
                    "/studies/x/index.html"):
            assert client.get(url).status_code == 401, url
        assert client.post("/api/jobs", json={}).status_code == 401
        assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/info", params={"token": "wrong"}).status_code == 401
        assert client.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/api/info").status_code == 401  # a header sets no cookie
        reader = EventReader(client, lambda events: True, "/api/events?token=s3cret")
        assert reader.join()[0][0] == "queue"
        # ?token= (the page's own address) sets a same-site cookie for its images and links.
        assert client.get("/api/info", params={"token": "s3cret"}).status_code == 200
        assert client.get("/api/runs").status_code == 200


def test_without_a_token_only_loopback_names_and_the_own_origin_are_served(client: TestClient) -> None:
    assert client.get("/api/info", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/info", headers={"Host": "localhost:8765"}).status_code == 200
    assert client.get("/api/info", headers={"Host": "evil.example:8765"}).status_code == 403  # DNS rebinding
    foreign = client.post("/api/jobs", json={}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert client.post("/api/jobs", json={}, headers={"Origin": "http://testserver"}).status_code == 400


# ------------------------------------------------------------------ a sweep

def test_a_one_axis_sweep_fills_its_grid_as_runs_finish(client: TestClient, library: Path) -> None:
    ids: list[str] = []
    reader = EventReader(client, lambda events: any(
        d.get("status") in ("finished", "failed")
        for d in of(events, "job", ids[0] if ids else "-"))).started()
    response = client.post("/api/sweeps", json={
        "name": "alpha-test", "param": "alpha", "values": [0, 1], "content": "sample:tubingen",
        "styles": ["sample:starry_night"], "options": {"size": 32, "steps": 2}})
    assert response.status_code == 200, response.text
    sweep = response.json()
    ids.append(sweep["id"])
    assert sweep["kind"] == "sweep" and sweep["sweep"]["total"] == 2
    events = reader.join(40)
    assert of(events, "job", sweep["id"])[-1]["status"] == "finished"
    grid = of(events, "sweep", sweep["id"])
    assert [g["done"] for g in grid] == [1, 2] and grid[-1]["total"] == 2
    assert [r["label"] for r in grid[-1]["runs"]] == ["alpha 0", "alpha 1"]
    assert of(events, "step", sweep["id"])
    for cell in grid[-1]["runs"]:
        image = client.get(cell["image"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    studies = client.get("/api/studies").json()
    assert [(s["name"], s["runs"], s["report"]) for s in studies] == [("alpha-test", 2, True)]
    assert studies[0]["title"] == "alpha-test: alpha"
    assert client.get("/studies/alpha-test/index.html").status_code == 200
    assert client.get("/api/runs").json() == []  # sweeps live in their study folder
    assert client.get(f"/api/runs/{sweep['id']}").json()["report"] == "/studies/alpha-test/index.html"


@pytest.mark.parametrize(("body", "message"), [
    ({"name": "../x"}, "name must be 1-64 letters"),
    ({"name": ".hidden"}, "name must be 1-64 letters"),
    ({"param": "contnt_weight"}, "cannot sweep 'contnt_weight' (did you mean content_weight?)"),
    ({"values": []}, "values must be a list"),
    ({"param": "init", "values": ["/etc/passwd"]}, "init image: expected"),
    ({"param": "size", "values": [32, -1]}, "size must be at least 1"),
])
def test_bad_sweeps_are_refused(client: TestClient, body: dict[str, Any], message: str) -> None:
    full = {"name": "s", "param": "alpha", "values": [0, 1], "content": "sample:tubingen",
            "styles": ["sample:starry_night"], "options": {"size": 32, "steps": 2}, **body}
    response = client.post("/api/sweeps", json=full)
    assert response.status_code == 400 and message in response.json()["error"], response.text
