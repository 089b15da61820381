"""`nst serve`: the studio's command-line options; the server itself is nst.serve.

Registering the command imports neither fastapi nor torch, so `nst --help` stays fast
and a missing extra is reported in one line when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from nst.config import Config
from nst.errors import NstError

DEFAULT_PORT = 8765


def default_library() -> Path:
    """Where the studio keeps its runs: $XDG_DATA_HOME/nst/studio, else ~/.local/share/nst/studio."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nst" / "studio"


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="the studio: a live, interactive page in your browser",
                                description="Start the nst studio at http://HOST:PORT (it opens nothing).")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only); any other "
                       "address needs --token")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    serve.add_argument("--token", help="a secret every request must carry (required off loopback)")
    serve.add_argument("--library", type=Path, default=None,
                       help=f"where runs are kept (default: {default_library()})")
    serve.add_argument("--device", help="the device every job runs on: auto, cpu, cuda, cuda:N or mps "
                       f"(default: {Config().device})")
    serve.add_argument("--decoder", type=Path, default=None,
                       help="the fast path's decoder (.safetensors, made by nst train-decoder) for the "
                       "page's 'fast' choices (default: the one nst ships; without one they are off)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args: argparse.Namespace) -> int:
    exposed = not is_loopback(args.host)
    if exposed and not args.token:
        raise NstError(f"--host {args.host} would make the studio reachable from other machines: "
                       "give --token SECRET as well (every request must then carry it)")
    if not 0 < args.port < 65536:
        raise NstError(f"port must be between 1 and 65535, got {args.port}")
    try:
        from nst.serve.app import address, create_app, listening_socket, serve  # noqa: PLC0415
    except ImportError as error:
        missing = error.name or "a package"
        raise NstError(f"nst serve needs the serve extra: pip install 'nst[serve]' ({missing} is missing)") \
            from None
    # The port first: a busy one is refused before the library is touched or anything announced.
    sock = listening_socket(args.host, args.port)
    with contextlib.closing(sock):
        library = args.library or default_library()
        app = create_app(library, token=args.token, device=args.device or Config().device,
                         decoder=args.decoder)
        if exposed:
            print(f"nst: warning: serving on {args.host} makes the studio reachable from other machines",
                  file=sys.stderr)
        print(f"nst studio: http://{address(args.host, args.port)}/ (library {library}; Ctrl-C stops it)",
              file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the studio is meant to stop
            serve(app, sock)
    print("nst studio stopped; runs are kept in the library", file=sys.stderr)
    return 0
