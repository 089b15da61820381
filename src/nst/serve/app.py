"""The studio's HTTP application (FastAPI): the guard, the app, the socket, the server.

`listening_socket(host, port)`, `create_app(library, token, device)` and
`serve(app, socket)` are all `nst serve` needs; the routes are routes.py's
named handlers, and docs/studio.md describes every one. Everything a user sent
comes back as JSON data (never as markup), every file served is found through
library.py's checked names, and with a token every request needs it.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from nst.core.device import select_device
from nst.errors import NstError
from nst.serve.hub import Hub
from nst.serve.jobs import fast_path
from nst.serve.library import Library
from nst.serve.routes import MAX_UPLOAD_BYTES, ApiError, Studio, error, router
from nst.serve.worker import Worker
from nst.version import __version__

COOKIE = "nst_studio_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


# ------------------------------------------------------------------ errors as JSON

async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error(exc.status, exc.message)


async def _nst_error(_: Request, exc: NstError) -> JSONResponse:
    return error(400, str(exc))


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "error"
    return error(exc.status_code, "not found" if exc.status_code == 404 else message)


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    return error(500, f"internal error: {type(exc).__name__}: {exc}")


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error(400, "; ".join(str(e.get("msg", e)) for e in exc.errors()) or "bad request")


# ------------------------------------------------------------------ the app

def device_in_use(name: str) -> tuple[str, str | None]:
    """What --device NAME is on this machine ('cpu', 'cuda:N' or 'mps') and a
    GPU's name: the studio shows these, never 'auto'. Loads torch, which the
    page's first request would need anyway; an unknown device is an NstError."""
    device = select_device(name)
    if device.type != "cuda":
        return device.type, None
    import torch  # noqa: PLC0415  (importing nst.serve loads no torch)

    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index}", torch.cuda.get_device_name(index)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    studio: Studio = app.state.studio
    studio.hub.close()
    await run_in_threadpool(studio.worker.shutdown)


def create_app(library: Path, token: str | None = None, device: str = "auto",
               max_upload_bytes: int = MAX_UPLOAD_BYTES, decoder: Path | None = None) -> FastAPI:
    """The studio over the library folder `library` (created if missing; runs a
    stopped server left queued or running are marked interrupted), computing on
    `device` (checked first, so a bad one leaves the library untouched); the fast
    path decodes with `decoder` (default: the one nst ships; without one the page's
    fast choices are off)."""
    in_use, device_name = device_in_use(device)
    fast = fast_path(decoder)
    store = Library(library)
    store.recover()
    hub = Hub()
    worker = Worker(store, device, hub)
    app = FastAPI(title="nst studio", version=__version__, lifespan=_lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.studio = Studio(library=store, worker=worker, hub=hub, device=device, device_in_use=in_use,
                              device_name=device_name, max_upload_bytes=max_upload_bytes, fast=fast)
    app.state.library = store
    app.state.worker = worker
    app.state.hub = hub
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(NstError)(_nst_error)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(Exception)(_internal_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.include_router(router)
    app.add_middleware(Guard, token=token)
    return app


# ------------------------------------------------------------------ the socket and the server

def address(host: str, port: int) -> str:
    """host:port as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening, or one NstError naming them:
    nst serve announces the studio only once its address is surely its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restarted studio need not wait out the old one's TIME_WAIT
        # (a port some program still listens on stays refused).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError as problem:
        sock.close()
        if problem.errno == errno.EADDRINUSE:
            reason = "something else is listening there; choose another --port"
        else:
            reason = str(problem.strerror or problem).lower()
        raise NstError(f"cannot listen on {address(host, port)}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Run the studio with uvicorn on the listening `sock` until Ctrl-C. Open
    event streams end at once when the server is asked to stop (uvicorn would
    otherwise wait for every page to close), and the running job stops at the
    end of its step, marked interrupted."""
    import uvicorn  # noqa: PLC0415

    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    handle_exit = server.handle_exit
    hub: Hub = app.state.hub

    def stop(sig: int, frame: Any) -> None:
        hub.close()
        handle_exit(sig, frame)

    server.handle_exit = stop  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
