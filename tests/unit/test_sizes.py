"""Sizes before pixels: the smallest side each layer needs, the coarse-to-fine
scales that respect it, and the plan of every size a run will allocate."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nst import Config, NstError
from nst.core.engine import plan_tensors, stylize
from nst.core.features import build_extractor, extractor_for
from nst.core.geometry import (
    Scale,
    SizePlan,
    deepest_layer,
    min_side,
    plan_sizes,
    scale_schedule,
    used_layers,
)

# The engine, not the weights, is what these tests check: the tiny network (fakes.py).
pytestmark = pytest.mark.usefixtures("tiny_network")

SRC = Path(__file__).resolve().parents[2] / "src"


def _config(**changes):
    """A resolved config (size and steps set) without asking the CPU about bf16."""
    base = {"size": 64, "steps": 12, "device": "cpu", "precision": "fp32", "seed": 0}
    return Config(**{**base, **changes}).resolved("cpu")


# --- the side each layer needs ------------------------------------------------

@pytest.mark.parametrize(
    ("layers", "side"),
    [(["conv_1"], 1), (["relu_2"], 1), (["conv_3"], 2), (["conv_4"], 2), (["conv_5"], 4),
     (["conv_8"], 4), (["relu3_1"], 4), (["conv_9"], 8), (["conv_12"], 8), (["conv_13"], 16),
     (["conv_16"], 16), (["conv_1", "relu5_1"], 16), ([], 1), ("conv_1-conv_5", 4)],
)
def test_min_side_per_layer(layers, side):
    assert min_side(layers) == side


@pytest.mark.parametrize("layer", ["conv_3", "conv_5", "conv_9", "conv_13"])
def test_min_side_is_where_the_deepest_layer_comes_down_to_one_pixel(layer):
    """The network itself runs on any side (its poolings round up, its padding falls back
    to replication at 1 px); min_side is where the layer's map reaches a single pixel
    from whole pooling windows: smaller images are refused rather than computed on less."""
    extractor = build_extractor([layer])
    side = min_side([layer])
    with torch.no_grad():
        assert extractor(torch.rand(1, 3, side, 3 * side))[layer].shape[-2:] == (1, 3)
        assert extractor(torch.rand(1, 3, 2 * side, 3 * side))[layer].shape[-2:] == (2, 3)
        assert extractor(torch.rand(1, 3, 1, 3 * side))[layer].shape[-2] == 1  # runs, no crash


def test_deepest_layer_names_the_need():
    assert deepest_layer(["conv_1", "relu4_2", "conv_3"]) == "relu_10"
    assert deepest_layer([]) == ""


# --- the schedule -----------------------------------------------------------------

def test_ordinary_schedules_are_unchanged():
    # The sizes and steps of the engine's former schedule (the demo: 625 steps).
    assert scale_schedule(384, 256, 128, 300, None, 4, "conv_5") == [
        Scale(128, 85, 300), Scale(168, 112, 150), Scale(222, 148, 75), Scale(292, 195, 50),
        Scale(384, 256, 50),
    ]
    assert scale_schedule(96, 64, 48, 12, None) == [Scale(48, 32, 12), Scale(68, 45, 6), Scale(96, 64, 3)]
    assert scale_schedule(300, 200, 128, 40, 1) == [Scale(300, 200, 40)]


def test_a_coarse_scale_too_thin_for_the_layers_is_raised_and_merged():
    # 400x4 from 128 px: the scales 128..362 would be 1-4 px high; conv_5 needs 4.
    schedule = scale_schedule(400, 4, 128, 300, None, 4, "conv_5")
    assert schedule == [Scale(350, 4, 300), Scale(400, 4, 50)]
    tall = scale_schedule(40, 2000, 128, 300, None, 16, "conv_13")
    assert [min(s.width, s.height) for s in tall] == [16, 20, 28, 40]
    assert all(a.side < b.side for a, b in zip(tall, tall[1:], strict=False))
    assert tall[0].steps == 300 and tall[-1] == Scale(40, 2000, 50)


def test_a_canvas_too_small_for_the_layers_is_refused_in_one_line():
    with pytest.raises(NstError) as error:
        scale_schedule(400, 4, 128, 300, None, 16, "conv_16")
    message = str(error.value)
    assert "400x4 px" in message and "conv_16 needs a side of at least 16 px" in message
    assert "--size" in message and "\n" not in message


# --- the plan ---------------------------------------------------------------------

def test_plan_of_a_transfer():
    plan = plan_sizes(_config(style_size=48), (1000, 500), [(300, 600), (640, 480)])
    assert plan == SizePlan((64, 32), tuple(plan.scales), ((24, 48), (48, 36)))
    assert plan.scales[-1] == Scale(64, 32, plan.scales[-1].steps)


@pytest.mark.parametrize(
    ("changes", "canvas"),
    [({}, (64, 32)), ({"width": 100}, (100, 50)), ({"height": 40}, (80, 40)),
     ({"width": 30, "height": 70}, (30, 70))],
)
def test_plan_of_a_texture_follows_width_and_height(changes, canvas):
    config = _config(task="texture", content_layers=(), **changes)
    assert plan_sizes(config, None, [(200, 100)]).canvas == canvas


def test_plan_refuses_too_many_pixels_before_anything_is_decoded():
    with pytest.raises(NstError, match=r"output: 64x32 is 2,048 pixels, over the limit of 2,000 \(raise"):
        plan_sizes(_config(max_pixels=2000), (1000, 500), [(10, 10)])
    with pytest.raises(NstError, match=r"style 1 at 80 px: 80x80 is 6,400 pixels.*--max-pixels"):
        plan_sizes(_config(style_size=80, max_pixels=5000), (1000, 500), [(10, 10)])


def test_plan_refuses_a_thin_canvas_and_a_thin_style_naming_them():
    with pytest.raises(NstError, match=r"the output would be 64x2 px; conv_5 needs a side of at least 4"):
        plan_sizes(_config(), (3200, 100), [(50, 50)])
    with pytest.raises(NstError, match=r"style 2 would be 64x3 px; conv_5 needs a side of at least 4 px"):
        plan_sizes(_config(), (100, 100), [(50, 50), (640, 30)])
    # A texture weighs only its style layers: conv_1 takes a 1 px strip.
    strip = _config(task="texture", content_layers=(), style_layers=("conv_1",), width=64, height=1)
    assert plan_sizes(strip, None, [(50, 50)]).canvas == (64, 1)


def test_a_style_thin_at_coarse_scales_raises_them():
    # The style is 64x8 for the full 64 px canvas: at the 16 and 23 px scales it
    # would be 16x2 and 23x3; from 28 px on it keeps the 4 px conv_5 needs.
    plan = plan_sizes(_config(start_size=16, steps=8), (64, 64), [(64, 8)])
    assert [scale.side for scale in plan.scales] == [28, 32, 45, 64]
    assert [scale.steps for scale in plan.scales] == [8, 2, 1, 1]


def test_the_engine_runs_the_planned_scales_on_thin_images():
    # Before: the 16 px scale made the 64x6 canvas 16x2 and conv_5 failed in torch.
    config = _config(start_size=16, steps=2, content_layers=("conv_1",), style_layers=("conv_1", "conv_5"))
    canvas, style = torch.rand(1, 3, 6, 64), torch.rand(1, 3, 8, 64)
    plan = plan_sizes(config.replace(style_size=64), (64, 6), [(64, 8)])
    events = []
    extractor = extractor_for(config)
    stylize(extractor, config, plan_tensors(extractor, config, canvas, [style]), canvas, canvas, [style],
            on_step=events.append)
    shapes = [tuple(e.image.shape[-2:]) for e in events if e.step == 1]
    assert shapes == [(scale.height, scale.width) for scale in plan.scales]
    assert min(min(shape) for shape in shapes) >= 4


def test_the_network_runs_only_the_layers_the_run_weighs():
    texture = _config(task="texture", style_layers=("conv_1", "conv_2"), content_weight=0.0)
    assert used_layers(texture, False, True) == ("conv_1", "conv_2")  # conv_4 (content) is not run
    assert extractor_for(texture).depth == 2
    reconstruct = _config(task="reconstruct", content_layers=("conv_3",), style_weight=0.0)
    assert extractor_for(reconstruct).depth == 3


def test_geometry_and_image_checks_import_without_torch():
    # The package's own __init__ loads the runner; stand in for it to see what
    # these two modules pull in themselves.
    code = (
        "import sys, types\n"
        f"package = types.ModuleType('nst'); package.__path__ = [{str(SRC / 'nst')!r}]\n"
        "sys.modules['nst'] = package\n"
        "import nst.core.geometry\n"
        "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))\n"
        "import nst.files.images\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "[]"]
