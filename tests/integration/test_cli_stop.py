"""The command line as a process: SIGTERM, --threads refusals, what batch says.

SIGTERM used to end nst at once: no cleanup ran, the output folder's
`.nst-lock` stayed behind and the next run had to take it over. Now it ends
as Ctrl-C does: finished work kept, the lock released, exit status 143.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from nst.jobs.folders import LOCK_NAME
from nst.jobs.resume import read_record
from nst.samples import sample_path


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NST_THREADS"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _nst(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "nst", *map(str, args)]


def _photos(folder: Path) -> Path:
    folder.mkdir()
    for name in ("tubingen", "great_wave", "composition_vii"):
        shutil.copy(sample_path(name), folder / f"{name}.jpg")
    return folder


def _finished(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*.png") if not p.name.startswith("."))


def _stop(process: subprocess.Popen[str], out: Path, after_output: bool) -> tuple[int, str]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if (_finished(out) if after_output else (out / LOCK_NAME).exists()):
            break
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()[1]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.mark.parametrize("after_output", [True, False], ids=["after-an-output", "before-any"])
def test_sigterm_keeps_finished_work_releases_the_lock_and_exits_143(tmp_path: Path,
                                                                     after_output: bool) -> None:
    photos, out = _photos(tmp_path / "photos"), tmp_path / "out"
    process = subprocess.Popen(
        _nst("batch", photos, sample_path("starry_night"), "-o", out, "--size", "32", "--steps", "400",
             "--scales", "off", "--device", "cpu", "--seed", "0", "-q"),
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_environment())
    status, stderr = _stop(process, out, after_output)
    assert status == 143, stderr
    assert not (out / LOCK_NAME).exists(), "SIGTERM left the folder's lock behind"
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr
    finished = _finished(out)
    assert len(finished) < 3, "the batch ended before the signal: nothing was tested"
    if after_output:
        assert finished
    for path in finished:  # whole pictures, with their record: never half-written
        assert max(Image.open(path).size) == 32
        assert read_record(path)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME]


@pytest.mark.parametrize(("argv", "env"), [(["--threads", "0"], {}), (["--threads", "x"], {}),
                                           ([], {"NST_THREADS": "-1"}), ([], {"NST_THREADS": "many"})])
def test_a_bad_thread_count_is_one_line_and_status_2(tmp_path: Path, argv: list[str],
                                                     env: dict[str, str]) -> None:
    done = subprocess.run(
        _nst("transfer", sample_path("tubingen"), sample_path("starry_night"), "-o", tmp_path / "never.png",
             "--dry-run", *argv),
        capture_output=True, text=True, timeout=120, env=_environment(**env))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "thread" in done.stderr.lower(), done.stderr
    assert "unrecognized" not in done.stderr and "at least 1" in done.stderr, done.stderr


def test_threads_set_torch_s_thread_count(tmp_path: Path) -> None:
    probe = ("import torch, nst.cli.commands as c\n"
             "c.HANDLERS['transfer'] = lambda args: print('threads', torch.get_num_threads()) or 0\n"
             "from nst.cli import main\n"
             "argv = ['transfer', 'a.png', 'b.png', '-o', 'x.png'] + __import__('sys').argv[1:]\n"
             "raise SystemExit(main(argv))")
    flag = subprocess.run([sys.executable, "-c", probe, "--threads", "1"], capture_output=True, text=True,
                          timeout=120, env=_environment(OMP_NUM_THREADS="2"))
    assert flag.returncode == 0 and "threads 1" in flag.stdout, flag.stderr
    variable = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                              env=_environment(OMP_NUM_THREADS="2", NST_THREADS="1"))
    assert variable.returncode == 0 and "threads 1" in variable.stdout, variable.stderr


def test_batch_says_once_that_small_inputs_are_upscaled(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, size in enumerate([(48, 32), (40, 40), (96, 64)]):
        Image.new("RGB", size, (40 * index, 90, 160)).save(photos / f"p{index}.png")
    done = subprocess.run(
        _nst("batch", photos, sample_path("starry_night"), "-o", tmp_path / "out", "--size", "64",
             "--steps", "2", "--scales", "off", "--device", "cpu"),
        capture_output=True, text=True, timeout=300, env=_environment())
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("2 inputs smaller than --size 64 are upscaled") == 1, done.stderr
    # The stray line was an empty bar ("batch: 0image"); a rate such as "10.30image/s" is fine.
    assert not re.search(r"\b0image", done.stderr), "the batch bar was drawn before it knew its images"
    assert "styled 3 image(s)" in done.stderr


def test_a_refused_batch_prints_one_line(tmp_path: Path) -> None:
    argv = _nst("batch", tmp_path / "missing", sample_path("starry_night"), "-o", tmp_path / "o")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_environment())
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"nst: error: input folder not found: {tmp_path / 'missing'}"]
