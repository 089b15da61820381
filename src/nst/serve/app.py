"""The studio's HTTP application (FastAPI): the page, the API, the event stream.

`create_app(library, token, device)` is all `nst serve` needs; docs/studio.md
describes every route. Everything a user sent comes back as JSON data (never
as markup), every file served is found through library.py's checked names,
and with a token every request needs it.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from nst.config import COLOR_MODES, INIT_KINDS, OPTIMIZERS, POOLINGS, PRECISIONS, STYLE_LOSSES, TASKS, Config
from nst.errors import NstError
from nst.layers import CANONICAL_LAYERS
from nst.plans.sweeps import SWEEPABLE
from nst.serve.library import Library, is_run_id, sample_file, sample_names, without_history
from nst.serve.worker import WEIGHTS, Hub, Subscriber, Worker, build_job, build_sweep, task_config
from nst.version import __version__

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
STATIC = Path(__file__).parent / "static"
STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.(?:html|css|js|png|svg|ico|woff2)")
PING_S = 15.0
COOKIE = "nst_studio_token"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".json": "application/json",
               ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".svg": "image/svg+xml",
               ".ico": "image/x-icon", ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
UPLOAD_TYPES = ("application/octet-stream", "image/")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def _loopback_host(host: str) -> bool:
    """Whether a Host header names this machine (a page reached through another
    name could be a DNS-rebinding attack on a studio without a token)."""
    name = urlsplit(f"//{host}").hostname or ""
    if name in ("localhost", "testserver") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Guard:
    """Every request: the token (when there is one), else a loopback Host; and a
    request that changes something must come from the studio's own origin.
    Adds headers that keep the token out of Referer and stop type sniffing."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal, set_cookie = self._check(scope, headers)
        if refusal is not None:
            if scope["type"] == "http":
                await refusal(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if set_cookie:
                    cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    extra.append((b"set-cookie", cookie.encode("latin-1")))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[Response | None, bool]:
        host = headers.get("host", "")
        set_cookie = False
        if self.token is None:
            if not _loopback_host(host):
                return error(403, f"the studio answers on this machine's addresses only, not {host!r}; "
                             "serve with --host and --token to reach it from elsewhere"), False
        else:
            given = self._tokens(scope, headers)
            if not any(hmac.compare_digest(value.encode(), self.token.encode()) for _, value in given):
                return error(401, "this studio needs its token: open the address nst serve printed, "
                             "with ?token=..."), False
            set_cookie = any(where == "query" and hmac.compare_digest(value.encode(), self.token.encode())
                             for where, value in given)
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None \
                and (urlsplit(origin).netloc or origin) != host:
            return error(403, "requests that change the studio must come from its own page"), False
        return None, set_cookie

    @staticmethod
    def _tokens(scope: Scope, headers: dict[str, str]) -> list[tuple[str, str]]:
        found = []
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            found.append(("header", authorization[7:].strip()))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        found += [("query", value) for value in query.get("token", [])]
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return found
        if COOKIE in cookies:
            found.append(("cookie", cookies[COOKIE].value))
        return found


def _display_name(header: str | None) -> str:
    """The file name the page sent (shown only): percent-decoded, its last part, no control characters."""
    name = unquote(header or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:200]


def info(device: str) -> dict[str, Any]:
    return {
        "version": __version__,
        "device": device,
        "defaults": Config().to_dict(),
        "task_defaults": {task: task_config(task).to_dict() for task in TASKS},
        "samples": sample_names(),
        "options": {"task": list(TASKS), "optimizer": list(OPTIMIZERS), "pooling": list(POOLINGS),
                    "init": list(INIT_KINDS), "style_loss": list(STYLE_LOSSES),
                    "preserve_color": [None, *COLOR_MODES], "precision": [None, *PRECISIONS],
                    "weights": list(WEIGHTS),
                    "layers": [n for n in CANONICAL_LAYERS if n.startswith("conv_")],
                    "sweep_params": sorted([*SWEEPABLE, "content", "style"])},
        "max_upload_bytes": MAX_UPLOAD_BYTES,
    }


def create_app(library: Path, token: str | None = None, device: str = "auto",
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The studio over the library folder `library` (created if missing; runs a
    stopped server left queued or running are marked interrupted)."""
    store = Library(library)
    store.recover()
    hub = Hub()
    worker = Worker(store, device, hub)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        hub.close()
        await run_in_threadpool(worker.shutdown)

    app = FastAPI(title="nst studio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.library = store
    app.state.worker = worker
    app.state.hub = hub

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(NstError)
    async def nst_error(_: Request, exc: NstError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        return error(exc.status_code, "not found" if exc.status_code == 404 else message)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "; ".join(str(e.get("msg", e)) for e in exc.errors()) or "bad request")

    # -------------------------------------------------------- page

    def static_file(name: str) -> FileResponse:
        path = STATIC / name
        if STATIC_NAME.fullmatch(name) is None or not path.is_file():
            raise ApiError(404, f"no such file: {name}" if STATIC_NAME.fullmatch(name) else "not found")
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "no-cache"})

    @app.get("/")
    def page() -> FileResponse:
        return static_file("index.html")

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        return static_file(name)

    @app.get("/api/info")
    def get_info() -> dict[str, Any]:
        return {**info(device), "max_upload_bytes": max_upload_bytes}

    # -------------------------------------------------------- images

    @app.post("/api/uploads")
    async def upload(request: Request) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in UPLOAD_TYPES):
            raise ApiError(400, "send the image's bytes as the body, with Content-Type: "
                           "application/octet-stream")
        name = _display_name(request.headers.get("x-filename"))
        too_large = f"{name or 'the upload'} is over the upload limit of {max_upload_bytes / 1e6:g} MB"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_upload_bytes:
            raise ApiError(413, too_large)
        with store.upload_temporary() as temporary:
            size = 0
            with open(temporary, "wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_upload_bytes:
                        raise ApiError(413, too_large)
                    handle.write(chunk)
            if size == 0:
                raise ApiError(400, "the upload is empty")
            stored = await run_in_threadpool(store.store_upload, temporary, name)
        return JSONResponse(stored)

    @app.get("/api/uploads/{upload_id}")
    def get_upload(upload_id: str) -> FileResponse:
        path = store.upload_path(upload_id)
        if path is None:
            raise ApiError(404, "no such upload")
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/samples/{name}")
    def get_sample(name: str) -> FileResponse:
        path = sample_file(name.removesuffix(".jpg"))
        if path is None:
            raise ApiError(404, "no such sample")
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "max-age=86400"})

    # -------------------------------------------------------- jobs

    async def json_body(request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(400, "send a JSON body with Content-Type: application/json")
        try:
            return json.loads(await request.body())
        except ValueError as problem:
            raise ApiError(400, f"the body is not JSON: {problem}") from None

    @app.post("/api/jobs")
    async def post_job(request: Request) -> JSONResponse:
        body = await json_body(request)
        job = await run_in_threadpool(build_job, store, body, device)
        return JSONResponse(await run_in_threadpool(worker.submit, job))

    @app.post("/api/sweeps")
    async def post_sweep(request: Request) -> JSONResponse:
        body = await json_body(request)
        job = await run_in_threadpool(build_sweep, store, body, device)
        return JSONResponse(await run_in_threadpool(worker.submit, job))

    def checked_id(run_id: str) -> str:
        if not is_run_id(run_id):
            raise ApiError(404, "no such run")
        return run_id

    @app.post("/api/jobs/{run_id}/stop")
    def stop_job(run_id: str) -> dict[str, Any]:
        stopped = worker.stop(checked_id(run_id))
        if stopped is not None:
            return stopped
        run = store.read_run(run_id)
        if run is None:
            raise ApiError(404, "no such run")
        return without_history(run)  # already over: nothing to stop

    @app.get("/api/jobs/{run_id}/frame")
    def frame(run_id: str) -> Response:
        latest = worker.frame(checked_id(run_id))
        if latest is None:
            raise ApiError(404, "no live frame")
        data, number = latest
        return Response(data, media_type="image/jpeg",
                        headers={"X-Frame": str(number), "Cache-Control": "no-store"})

    @app.get("/api/events")
    async def events() -> StreamingResponse:
        subscriber = Subscriber(asyncio.get_running_loop())
        worker.subscribe(subscriber)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    item = await subscriber.next(PING_S)
                    if item is None:
                        return
                    kind, text = item
                    yield ": ping\n\n" if kind == "ping" else f"event: {kind}\ndata: {text}\n\n"
            finally:
                hub.unsubscribe(subscriber)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -------------------------------------------------------- runs

    def run_or_404(run_id: str) -> dict[str, Any]:
        run = worker.live(checked_id(run_id)) or store.read_run(run_id)
        if run is None:
            raise ApiError(404, "no such run")
        return run

    @app.get("/api/runs")
    def list_runs() -> list[dict[str, Any]]:
        return [without_history(r) for r in store.list_runs() if r.get("kind", "run") == "run"]

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str) -> dict[str, Any]:
        return run_or_404(run_id)

    @app.get("/api/runs/{run_id}/image")
    def run_image(run_id: str, download: int = 0) -> FileResponse:
        path = store.image_path(checked_id(run_id))
        if path is None:
            raise ApiError(404, "this run has no image")
        if download:
            return FileResponse(path, media_type="image/png", filename=f"nst-{run_id}.png")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @app.delete("/api/runs/{run_id}")
    def delete_run(run_id: str) -> dict[str, Any]:
        run_or_404(run_id)
        if worker.active(run_id):
            raise ApiError(409, "this run is queued or running: stop it first")
        store.delete_run(run_id)
        return {"deleted": run_id}

    # -------------------------------------------------------- studies

    @app.get("/api/studies")
    def list_studies() -> list[dict[str, Any]]:
        return store.list_studies()

    @app.get("/studies/{name}/{path:path}")
    def study_file(name: str, path: str) -> FileResponse:
        found = store.study_file(name, path)
        if found is None:
            raise ApiError(404, "no such study file")
        return FileResponse(found, media_type=media_type(found), headers={"Cache-Control": "no-cache"})

    app.add_middleware(Guard, token=token)
    return app


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run the studio with uvicorn until Ctrl-C. Open event streams end at once
    when the server is asked to stop (uvicorn would otherwise wait for every
    page to close), and the running job stops at the end of its step, marked
    interrupted."""
    import uvicorn  # noqa: PLC0415

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    handle_exit = server.handle_exit
    hub: Hub = app.state.hub

    def stop(sig: int, frame: Any) -> None:
        hub.close()
        handle_exit(sig, frame)

    server.handle_exit = stop  # type: ignore[method-assign]
    server.run()
