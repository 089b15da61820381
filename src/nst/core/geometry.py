"""The sizes of a run, worked out from image headers before any pixel is decoded:
the output canvas, the coarse-to-fine scales and the size of each style image.

Free of torch, numpy and PIL, so that the command line can refuse an impossible
size in a moment, before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nst.errors import NstError
from nst.layers import LAYERS, POOL_AFTER, parse_layers

if TYPE_CHECKING:
    from nst.config import Config

Size = tuple[int, int]  # (width, height) in pixels
# Pixels of reflection added round every image before the network (FeatureExtractor.pad): a
# whole pixel at the deepest layer's resolution (1/16). On a near reconstruction 16 and
# 32 px gave the same edges; each costs (W + 32)(H + 32) / WH of the compute.
MARGIN = 16
# Above this longest side a scale's steps fall with its size (see _refine_steps).
REFINE_SIDE = 2048
MIN_REFINE_STEPS = 10


def size_to_fit(width: int, height: int, longest: int) -> Size:
    """(width, height) scaled so the longest side is `longest`, aspect kept, each side >= 1."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink_size(width: int, height: int, factor: float) -> Size:
    """(width, height) scaled by `factor`, aspect kept: how a style image follows
    the canvas down to a coarse scale."""
    return size_to_fit(width, height, round(max(width, height) * factor))


