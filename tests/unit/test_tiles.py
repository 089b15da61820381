"""Tile-by-tile computation (core/tiles.py) gives the whole-image numbers."""

from __future__ import annotations

import pytest
import torch

from nst import Config
from nst.core import memory
from nst.core.engine import balance_style_layers, build_objective, plan_tensors, stylize
from nst.core.features import extractor_for
from nst.core.geometry import Scale, halo
from nst.core.targets import style_statistics
from nst.core.tiles import image_tiles, layout, whole_features

# The engine, not the weights, is what these tests check: the tiny network (fakes.py).
pytestmark = pytest.mark.usefixtures("tiny_network")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_cores_partition_the_image_on_pooling_cells() -> None:
    layers = ("conv_1", "conv_5")  # two poolings: cells of 4 px
    tiles = layout(61 + 32, 90 + 32, 16, 24, layers)
    covered = torch.zeros(61 + 32, 90 + 32, dtype=torch.int32)
    for tile in tiles:
        top, bottom, left, right = tile.window
        assert top % 4 == 0 and left % 4 == 0 and bottom <= 93 and right <= 122
        core_top, core_bottom, core_left, core_right = tile.core
        # the halo round the core, wherever the window does not end at the input's edge
        assert core_top >= halo(layers) or top == 0
        assert right - left - core_right >= halo(layers) or right == 122
        covered[top + core_top : top + core_bottom, left + core_left : left + core_right] += 1
    assert bool((covered[16:-16, 16:-16] == 1).all()) and int(covered.sum()) == 61 * 90


@pytest.mark.parametrize("masked", [False, True])
def test_tiled_objective_and_gradient_equal_the_whole_image(masked: bool) -> None:
    torch.manual_seed(0)
    config = Config(tv_weight=1.0, precision="fp32").resolved("cpu")
    extractor = extractor_for(config)
    height, width = 53, 70
    styles = [torch.rand(1, 3, 40, 50), torch.rand(1, 3, 44, 44)] if masked else [torch.rand(1, 3, 40, 50)]
    masks = None
    if masked:
        masks = torch.zeros(2, 1, height, width)
        masks[0, :, :, :30] = 1
        masks[1] = 1 - masks[0]
    objective = build_objective(extractor, config, torch.rand(1, 3, height, width), styles, masks)
    image = torch.rand(2, 3, height, width, requires_grad=True)  # two images: a batch
    whole = objective.evaluate(image)
    whole_gradient, image.grad = image.grad, None
    tiles = image_tiles(extractor, image, 20)
    assert tiles is not None and len(tiles) == 12
    tiled = objective.evaluate(image, tiles)
    assert image.grad is not None
    for name, value in whole.items():
        assert _relative(tiled[name], value) < 1e-5, name
    assert _relative(image.grad, whole_gradient) < 1e-5
    without_autograd = objective.terms(image.detach(), tiles)
    assert _relative(without_autograd["total"], whole["total"]) < 1e-5


def test_tiled_meancov_equals_the_whole_image_in_float64() -> None:
    """The 2-Wasserstein loss is ill-conditioned in float32 (whole and tiled
    both differ from float64 by ~3e-3): compare in float64."""
    torch.manual_seed(1)
    config = Config(style_loss="meancov", precision="fp32").resolved("cpu")
    extractor = extractor_for(config).double()
    height, width = 60, 76
    objective = build_objective(extractor, config, torch.rand(1, 3, height, width, dtype=torch.float64),
                                [torch.rand(1, 3, 90, 100, dtype=torch.float64)])
    image = torch.rand(1, 3, height, width, dtype=torch.float64, requires_grad=True)
    whole = objective.evaluate(image)
    whole_gradient, image.grad = image.grad, None
    tiled = objective.evaluate(image, image_tiles(extractor, image, 24))
    assert image.grad is not None
    assert _relative(tiled["style"], whole["style"]) < 1e-9
    assert _relative(image.grad, whole_gradient) < 1e-7


def test_style_layers_are_balanced_alike_by_tiles() -> None:
    torch.manual_seed(4)
    config = Config(precision="fp32", normalize_gradients=True).resolved("cpu")
    extractor = extractor_for(config)
    content, image = torch.rand(1, 3, 61, 83), torch.rand(1, 3, 61, 83)
    whole = build_objective(extractor, config, content, [torch.rand(1, 3, 50, 50)])
    tiled = build_objective(extractor, config, content, [torch.rand(1, 3, 50, 50)])
    tiled.style_targets = whole.style_targets
    balance_style_layers(whole, image)
    balance_style_layers(tiled, image, image_tiles(extractor, image, 24))
    for layer, weight in whole.style_weights.items():
        assert tiled.style_weights[layer] == pytest.approx(weight, rel=1e-5)
    assert len(set(whole.style_weights.values())) == len(whole.style_weights)  # the balance did something


def test_targets_by_tiles_equal_the_whole_image() -> None:
    torch.manual_seed(2)
    config = Config(precision="fp32").resolved("cpu")
    extractor = extractor_for(config)
    image = torch.rand(1, 3, 67, 81)
    tiles = image_tiles(extractor, image, 16)
    assert tiles is not None
    whole = extractor(image)
    assembled = whole_features(extractor, image, tiles, ("conv_4", "conv_5"))
    for layer in ("conv_4", "conv_5"):
        assert _relative(assembled[layer], whole[layer]) < 1e-5
    for kind in ("gram", "meancov"):
        exact = style_statistics(extractor, [image], config.style_layers, kind)
        by_tiles = style_statistics(extractor, [image], config.style_layers, kind, tile_side=16)
        for layer, stats in exact.items():
            for tiled, value in zip(by_tiles[layer], stats, strict=True):
                # meancov: channel means summed in another order differ by a few 1e-4 in float32
                assert _relative(tiled, value) < (1e-5 if kind == "gram" else 1e-3), (kind, layer)


def test_a_run_in_tiles_follows_the_run_on_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU the plan tiles scales larger than WHOLE_PIXELS; with that made
    tiny, a small run goes tile by tile and ends where the whole-image run ends. In
    float64: tiles sum in another order, and over 10 L-BFGS steps float32's last bit
    grows to 1e-3 of the loss by a degree that depends on the CPU's kernels; float64's
    stays far below 1e-8, while a tile that saw the wrong pixels would be off by more."""
    torch.manual_seed(3)
    config = Config(size=144, steps=5, scales=2, start_size=96, seed=5, precision="fp32").resolved("cpu")
    extractor = extractor_for(config).double()
    content = torch.rand(1, 3, 108, 144, dtype=torch.float64)
    style = torch.rand(1, 3, 100, 100, dtype=torch.float64)
    whole = stylize(extractor, config, plan_tensors(extractor, config, content, [style]), content, content,
                    [style])
    monkeypatch.setattr(memory, "WHOLE_PIXELS", 60 * 60)
    monkeypatch.setattr(memory, "TILE_PIXELS", 60 * 60)
    monkeypatch.setattr(memory, "MAX_HALO_SHARE", 10.0)
    plans = memory.plan_run(config, [Scale(96, 72, 5), Scale(144, 108, 5)], 1e12)
    assert [plan.tile_side for plan in plans] == [80, 80]
    tiled = stylize(extractor, config, plan_tensors(extractor, config, content, [style]), content, content,
                    [style])
    assert tiled.losses["total"] == pytest.approx(whole.losses["total"], rel=1e-8)
    assert float((tiled.image - whole.image).abs().max()) < 1e-8
    assert whole.losses["total"] < whole.history[-2]["total"]  # the last scale (2 steps) did move
