"""The memory plan (nst.core.memory): every scale's peak, known before anything
is allocated, the levers that keep it within --max-memory, and `--dry-run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nst.cli import app as cli
from nst.config import Config


def test_dry_run_prints_every_scale_and_writes_nothing(
        tmp_path: Path, content_path: Path, style_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.png"
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(output), "--size", "3840",
                     "--dry-run", "--device", "cpu", "--max-memory", "16G"])
    assert code == 0 and not list(tmp_path.iterdir())
    printed = capsys.readouterr().out
    rows = [line.strip() for line in printed.splitlines() if line.strip().startswith("scale ")]
    assert len(rows) >= 8 and rows[-1].startswith(f"scale {len(rows)}/{len(rows)}: 3840x")
    assert "tiles of" in rows[-1] and "whole" in rows[0] and "memory budget 16.0 GiB" in printed
    assert "estimated peak" in printed


@pytest.mark.parametrize("value", ["12X", "0", "-3G"])
def test_a_bad_memory_size_is_refused_in_one_line(tmp_path: Path, content_path: Path, style_path: Path,
                                                  capsys: pytest.CaptureFixture[str], value: str) -> None:
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"),
                     f"--max-memory={value}"])
    assert code == 2
    error = capsys.readouterr().err
    assert "expected a memory size" in error and value in error and len(error.strip().splitlines()) == 1


def test_a_run_over_the_budget_is_refused_before_it_starts(
        tmp_path: Path, content_path: Path, style_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"),
                     "--size", "1024", "--max-memory", "300M", "--device", "cpu"])
    assert code == 2 and not list(tmp_path.iterdir())
    error = capsys.readouterr().err.strip()
    assert "over the memory budget of 0.29 GiB" in error and len(error.splitlines()) == 1


MEASURE = """
import json, sys
import torch
from nst import Config, run
from nst.core.device import memory_budget
from nst.core.memory import plan_run
size, steps, precision, budget = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
config = Config(size=size, steps=steps, scales=1, seed=0, precision=precision, device="cpu",
                max_memory=budget or None)
done = run(config, sys.argv[1], [sys.argv[2]])
plan = plan_run(done.request.config, done.request.sizes.scales,
                memory_budget(done.request.config.max_memory, torch.device("cpu")))
# This process's own high-water mark: ru_maxrss would count the parent's memory at fork.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"estimate": plan[-1].peak_bytes, "tiles": plan[-1].tile_side, "measured": peak * 1024}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
@pytest.mark.parametrize(("size", "steps", "precision", "budget_mib"),
                         [(384, 3, "fp32", 0), (256, 30, "fp32", 0), (320, 12, "bf16", 0),
                          (384, 6, "fp32", 600)])
def test_the_estimate_is_within_20_percent_of_the_measured_peak(
        content_path: Path, style_path: Path, size: int, steps: int, precision: str, budget_mib: int) -> None:
    """A run in a fresh process (its peak resident memory is the whole process's, as
    the estimate's), one scale: short and with a full L-BFGS history, fp32 and
    bf16, whole and (under a small budget) tile by tile."""
    if precision == "bf16" and Config().default_precision("cpu") != "bf16":
        pytest.skip("bf16 is emulated on this CPU")
    result = subprocess.run([sys.executable, "-c", MEASURE, str(content_path), str(style_path), str(size),
                             str(steps), precision, str(budget_mib << 20)],
                            capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["tiles"] is not None) == (budget_mib > 0)
    ratio = figures["estimate"] / figures["measured"]
    assert 0.8 <= ratio <= 1.2, (figures["estimate"] >> 20, figures["measured"] >> 20)
