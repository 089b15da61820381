"""The studio's routes, one named handler each (docs/studio.md lists them).

Every handler reads the studio it serves (library, worker, hub, device, upload
limit) from `app.state.studio` through the `StudioDep` dependency, so the
handlers are plain module-level functions that create_app mounts as a router.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from nst.config import COLOR_MODES, INIT_KINDS, OPTIMIZERS, POOLINGS, PRECISIONS, STYLE_LOSSES, TASKS, Config
from nst.layers import CANONICAL_LAYERS
from nst.plans.sweeps import SWEEPABLE
from nst.serve.hub import Hub, Subscriber
from nst.serve.jobs import WEIGHTS, FastPath, build_job, build_sweep, task_config
from nst.serve.library import Library, is_run_id, sample_file, sample_names, without_history
from nst.serve.worker import Worker
from nst.tasks import FAST_REFUSED
from nst.version import __version__

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
STATIC = Path(__file__).parent / "static"
STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.(?:html|css|js|png|svg|ico|woff2)")
PING_S = 15.0
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".json": "application/json",
               ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".svg": "image/svg+xml",
               ".ico": "image/x-icon", ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8"}
UPLOAD_TYPES = ("application/octet-stream", "image/")
CACHE_A_DAY = {"Cache-Control": "max-age=86400"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class Studio:
    """What the handlers share: one per app, kept in app.state.studio."""

    library: Library
    worker: Worker
    hub: Hub
    device: str  # as --device gave it; jobs are built with it
    device_in_use: str  # what it resolved to here: cpu, cuda:N or mps
    device_name: str | None  # a GPU's name, shown beside it
    max_upload_bytes: int
    fast: FastPath = FastPath(reason="no decoder")  # the fast path's decoder (nst serve --decoder)


def current_studio(request: Request) -> Studio:
    return cast(Studio, request.app.state.studio)


StudioDep = Annotated[Studio, Depends(current_studio)]
router = APIRouter()


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _display_name(header: str | None) -> str:
    """The file name the page sent (shown only): percent-decoded, its last part, no control characters."""
    name = unquote(header or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:200]


def _checked_id(run_id: str) -> str:
    if not is_run_id(run_id):
        raise ApiError(404, "no such run")
    return run_id


def _run_or_404(studio: Studio, run_id: str) -> dict[str, Any]:
    run = studio.worker.live(_checked_id(run_id)) or studio.library.read_run(run_id)
    if run is None:
        raise ApiError(404, "no such run")
    return run


async def _json_body(request: Request) -> Any:
    if _content_type(request) != "application/json":
        raise ApiError(400, "send a JSON body with Content-Type: application/json")
    try:
        return json.loads(await request.body())
    except ValueError as problem:
        raise ApiError(400, f"the body is not JSON: {problem}") from None


def info(studio: Studio) -> dict[str, Any]:
    """What the page needs first: versions, the device, defaults, choices, limits."""
    return {
        "version": __version__,
        "device": studio.device_in_use,
        "device_name": studio.device_name,
        "defaults": Config().to_dict(),
        "task_defaults": {task: task_config(task).to_dict() for task in TASKS},
        "samples": sample_names(),
        "options": {"task": list(TASKS), "optimizer": list(OPTIMIZERS), "pooling": list(POOLINGS),
                    "init": list(INIT_KINDS), "style_loss": list(STYLE_LOSSES),
                    "preserve_color": [None, *COLOR_MODES], "precision": [None, *PRECISIONS],
                    "weights": list(WEIGHTS),
                    "layers": [n for n in CANONICAL_LAYERS if n.startswith("conv_")],
                    "sweep_params": sorted([*SWEEPABLE, "content", "style"])},
        "max_upload_bytes": studio.max_upload_bytes,
        # The page's fast choices: disabled with this reason when unavailable; with
        # --method fast it leaves out (and greys) the options fast refuses.
        "fast": {"available": studio.fast.available, "reason": studio.fast.reason,
                 "refused": list(FAST_REFUSED)},
    }


# ------------------------------------------------------------------ page

def _static_file(name: str) -> FileResponse:
    path = STATIC / name
    if STATIC_NAME.fullmatch(name) is None or not path.is_file():
        raise ApiError(404, f"no such file: {name}" if STATIC_NAME.fullmatch(name) else "not found")
    return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "no-cache"})


@router.get("/")
def page() -> FileResponse:
    return _static_file("index.html")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    return _static_file(name)


@router.get("/api/info")
def get_info(studio: StudioDep) -> dict[str, Any]:
    return info(studio)


# ------------------------------------------------------------------ images

@router.post("/api/uploads")
async def upload(request: Request, studio: StudioDep) -> JSONResponse:
    kind = _content_type(request)
    if not any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in UPLOAD_TYPES):
        raise ApiError(400, "send the image's bytes as the body, with Content-Type: application/octet-stream")
    name = _display_name(request.headers.get("x-filename"))
    limit = studio.max_upload_bytes
    too_large = f"{name or 'the upload'} is over the upload limit of {limit / 1e6:g} MB"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_large)
    with studio.library.upload_temporary() as temporary:
        size = 0
        with open(temporary, "wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, too_large)
                handle.write(chunk)
        if size == 0:
            raise ApiError(400, "the upload is empty")
        stored = await run_in_threadpool(studio.library.store_upload, temporary, name)
    return JSONResponse(stored)


@router.get("/api/uploads/{upload_id}")
def get_upload(upload_id: str, studio: StudioDep) -> FileResponse:
    path = studio.library.upload_path(upload_id)
    if path is None:
        raise ApiError(404, "no such upload")
    return FileResponse(path, media_type=media_type(path), headers=CACHE_A_DAY)


@router.get("/api/samples/{name}")
def get_sample(name: str) -> FileResponse:
    path = sample_file(name.removesuffix(".jpg"))
    if path is None:
        raise ApiError(404, "no such sample")
    return FileResponse(path, media_type=media_type(path), headers=CACHE_A_DAY)


# ------------------------------------------------------------------ jobs

@router.post("/api/jobs")
async def post_job(request: Request, studio: StudioDep) -> JSONResponse:
    body = await _json_body(request)
    job = await run_in_threadpool(build_job, studio.library, body, studio.device, studio.fast)
    return JSONResponse(await run_in_threadpool(studio.worker.submit, job))


@router.post("/api/sweeps")
async def post_sweep(request: Request, studio: StudioDep) -> JSONResponse:
    body = await _json_body(request)
    job = await run_in_threadpool(build_sweep, studio.library, body, studio.device, studio.fast)
    return JSONResponse(await run_in_threadpool(studio.worker.submit, job))


@router.post("/api/jobs/{run_id}/stop")
def stop_job(run_id: str, studio: StudioDep) -> dict[str, Any]:
    stopped = studio.worker.stop(_checked_id(run_id))
    if stopped is not None:
        return stopped
    run = studio.library.read_run(run_id)
    if run is None:
        raise ApiError(404, "no such run")
    return without_history(run)  # already over: nothing to stop


@router.get("/api/jobs/{run_id}/frame")
def frame(run_id: str, studio: StudioDep) -> Response:
    latest = studio.worker.frame(_checked_id(run_id))
    if latest is None:
        raise ApiError(404, "no live frame")
    data, number = latest
    return Response(data, media_type="image/jpeg",
                    headers={"X-Frame": str(number), "Cache-Control": "no-store"})


async def _event_stream(studio: Studio, subscriber: Subscriber) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        while True:
            item = await subscriber.next(PING_S)
            if item is None:
                return
            kind, text = item
            yield ": ping\n\n" if kind == "ping" else f"event: {kind}\ndata: {text}\n\n"
    finally:
        studio.hub.unsubscribe(subscriber)


@router.get("/api/events")
async def events(studio: StudioDep) -> StreamingResponse:
    subscriber = Subscriber(asyncio.get_running_loop())
    studio.worker.subscribe(subscriber)
    return StreamingResponse(_event_stream(studio, subscriber), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ------------------------------------------------------------------ runs

@router.get("/api/runs")
def list_runs(studio: StudioDep) -> list[dict[str, Any]]:
    return [without_history(r) for r in studio.library.list_runs() if r.get("kind", "run") == "run"]


@router.get("/api/runs/{run_id}")
def get_run(run_id: str, studio: StudioDep) -> dict[str, Any]:
    return _run_or_404(studio, run_id)


@router.get("/api/runs/{run_id}/image")
def run_image(run_id: str, studio: StudioDep, download: int = 0) -> FileResponse:
    path = studio.library.image_path(_checked_id(run_id))
    if path is None:
        raise ApiError(404, "this run has no image")
    if download:
        return FileResponse(path, media_type="image/png", filename=f"nst-{run_id}.png")
    return FileResponse(path, media_type="image/png", headers=CACHE_A_DAY)


@router.delete("/api/runs/{run_id}")
def delete_run(run_id: str, studio: StudioDep) -> dict[str, Any]:
    _run_or_404(studio, run_id)
    if studio.worker.active(run_id):
        raise ApiError(409, "this run is queued or running: stop it first")
    studio.library.delete_run(run_id)
    return {"deleted": run_id}


# ------------------------------------------------------------------ studies

@router.get("/api/studies")
def list_studies(studio: StudioDep) -> list[dict[str, Any]]:
    return studio.library.list_studies()


@router.get("/studies/{name}/{path:path}")
def study_file(name: str, path: str, studio: StudioDep) -> FileResponse:
    found = studio.library.study_file(name, path)
    if found is None:
        raise ApiError(404, "no such study file")
    return FileResponse(found, media_type=media_type(found), headers={"Cache-Control": "no-cache"})
