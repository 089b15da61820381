"""The benchmark runs at tiny size and prints its table (its figures live in the README)."""

import subprocess
import sys
from pathlib import Path

from nst.samples import sample_path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


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
    table = lines[lines.index(header) + 1: lines.index(header) + 5]
    rows = {line.split()[0]: line.split()[1:] for line in table}
    assert set(rows) == {"nst", "pastiche", "bare", "ratio"}
    assert float(rows["nst"][0]) > 0 and float(rows["pastiche"][3]) > 0
    assert "vs bare forward+backward" in done.stdout


def test_quality_mode_reports_time_to_pastiches_loss():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "48", "--steps", "2", "--repeats", "1", "--device", "cpu",
         "--quality", "--quality-steps", "3", "--nst-steps", "20", "--start-size", "32",
         "--content", str(sample_path("tubingen")), "--style", str(sample_path("starry_night"))],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "quality: pastiche reaches loss" in done.stdout
    assert "quality: nst (coarse-to-fine from 32 px) reaches it in" in done.stdout or \
        "quality: nst did not reach it" in done.stdout
