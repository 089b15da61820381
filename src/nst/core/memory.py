"""The memory plan: every scale's peak memory, estimated from sizes alone, and
the levers that keep it within a budget, chosen before anything is allocated.

Torch-free. At one scale of W x H pixels (B images at once) the process holds:

- itself: Python, torch and the decoded VGG19 weights (PROCESS_BYTES);
- what autograd keeps for the backward pass (`saved_bytes`, exact to a few per
  cent: every ReLU output, pooling indices, the float32 features the losses
  keep), and the backward's own transients, which grow with it (BACKWARD_FACTOR);
- the content targets, in the network's arithmetic;
- the optimizer's image-sized float32 vectors: a few working ones and, for
  L-BFGS, two per remembered step.

The levers, in the order the plan pulls them:
- tiles: on a CPU, above WHOLE_PIXELS the network runs tile by tile (tiles.py: the
  same numbers), which is faster there and stops its share growing with the
  image; larger or smaller tiles where memory needs them (on a GPU only then);
- history: with --history-size auto, L-BFGS remembers as many steps as the
  budget allows, at most HISTORY_CAP and never fewer than MIN_HISTORY.
bf16 activations come with the precision (the CPU default where it is native).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nst.config import Config
from nst.core.geometry import MARGIN, Scale, halo, min_side, poolings_before, size_to_fit, used_layers
from nst.errors import NstError
from nst.layers import CONV_CHANNELS, LAYERS, POOL_AFTER, parse_layers

MIB = 1 << 20
GIB = 1 << 30
# The interpreter, torch, the weights and fixed buffers: a 32 px run peaked at 275 MB in
# one install and 360 MB in a fresh one of the same versions (CI's), on the same machine.
PROCESS_BYTES = 400 * MIB
BACKWARD_FACTOR = 1.4  # peak network bytes per byte autograd saves (see module doc)
WORKING_VECTORS = 12  # image-sized vectors the optimizer and the objective hold besides the history
HISTORY_CAP = 100  # what --history-size auto remembers when memory allows (the old default)
MIN_HISTORY = 5  # fewer remembered steps and L-BFGS loses its curvature estimate
# On a CPU, scales larger than WHOLE_PIXELS run tile by tile in windows of about
# TILE_PIXELS: that is faster as well as smaller, as the tensors of a window stay in
# the caches and the heap instead of fresh pages from the system every step. On the
# 2-core Intel Xeon (AMX, bf16) a 2048x1536 step took 16.5 s whole, 11.9 s in windows
# of 2**17 px (14.5 s at 2**18, 19.5 s at 2**20, 15.8 s at 2**16, where the halos
# cost more); at 1024 px tiles and whole were equally fast, at 512 px tiles 45%
# slower. A GPU runs whole unless memory asks for tiles.
WHOLE_PIXELS = 1 << 20
TILE_PIXELS = 1 << 17
MAX_HALO_SHARE = 1.5  # tiles for speed only where the windows are at most this much larger than the cores
MIN_CORE_SIDE = 64  # the smallest tile core the plan will use
# A tiled step's network holds this many times one window's forward and backward:
# the two passes, and the freed tensors of one tile that the allocator keeps for
# the next (measured: 0.54 GiB beyond the rest of this model for windows of 2**17 px at
# 2048 px, bf16).
TILED_FACTOR = 2.2
BUDGET_SHARE = 0.75  # the default --max-memory: this share of the RAM (or GPU memory)


def saved_bytes(width: int, height: int, content_layers: Sequence[str], style_layers: Sequence[str],
                precision: str) -> float:
    """What autograd keeps for one image's backward pass through the network
    (its input W x H plus the reflected margin), up to the deepest layer."""
    activation = 2 if precision == "bf16" else 4
    padded = (width + 2 * MARGIN) * (height + 2 * MARGIN)
    inside = width * height
    weighed = {LAYERS[name] for name in parse_layers([*content_layers, *style_layers])}
    content = {LAYERS[name] for name in parse_layers(list(content_layers))}
    depth = max(index for index, _ in weighed)
    total = 3.0 * activation * padded + 12 * inside  # the network's input, the image itself
    halvings = 0
    for index in range(1, depth + 1):
        channels, share = CONV_CHANNELS[index - 1], 4.0**-halvings
        if index < depth or (index, True) in weighed:
            total += channels * activation * padded * share  # the ReLU's output
        for after_relu in (False, True):
            # a weighed layer's float32 features (kept by its loss), and a content
            # layer's difference from its target
            layer = (index, after_relu)
            total += 4 * channels * inside * share * ((layer in weighed) + (layer in content))
        if index in POOL_AFTER and index < depth:
            total += channels * (8 + activation) * padded * share / 4  # indices (int64) and output
            halvings += 1
    return total


def network_bytes(width: int, height: int, config: Config) -> float:
    """Peak bytes of the network's forward and backward on one W x H input."""
    return BACKWARD_FACTOR * saved_bytes(width, height, _content_layers(config), _style_layers(config),
                                         config.precision or "fp32")


