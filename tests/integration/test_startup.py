"""The command line answers --help and refuses bad input without importing torch.

torch takes about a second to import; none of these needs it. Each case runs
`nst.cli.main` (the `nst` entry point) in a fresh interpreter and reports whether
torch ended up in sys.modules. Behaviour only, no timing: benchmarks/startup.py
measures the time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

COMMANDS = ("reconstruct", "texture", "transfer", "batch", "video", "demo", "sweep", "study", "serve",
            "train-decoder")
# Options that keep a run tiny, should a refusal ever fail to refuse.
TINY = ["--size", "16", "--steps", "1", "--device", "cpu", "--quiet"]

PROBE = """
import json, sys
from nst.cli import main
code = main(json.loads(sys.argv[1]))
sys.stdout.flush()
print("\\nnst-probe:" + json.dumps({"code": code, "torch": "torch" in sys.modules}), flush=True)
"""


def run_nst(args: list[str], cwd: Path) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps([str(a) for a in args])],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("nst-probe:")][-1]
    return json.loads(line.removeprefix("nst-probe:")), done


def test_top_level_help_lists_every_command_without_torch(tmp_path: Path) -> None:
    report, done = run_nst(["--help"], tmp_path)
    assert report["code"] == 0
    for command in COMMANDS:
        assert command in done.stdout
    assert not report["torch"], "nst --help imported torch"


def test_the_commands_here_are_all_the_commands(tmp_path: Path) -> None:
    report, done = run_nst(["--help"], tmp_path)
    usage = done.stdout.split("{", 1)[1].split("}", 1)[0]
    assert set(usage.split(",")) == set(COMMANDS), "a new command: add it to COMMANDS"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_does_not_import_torch(tmp_path: Path, command: str) -> None:
    report, done = run_nst([command, "--help"], tmp_path)
    assert report["code"] == 0
    assert done.stdout.startswith("usage: nst " + command)
    assert not report["torch"], f"nst {command} --help imported torch"


def test_version_does_not_import_torch(tmp_path: Path) -> None:
    report, done = run_nst(["--version"], tmp_path)
    assert report["code"] == 0 and "0." in done.stdout
    assert not report["torch"], "nst --version imported torch"


def test_missing_content_file_is_refused_without_torch(tmp_path: Path, style_path: Path) -> None:
    report, done = run_nst(["transfer", "missing.jpg", style_path, "-o", "out.png", *TINY], tmp_path)
    assert report["code"] == 2, done.stderr
    assert "missing.jpg" in done.stderr
    assert not (tmp_path / "out.png").exists()
    assert not report["torch"], "refusing a missing content file imported torch"


def test_output_equal_to_the_input_is_refused_without_torch(
    tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    photo = tmp_path / f"photo{content_path.suffix}"
    shutil.copyfile(content_path, photo)
    before = photo.read_bytes()
    report, done = run_nst(["transfer", photo.name, style_path, "-o", photo.name, *TINY], tmp_path)
    assert report["code"] == 2, f"writing over the content image was not refused: {done.stderr}"
    assert photo.read_bytes() == before
    assert not report["torch"], "refusing an output equal to the input imported torch"
