"""A cluster that cannot be reached: `--cluster ray://127.0.0.1:1` (nothing listens
on port 1, so the connection is refused at once; nothing leaves 127.0.0.1) fails
in one line naming the address, exit 2, long before Ray's own retries would give
up (30 s and more), and leaves no output behind: not the batch's output folder,
not the study's, not the video's work folder. An address that accepts the TCP
connection but never answers as Ray (a proxy, a tunnel with nothing behind it)
gives up within --cluster-timeout, not after Ray Client's 30 s of retries.

No timing is asserted: the commands must end well inside a generous subprocess
timeout (Ray's retries alone would overrun it); the README's figure is measured.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from clips import sliding_frames
from clusterkit import skip_or_fail
from nst.files.frames import write_clip

ADDRESS = "ray://127.0.0.1:1"
TIMEOUT_S = 30  # Ray's client alone retries for 30 s (5 + 10 + 15) before it gives up


@pytest.fixture(autouse=True)
def _ray_installed() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        skip_or_fail("ray is not installed (pip install 'nst[ray]')")


def _nst(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nst", *args], capture_output=True, text=True,
                          timeout=TIMEOUT_S, cwd=cwd)


def _refused(done: subprocess.CompletedProcess[str]) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr  # no Ray warnings, no progress bar
    assert ADDRESS in lines[0] and lines[0].startswith("nst: error: cannot reach"), lines[0]


@pytest.fixture
def style(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    Image.new("RGB", (16, 16), (20, 40, 200)).save(path)
    return path


def test_a_batch_on_an_unreachable_cluster_fails_at_once_and_writes_nothing(tmp_path: Path,
                                                                           style: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (16, 16), (200, 40, 20)).save(photos / "a.png")
    output = tmp_path / "out"
    _refused(_nst("batch", str(photos), str(style), "-o", str(output), "--size", "16", "--steps", "1",
                  "--device", "cpu", "--cluster", ADDRESS, cwd=tmp_path))
    assert not output.exists()


def test_a_video_on_an_unreachable_cluster_fails_at_once_and_writes_nothing(tmp_path: Path,
                                                                           style: Path) -> None:
    clip = write_clip(sliding_frames(count=2), tmp_path / "in.gif", Fraction(10))
    output = tmp_path / "out.gif"
    _refused(_nst("video", str(clip), str(style), "-o", str(output), "--size", "16", "--steps", "1",
                  "--device", "cpu", "--cluster", ADDRESS, cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gif", "style.png"]


def test_a_study_on_an_unreachable_cluster_fails_at_once_and_writes_nothing(tmp_path: Path,
                                                                           style: Path) -> None:
    content = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), (200, 40, 20)).save(content)
    output = tmp_path / "sweep"
    _refused(_nst("sweep", "params", "--content", str(content), "--style", str(style), "-o", str(output),
                  "--param", "style_weight=1e5,1e6", "--size", "16", "--steps", "1", "--device", "cpu",
                  "--cluster", ADDRESS, cwd=tmp_path))
    assert not output.exists()


def test_an_address_that_accepts_but_never_answers_gives_up_within_the_timeout(tmp_path: Path,
                                                                             style: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (16, 16), (200, 40, 20)).save(photos / "a.png")
    output = tmp_path / "out"
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nothing ever answers
        address = f"ray://127.0.0.1:{silent.getsockname()[1]}"
        done = _nst("batch", str(photos), str(style), "-o", str(output), "--device", "cpu",
                    "--cluster", address, "--cluster-timeout", "3", cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert address in lines[0] and lines[0].startswith("nst: error: cannot reach"), lines[0]
    assert not output.exists()