def target_bytes(width: int, height: int, config: Config) -> float:
    """The content targets of a W x H scale, kept in the network's arithmetic."""
    activation = 2 if config.precision == "bf16" else 4
    total = 0.0
    for name in _content_layers(config):
        index = LAYERS[name][0]
        total += CONV_CHANNELS[index - 1] * activation * width * height / 4.0 ** poolings_before(index)
    return total


def vector_bytes(width: int, height: int) -> int:
    """One image-sized float32 vector."""
    return 3 * width * height * 4


def _halo(config: Config) -> int:
    return halo(_layers(config))


@dataclass(frozen=True)
class ScalePlan:
    """One scale with the levers it runs with and its estimated peak."""

    scale: Scale
    history: int  # L-BFGS steps remembered (0 for Adam)
    tile_side: int | None  # the network runs tile by tile with cores of this side; None: whole
    peak_bytes: int


def scale_peak(config: Config, width: int, height: int, batch: int, history: int,
               tile_side: int | None) -> float:
    """The estimated peak of one scale with these levers."""
    if tile_side is None:
        network = network_bytes(width, height, config)
    else:
        window = min(tile_side + 2 * _halo(config), max(width, height) + 2 * MARGIN) - 2 * MARGIN
        padded = vector_bytes(width + 2 * MARGIN, height + 2 * MARGIN)  # the input, and its gradient
        network = TILED_FACTOR * network_bytes(window, window, config) + 2 * padded
    vectors = (WORKING_VECTORS + 2 * history) * vector_bytes(width, height)
    return PROCESS_BYTES + batch * (network + vectors + target_bytes(width, height, config))


def core_side(config: Config, window_pixels: int) -> int:
    """The core side of tiles whose windows hold about `window_pixels` px (at
    least four halos wide, so the halo does not dominate), in whole pooling cells."""
    border, cell = _halo(config), min_side(_layers(config))
    side = max(math.isqrt(window_pixels) - 2 * border, 4 * border, MIN_CORE_SIDE)
    return side // cell * cell


def _levers(config: Config, scale: Scale, device_type: str) -> list[int | None]:
    """The tile sides to try for a scale, fastest first (None: the whole image)."""
    longest = max(scale.width, scale.height)
    padded = (scale.width + 2 * MARGIN) * (scale.height + 2 * MARGIN)
    fast = core_side(config, TILE_PIXELS)
    pays = ((fast + 2 * _halo(config)) / fast) ** 2 <= MAX_HALO_SHARE
    options: list[int | None] = []
    if device_type == "cpu" and padded > WHOLE_PIXELS and pays and fast < longest:
        options.append(fast)
    options.append(None)
    cell = min_side(_layers(config))  # tiles start on whole pooling cells
    side = core_side(config, WHOLE_PIXELS)  # for memory alone: large tiles, then smaller
    while side >= MIN_CORE_SIDE:
        if side < longest and side not in options:
            options.append(side)
        side = side // 2 // cell * cell
    return options


