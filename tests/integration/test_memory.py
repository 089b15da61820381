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
from nst.core import memory
from nst.core.geometry import Scale, scale_schedule
from nst.errors import NstError

GIB = 1 << 30
DEFAULT = Config(precision="bf16", steps=300, size=2048)
LAYERS = DEFAULT.content_layers + DEFAULT.style_layers


def test_autograd_memory_is_linear_in_pixels_and_halved_by_bf16_activations() -> None:
    def saved(width: int, height: int, precision: str, layers: tuple[str, ...] = LAYERS) -> float:
        return memory.saved_bytes(width, height, DEFAULT.content_layers, layers, precision)

    # Without the fixed margin, four times the pixels keep four times the tensors.
    margin = 2 * memory.MARGIN
    assert saved(2048 - margin, 1536 - margin, "fp32") == pytest.approx(
        4 * saved(1024 - margin, 768 - margin, "fp32"), rel=0.02)
    assert saved(1024, 768, "bf16") < 0.8 * saved(1024, 768, "fp32")
    assert saved(1024, 768, "fp32", (*LAYERS, "relu5_1")) > saved(1024, 768, "fp32")  # a deeper network


def test_large_scales_run_in_tiles_and_the_history_shrinks_to_the_budget() -> None:
    fine = Scale(2048, 1536, 25)
    roomy = memory.plan_scale(DEFAULT, fine, 64 * GIB)
    assert roomy is not None and roomy.tile_side is not None and roomy.history == 24
    # A little less memory: smaller tiles first, the whole history kept.
    smaller = memory.plan_scale(DEFAULT, fine, roomy.peak_bytes - 1)
    assert smaller is not None and smaller.history == 24 and smaller.tile_side is not None
    assert smaller.tile_side < roomy.tile_side and smaller.tile_side % 4 == 0
    # Less than the smallest tiles need with it: a shorter history.
    tight = memory.plan_scale(DEFAULT, fine, smaller.peak_bytes - 10 * memory.vector_bytes(2048, 1536))
    assert tight is not None and memory.MIN_HISTORY <= tight.history < roomy.history
    assert tight.peak_bytes < smaller.peak_bytes
    small = memory.plan_scale(DEFAULT, Scale(512, 384, 50), 64 * GIB)
    assert small is not None and small.tile_side is None and small.history == 49
    # An explicit history is kept, or the scale does not fit.
    fixed = DEFAULT.replace(history_size=20)
    assert memory.plan_scale(fixed, fine, 64 * GIB).history == 20  # type: ignore[union-attr]
    least = min(memory.scale_peak(fixed, 2048, 1536, 1, 20, side) for side in (None, 984, 492, 244, 120, 320))
    assert memory.plan_scale(fixed, fine, least) is not None
    assert memory.plan_scale(fixed, fine, least - 1) is None
    adam = memory.plan_scale(Config(optimizer="adam", precision="bf16"), fine, 64 * GIB)
    assert adam is not None and adam.history == 0


def test_a_size_that_fits_no_way_is_refused_naming_the_largest_that_does() -> None:
    config = DEFAULT.replace(size=6000)
    scales = scale_schedule(6000, 4500, 128, 300, None)
    refusal = (r"^\d+x\d+ \(scale \d+ of 13\) needs at least [\d.]+ GiB, over the memory budget of "
               r"1\.00 GiB \(--max-memory\): the largest --size that fits is (\d+)$")
    with pytest.raises(NstError, match=refusal) as refused:
        memory.plan_run(config, scales, 1 * GIB)
    largest = int(str(refused.value).rsplit(" ", 1)[1])
    assert 1000 < largest < 6000
    assert memory.plan_run(config, scale_schedule(largest, largest * 3 // 4, 128, 300, None), 1 * GIB)
    with pytest.raises(NstError, match="the largest"):
        larger = largest + 100
        memory.plan_run(config, scale_schedule(larger, larger * 3 // 4, 128, 300, None), 1 * GIB)


def test_the_default_budget_is_a_share_of_this_machines_memory() -> None:
    physical = memory.physical_memory()
    assert physical is not None and physical > 0
    assert memory.default_budget("cpu") == pytest.approx(memory.BUDGET_SHARE * physical)
    assert memory.default_budget("cuda", 80 * GIB) == pytest.approx(memory.BUDGET_SHARE * 80 * GIB)


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