def check_pixels(label: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image (input or output canvas) larger than the pixel limit."""
    if width * height > max_pixels:
        raise NstError(
            f"{label}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (raise it with --max-pixels)"
        )


# ------------------------------------------------------------------ layers


def _names(layers: Iterable[str]) -> tuple[str, ...]:
    return parse_layers(layers if isinstance(layers, str) else list(layers))


def min_side(layers: Iterable[str]) -> int:
    """The smallest input side (px) at which VGG19 computes every one of `layers`.

    Each 2x2 pooling before the deepest layer halves the side, so n poolings
    need a side of 2**n for the deepest layer to see more than a single pixel's
    worth of the image (the network itself would run on less: its poolings round
    up and its padding falls back from reflection to replication at 1 px).
    """
    deepest = max((LAYERS[name][0] for name in _names(layers)), default=1)
    return 1 << sum(1 for pool in POOL_AFTER if pool < deepest)


def poolings_before(index: int) -> int:
    """How many 2x2 poolings come before convolution `index` (1-based)."""
    return sum(1 for pool in POOL_AFTER if pool < index)


def halo(layers: Iterable[str]) -> int:
    """Input pixels a tile's window needs round its core (see tiles.py) so that no
    feature of the core, up to the deepest of `layers`, sees the window's edge:
    the receptive field's radius (each 3x3 convolution adds 2**n px after n
    poolings, each pooling 2**n), plus one pooling cell, in whole cells."""
    depth = max(LAYERS[name][0] for name in _names(layers))
    radius = sum(1 << poolings_before(index) for index in range(1, depth + 1))
    radius += sum(1 << poolings_before(pool) for pool in POOL_AFTER if pool < depth)
    cell = 1 << poolings_before(depth)
    return -(-(radius + cell) // cell) * cell


def deepest_layer(layers: Iterable[str]) -> str:
    """The canonical name of the deepest of `layers` ('' for none), for messages."""
    return max(_names(layers), key=lambda name: LAYERS[name][0], default="")


def used_layers(config: Config, content: bool, styles: bool) -> tuple[str, ...]:
    """The layers a run computes: the content layers when it has a content image
    and a content weight, the style layers when it has styles and a style weight.
    A run that weighs none (only TV, say) still runs the network on all it lists."""
    content_layers = config.content_layers if content and config.content_weight > 0 else ()
    style_layers = config.style_layers if styles and config.style_weight > 0 else ()
    return content_layers + style_layers or config.content_layers + config.style_layers


# ------------------------------------------------------------------ scales


@dataclass(frozen=True)
class Scale:
    """One scale of a coarse-to-fine run: the image size and its iterations."""

    width: int
    height: int
    steps: int

    @property
    def side(self) -> int:
        return max(self.width, self.height)

    @property
    def step_cost(self) -> int:
        """What a step costs, counted in pixels (events.ScheduledScale; the engine's
        schedule counts the margin too: engine.schedule_work)."""
        return self.width * self.height


def _sides(longest: int, start_size: int, steps: int, scales: int | None) -> list[tuple[int, int]]:
    """(longest side, iterations) per scale, coarsest first.

    The sides grow geometrically from `start_size` to `longest`, by about sqrt(2)
    per scale unless `scales` fixes their number (1: a single scale). The
    coarsest scale gets `steps` iterations, each finer one half of the one
    before but at least a sixth of `steps`: coarse iterations are cheap and fix
    the large structure, fine ones only add detail to an upsampled, nearly
    converged image.
    """
    if scales is None:
        ratio = longest / start_size
        scales = 1 if ratio <= 1 else 1 + math.ceil(math.log(ratio) / math.log(math.sqrt(2)) - 1e-9)
    if scales <= 1 or start_size >= longest:
        return [(longest, steps)]
    sides = [round(start_size * (longest / start_size) ** (index / (scales - 1))) for index in range(scales)]
    floor = max(1, steps // 6)
    return [(side, _refine_steps(side, max(floor, steps >> index))) for index, side in enumerate(sides)]


def _refine_steps(side: int, steps: int) -> int:
    """Steps of a scale whose longest side is `side`: above REFINE_SIDE they fall
    with the pixels (a scale twice as large gets a quarter: each scale takes about
    the time of one at REFINE_SIDE), never below MIN_REFINE_STEPS. There the image
    is upsampled from a nearly finished one and the steps sharpen detail. (At 2048
    px, halving the last scale's 50 steps left a 6% higher loss: not below it.)"""
    if side <= REFINE_SIDE:
        return steps
    return max(min(steps, MIN_REFINE_STEPS), round(steps * (REFINE_SIDE / side) ** 2))


def _smallest(fits: Callable[[int], bool], most: int) -> int:
    """The smallest side in 1..most for which `fits` holds, given that it holds
    at `most` and keeps holding as the side grows."""
    low, high = 1, most
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _canvas_floor(width: int, height: int, need: int, layer: str) -> int:
    """The smallest longest side at which the canvas keeps a short side of `need` px."""
    if min(width, height) < need:
        raise NstError(
            f"the output would be {width}x{height} px; {layer or 'the deepest layer'} needs a side of "
            f"at least {need} px: raise --size (or --width/--height) or use shallower layers"
        )
    return _smallest(lambda side: min(size_to_fit(width, height, side)) >= need, max(width, height))


def _style_floor(longest: int, style: Size, need: int, index: int, layer: str) -> int:
    """The smallest canvas longest side at which style `index`, shrunk with the
    canvas, keeps a short side of `need` px."""
    if min(style) < need:
        raise NstError(
            f"style {index} would be {style[0]}x{style[1]} px; {layer or 'the deepest layer'} needs a "
            f"side of at least {need} px: raise --style-size (or --size) or use shallower layers"
        )
    return _smallest(lambda side: min(shrink_size(*style, side / longest)) >= need, longest)


def _grown(width: int, height: int, sides: list[tuple[int, int]], floor: int) -> list[Scale]:
    """Raise every side below `floor` to it, then drop each scale not smaller than
    the next (the schedule keeps growing); the coarsest left keeps the coarsest
    step count."""
    raised = [(max(side, floor), steps) for side, steps in sides]
    kept = [scale for index, scale in enumerate(raised)
            if index == len(raised) - 1 or scale[0] < raised[index + 1][0]]
    kept[0] = (kept[0][0], sides[0][1])
    return [Scale(*size_to_fit(width, height, side), steps) for side, steps in kept]


def scale_schedule(
    width: int,
    height: int,
    start_size: int,
    steps: int,
    scales: int | None,
    min_side: int = 1,
    layer: str = "",
) -> list[Scale]:
    """The scales of a coarse-to-fine run on a width x height canvas, coarsest first
    (see _sides). A scale whose short side would be below `min_side` is raised to
    the smallest size that has it; `layer` (the deepest layer) names the need in
    the NstError raised when the canvas itself is too small."""
    floor = _canvas_floor(width, height, min_side, layer)
    return _grown(width, height, _sides(max(width, height), start_size, steps, scales), floor)


def run_scales(
    config: Config, width: int, height: int, styles: Sequence[Size], layers: Iterable[str]
) -> list[Scale]:
    """The scales of a resolved config's run on a width x height canvas whose
    network computes `layers`. Each style (its size for the full canvas) shrinks
    with the canvas and passes the same network, so a scale is also raised until
    every style keeps the side the network needs (styles only pass it when the
    run weighs style layers)."""
    assert config.steps is not None, "resolve the config first"
    need, layer = min_side(layers), deepest_layer(layers)
    floor = _canvas_floor(width, height, need, layer)
    weighed = config.style_weight > 0 and config.style_layers
    for index, style in enumerate(styles if weighed else (), 1):
        floor = max(floor, _style_floor(max(width, height), style, need, index, layer))
    return _grown(width, height, _sides(max(width, height), config.start_size, config.steps, config.scales),
                  floor)


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class SizePlan:
    """Every size a run will allocate: the output canvas, its scales and each
    style image at the style size (for the full canvas)."""

    canvas: Size
    scales: tuple[Scale, ...]
    styles: tuple[Size, ...]


def texture_size(config: Config, style: Size) -> Size:
    """A texture's canvas: --width/--height if given (one alone keeps the style's
    aspect), else the style's aspect at --size."""
    assert config.size is not None, "resolve the config first"
    aspect = style[0] / style[1]
    if config.width and config.height:
        return config.width, config.height
    if config.width:
        return config.width, max(1, round(config.width / aspect))
    if config.height:
        return max(1, round(config.height * aspect)), config.height
    return size_to_fit(*style, config.size)


def plan_sizes(config: Config, content: Size | None, styles: Sequence[Size]) -> SizePlan:
    """The sizes of a run of a resolved config (size and steps set), from the
    (width, height) of its content image (None for a texture) and of each style
    image as they will be seen. Refuses, in one line, a canvas or style over
    config.max_pixels and one too small for the network (see run_scales)."""
    assert config.size is not None, "resolve the config first"
    if content is not None:
        canvas = size_to_fit(*content, config.size)
    elif styles:
        canvas = texture_size(config, styles[0])
    else:
        raise NstError(f"{config.task} needs a content image or a style image")
    check_pixels("output", *canvas, config.max_pixels)
    style_side = config.style_size or config.size
    style_sizes = tuple(size_to_fit(*style, style_side) for style in styles)
    for index, size in enumerate(style_sizes, 1):
        check_pixels(f"style {index} at {style_side} px", *size, config.max_pixels)
    layers = used_layers(config, content is not None, bool(styles))
    scales = run_scales(config, *canvas, style_sizes, layers)
    return SizePlan(canvas, tuple(scales), style_sizes)