def plan_scale(config: Config, scale: Scale, budget: float, batch: int = 1,
               device_type: str = "cpu") -> ScalePlan | None:
    """The fastest levers that keep this scale within `budget` bytes, or None:
    tiles (fastest first) with the whole history, else the tiles that leave room
    for the longest history (--history-size auto), down to MIN_HISTORY."""
    width, height = scale.width, scale.height
    lbfgs = config.optimizer == "lbfgs"
    most = min(config.history_size or HISTORY_CAP, max(1, scale.steps - 1)) if lbfgs else 0
    fewest = most if config.history_size is not None or not lbfgs else min(most, MIN_HISTORY)

    def plan(history: int, tile_side: int | None) -> ScalePlan:
        peak = scale_peak(config, width, height, batch, history, tile_side)
        return ScalePlan(scale, history, tile_side, round(peak))

    options = _levers(config, scale, device_type)
    for tile_side in options:
        if scale_peak(config, width, height, batch, most, tile_side) <= budget:
            return plan(most, tile_side)
    # Nothing fits with the whole history: the levers that leave room for the most.
    pair = 2 * batch * vector_bytes(width, height)
    room = [((budget - scale_peak(config, width, height, batch, 0, side)) // pair, side) for side in options]
    spare, tile_side = max(room, key=lambda option: option[0])
    history = int(min(most, spare))
    return plan(history, tile_side) if history >= fewest else None


def plan_run(config: Config, scales: Sequence[Scale], budget: float, batch: int = 1,
             device_type: str = "cpu") -> tuple[ScalePlan, ...]:
    """Every scale's plan, coarse to fine; NstError, naming the largest output
    that fits, when a scale fits no way within `budget`."""
    plans = [plan_scale(config, scale, budget, batch, device_type) for scale in scales]
    for index, plan in enumerate(plans, 1):
        if plan is None:
            raise NstError(_refusal(config, scales, index, budget, batch, device_type))
    return tuple(plan for plan in plans if plan is not None)


def _refusal(config: Config, scales: Sequence[Scale], index: int, budget: float, batch: int,
             device_type: str) -> str:
    """One line: what scale `index` needs at least, and the largest output that fits
    (every scale shrunk in proportion)."""
    scale = scales[index - 1]
    history = 0 if config.optimizer != "lbfgs" else config.history_size or MIN_HISTORY
    tile_side = MIN_CORE_SIDE if scale.side > MIN_CORE_SIDE else None
    need = scale_peak(config, scale.width, scale.height, batch, history, tile_side)
    finest = scales[-1].side

    def fits(side: int) -> bool:
        shrunk = [Scale(*size_to_fit(one.width, one.height, max(1, one.side * side // finest)), one.steps)
                  for one in scales]
        return all(plan_scale(config, one, budget, batch, device_type) is not None for one in shrunk)

    low, high = 0, finest
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    where = f" (scale {index} of {len(scales)})" if len(scales) > 1 else ""
    images = f" for {batch} images at once" if batch > 1 else ""
    fixed = f" with --history-size {config.history_size}" if config.history_size and history else ""
    advice = f"the largest --size that fits is {low}" if low else "raise --max-memory"
    return (f"{scale.width}x{scale.height}{where}{images} needs at least {need / GIB:.2f} GiB{fixed}, over "
            f"the memory budget of {budget / GIB:.2f} GiB (--max-memory): {advice}")


# The fast path (no autograd): the largest layer's input and output, and the
# allocator's freed blocks of the one before, at the widest full-resolution layer:
# VGG19's first block (64 channels, in the network's arithmetic) or the decoder's
# last (its width, float32); plus the image-sized tensors (content, padded, output).
# Against VmHWM (AMD EPYC, one thread, relu4_1 width-32 decoder, 4:3 images): fp32
# 552 / 1772 / 4188 MiB measured at 512 / 1536 / 2560 px, 558 / 1818 / 4338 estimated;
# bf16 560 / 1371 / 3161 measured; 3 bytes per activation (autocast keeps a bf16 copy
# beside each float32 input) estimates 522 / 1494 / 3438.
FAST_LAYER_FACTOR = 3.0
FAST_VECTORS = 6
FAST_ENCODER_CHANNELS = CONV_CHANNELS[0]
FAST_BF16_BYTES = 3


def fast_peak(width: int, height: int, precision: str, decoder_width: int, factor: int = 8) -> float:
    """The estimated peak of one fast pass (encode, transform, decode) at W x H."""
    padded = (width + -width % factor) * (height + -height % factor)
    activation = FAST_BF16_BYTES if precision == "bf16" else 4
    layer = max(FAST_ENCODER_CHANNELS * activation, decoder_width * 4) * padded
    return PROCESS_BYTES + FAST_LAYER_FACTOR * layer + FAST_VECTORS * vector_bytes(width, height)


def check_fast(sizes: Sequence[tuple[int, int]], precision: str, decoder_width: int, budget: float,
               factor: int = 8) -> int:
    """The estimated peak in bytes of a fast run whose images (the canvas first, then
    each style: each goes through the encoder alone) have these sizes; NstError,
    naming the largest --size that fits (every image shrunk in proportion), when it
    is over `budget`."""
    def peak(side: int) -> float:
        finest = max(sizes[0])
        return max(fast_peak(*size_to_fit(w, h, max(1, max(w, h) * side // finest)), precision,
                             decoder_width, factor) for w, h in sizes)

    finest = max(sizes[0])
    need = peak(finest)
    if need <= budget:
        return round(need)
    low, high = 0, finest
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if peak(middle) <= budget else (low, middle - 1)
    width, height = sizes[0]
    advice = f"the largest --size that fits is {low}" if low else "raise --max-memory"
    raise NstError(f"{width}x{height} with --method fast needs about {need / GIB:.2f} GiB, over the memory "
                   f"budget of {budget / GIB:.2f} GiB (--max-memory): {advice}")


def gib(size: float) -> str:
    """'11.4 GiB', '730 MiB'."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / MIB:.0f} MiB"


def decode_bytes(width: int, height: int, stored_bytes: int, rotated: bool) -> float:
    """The peak of decoding one input image of width x height pixels as stored
    (files/images.load_image), with the process's own share: the pixels as Pillow
    holds them (`stored_bytes` a pixel: 1 for grey, palette and 1-bit images, 4 for
    RGB and every other multi-band mode, which Pillow pads to 32 bits), a second copy
    when an EXIF orientation turns it, and the RGB(A) copy nst converts it to (4
    bytes). The float tensors are made at the planned size, which the run's plan counts."""
    return PROCESS_BYTES + width * height * (stored_bytes * (2 if rotated else 1) + 4)


# ------------------------------------------------------------------ the budget


def physical_memory() -> int | None:
    """Bytes of RAM this process may use: the machine's, or its cgroup's limit
    if lower (a container, a `systemd-run -p MemoryMax=` or a batch job); None
    where neither can be read."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not every system names these
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def default_budget(device_type: str, device_memory: int | None = None) -> float:
    """The default --max-memory: BUDGET_SHARE of the GPU's memory (device_memory)
    or of the RAM; unlimited where it cannot be read."""
    total = device_memory if device_type != "cpu" else physical_memory()
    return BUDGET_SHARE * total if total else math.inf


def _content_layers(config: Config) -> tuple[str, ...]:
    """The layers whose features a content loss keeps."""
    return config.content_layers if config.task != "texture" and config.content_weight > 0 else ()


def _layers(config: Config) -> tuple[str, ...]:
    """Every layer the network computes."""
    return (*_content_layers(config), *_style_layers(config))


def _style_layers(config: Config) -> tuple[str, ...]:
    """The other layers the network computes (geometry.used_layers)."""
    used = used_layers(config, config.task != "texture", config.task != "reconstruct")
    return tuple(name for name in used if name not in _content_layers(config))
