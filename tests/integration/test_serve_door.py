"""`nst serve`'s door: a busy port and an exposed host without a token are
refused in one line (exit 2) before anything is announced or bound, and the
studio names the device it computes on, never "auto"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

with warnings.catch_warnings():  # starlette's note on httpx's successor (a UserWarning)
    warnings.filterwarnings("ignore", message=".*httpx")
    from fastapi.testclient import TestClient  # noqa: E402

from nst.serve.app import create_app  # noqa: E402

ANNOUNCEMENT = "nst studio: http"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def nst_serve(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nst", "serve", *args], capture_output=True, text=True,
                          timeout=120, env=environment, stdin=subprocess.DEVNULL)


def test_a_busy_port_is_one_line_and_exit_2_before_any_announcement(busy_port: int, tmp_path: Path) -> None:
    library = tmp_path / "library"
    done = nst_serve("--port", str(busy_port), "--library", str(library))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{busy_port}" in lines[0]
    assert "Traceback" not in done.stderr
    assert ANNOUNCEMENT not in done.stdout and ANNOUNCEMENT not in done.stderr
    assert not library.exists()  # refused before the studio touched its library


def test_an_exposed_host_without_a_token_is_only_refused(busy_port: int, tmp_path: Path) -> None:
    # The port is held on loopback, so even a server that tried to bind 0.0.0.0
    # here would fail rather than listen on every address.
    done = nst_serve("--host", "0.0.0.0", "--port", str(busy_port), "--library", str(tmp_path / "library"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--token" in lines[0] and "0.0.0.0" in lines[0]
    assert "warning" not in done.stderr
    assert ANNOUNCEMENT not in done.stdout and ANNOUNCEMENT not in done.stderr


def test_info_names_the_device_auto_resolves_to(tmp_path: Path) -> None:
    import torch  # noqa: PLC0415

    from nst.core.device import select_device  # noqa: PLC0415

    expected = select_device("auto")
    with TestClient(create_app(tmp_path / "library", device="auto")) as client:
        info = client.get("/api/info").json()
    assert info["device"] != "auto"
    reported = torch.device(info["device"])
    assert reported.type == expected.type
    if expected.type == "cuda":
        index = expected.index if expected.index is not None else torch.cuda.current_device()
        assert reported.index == index
        assert info["device_name"] == torch.cuda.get_device_name(reported)
    else:
        assert info["device"] == expected.type


def test_an_unknown_device_is_refused_when_the_studio_is_made(tmp_path: Path) -> None:
    from nst.errors import NstError  # noqa: PLC0415

    with pytest.raises(NstError, match="unknown device"):
        create_app(tmp_path / "library", device="toaster")
