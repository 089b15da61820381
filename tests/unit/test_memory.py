"""The memory plan (nst.core.memory): every scale's peak, known before anything
is allocated, and the levers that keep it within --max-memory."""

from __future__ import annotations

import pytest

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
