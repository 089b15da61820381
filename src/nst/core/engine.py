"""The optimization: initialization, the optimizer loop, one planned scale, and
the coarse-to-fine run over a plan's scales.

The engine never prints and never touches files: it reports through a callback.
What to optimize comes as an Objective (objective.py); how many steps, how long
a history and which tiles each scale uses come from its memory plan
(memory.ScalePlan, made once by the request), never from a rewritten Config.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nst.config import Config
from nst.core.device import plan_on
from nst.core.features import FeatureExtractor
from nst.core.geometry import MARGIN, Scale, run_scales, shrink_size
from nst.core.lbfgs import BatchLBFGS
from nst.core.losses import range_penalties
from nst.core.memory import HISTORY_CAP, ScalePlan
from nst.core.objective import Objective, balance_style_layers, build_objective
from nst.core.tiles import Tile, image_tiles
from nst.errors import NstError, NstRuntimeError
from nst.events import Result, ScaleWork, StepCallback, StepEvent

__all__ = ["Objective", "Settings", "balance_style_layers", "build_objective", "init_image", "optimize",
           "optimize_planned", "plan_tensors", "resize_image", "stylize"]

# Noise lives in the network's normalized input space (a standard normal there),
# which in RGB [0, 1] is the ImageNet mean plus std-scaled Gaussian noise.
NOISE_MEAN = (0.485, 0.456, 0.406)
NOISE_STD = (0.229, 0.224, 0.225)

# L-BFGS keeps the image in [0, 1] through a soft penalty rather than clamping
# after each step: a clamp corrupts its curvature pairs, and in our measurements
# (tubingen + starry_night, 192 px, 200 steps) doubled the final loss (35.5 vs
# 16.4). Adam tolerates clamping (a projected gradient step) and uses it.
# The penalty's weight follows the objective it guards: RANGE_PENALTY_PER_LOSS
# times each image's loss at the scale's start, at most RANGE_PENALTY_WEIGHT (the
# fixed weight it had). A wall far stiffer than the objective's own curvature
# dominates L-BFGS's curvature pairs and so its step scale: a conv_1
# reconstruction (loss 1.3 at the start) under 1e4 kept a 2-px checkerboard of
# its noise (mean |2x2 difference| 0.25 against the photo's 0.03 at 64 px, 100
# steps); under 13 it reached 0.08 and a loss 3000 times lower. A 192 px transfer
# (100 steps; scales starting at losses 186, 28 and 38) ended at 17.37 against
# 17.45 under 1e4.
RANGE_PENALTY_WEIGHT = 1e4
RANGE_PENALTY_PER_LOSS = 10.0


@dataclass(frozen=True)
class Settings:
    """How the optimizer steps: the same at every scale of a run (each scale's
    steps, history and tiles come from its plan)."""

    optimizer: str = "lbfgs"
    learning_rate: float = 1.0
    ema_decay: float = 0.0  # Adam: the moving average of its iterates (0: none)
    balance_layers: bool = False  # rescale the style layers to pull equally (balance_style_layers)

    @classmethod
    def of(cls, config: Config) -> Settings:
        return cls(config.optimizer, config.learning_rate or 1.0, config.ema_decay,
                   config.normalize_gradients)


def noise_like(image: Tensor, seed: int | None) -> Tensor:
    """Noise of `image`'s shape: a standard normal in the network's normalized
    space. Drawn on the CPU so a seed gives the same noise on every device."""
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else torch.seed())
    normal = torch.randn(image.shape, generator=generator).to(image.device)
    mean = torch.tensor(NOISE_MEAN, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(NOISE_STD, device=image.device).view(1, 3, 1, 1)
    return mean + std * normal


def init_image(kind: str, content: Tensor, alpha: float, seed: int | None) -> Tensor:
    """The start image, (1, 3, H, W) in [0, 1], shaped like `content`.

    blend: noise * alpha + content * (1 - alpha) (alpha=0 is the content, 1 is noise).
    """
    if kind == "content":
        return content.clone()
    if kind == "noise":
        alpha = 1.0
    elif kind != "blend":
        raise NstError(f"unknown init {kind!r}; expected content, noise, blend or an image path")
    return (noise_like(content, seed) * alpha + content * (1 - alpha)).clamp(0, 1)


def _make_optimizer(settings: Settings, image: Tensor, steps: int, history: int | None
                    ) -> torch.optim.Optimizer | BatchLBFGS:
    if settings.optimizer == "adam":
        return torch.optim.Adam([image], lr=settings.learning_rate)  # elementwise: images stay independent
    # One evaluation per step (no line search): we drive the iterations ourselves so
    # that every one is reported and checked. One curvature history per image.
    # A run of n steps makes n - 1 pairs: a longer history would only hold memory.
    kept = min(history or HISTORY_CAP, max(1, steps - 1))
    return BatchLBFGS(image, lr=settings.learning_rate, history_size=kept)


class _Evaluation:
    """The closure the optimizer calls: the objective's terms of each image (kept
    in `last`) and their gradient in image.grad; with `penalize` (L-BFGS) also the
    range penalty, weighted per image from its first loss (see RANGE_PENALTY_*)."""

    def __init__(self, objective: Objective, image: Tensor, optimizer: torch.optim.Optimizer | BatchLBFGS,
                 tiles: list[Tile] | None, penalize: bool) -> None:
        self.objective, self.image, self.optimizer, self.tiles = objective, image, optimizer, tiles
        self.penalize = penalize
        self.wall: Tensor | None = None  # (B,) the penalty's weight per image
        self.last: dict[str, Tensor] = {}

    def __call__(self) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.objective.evaluate(self.image, self.tiles)
        loss = terms["total"].sum()
        if self.penalize:
            if self.wall is None:
                self.wall = (RANGE_PENALTY_PER_LOSS * terms["total"].detach()).clamp(0, RANGE_PENALTY_WEIGHT)
            penalty = (self.wall * range_penalties(self.image)).sum()
            torch.autograd.backward(penalty)
            loss = loss + penalty.detach()
        self.last = terms
        return loss


class _BestIterate:
    """L-BFGS's best evaluated iterate per image, kept on the device: choosing it
    needs no readback."""

    def __init__(self, image: Tensor) -> None:
        self.total = torch.full((image.shape[0],), math.inf, device=image.device)
        self.image = image.detach().clone()
        self.terms: dict[str, Tensor] = {}

    def offer(self, image: Tensor, terms: Mapping[str, Tensor]) -> None:
        better = terms["total"] < self.total
        self.total = torch.where(better, terms["total"], self.total)
        self.image = torch.where(better.view(-1, 1, 1, 1), image, self.image)
        self.terms = {name: torch.where(better, value, self.terms.get(name, value))
                      for name, value in terms.items()}

    def better_of(self, output: Tensor, final: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Per image, the best evaluated iterate if it beat `output` (whose terms are `final`)."""
        keep = self.total < final["total"]
        image = torch.where(keep.view(-1, 1, 1, 1), self.image.clamp(0, 1), output)
        return image, {name: torch.where(keep, self.terms[name], value) for name, value in final.items()}


def optimize(
    objective: Objective,
    start: Tensor,
    settings: Settings,
    steps: int,
    history: int | None = None,
    tiles: list[Tile] | None = None,
    on_step: StepCallback | None = None,
    scale: int = 0,
) -> Result:
    """Run `steps` iterations from `start` (B, 3, H, W) in [0, 1], L-BFGS keeping
    `history` pairs (default: as many as the steps make, at most HISTORY_CAP), the
    network tile by tile if `tiles` are given (tiles.py: the same numbers).

    The B images are optimized together but independently: each follows the
    path it would follow alone. Events and `Result.losses` give the mean over
    the images; `Result.image_losses` each image's final terms.
    The result is always a valid image in [0, 1] (see RANGE_PENALTY_WEIGHT).
    L-BFGS returns, per image, the best iterate it evaluated: without a line
    search a step can overshoot, and a late spike must not spoil the output.
    Adam returns the exponential moving average of its iterates
    (settings.ema_decay), which averages out the jitter of its fixed step size.
    Raises NstRuntimeError if the loss becomes NaN or infinite.
    """
    image = start.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    optimizer = _make_optimizer(settings, image, steps, history)
    use_lbfgs = settings.optimizer == "lbfgs"
    average = IterateAverage(settings.ema_decay) if not use_lbfgs and settings.ema_decay > 0 else None
    best = _BestIterate(image) if use_lbfgs else None
    evaluate = _Evaluation(objective, image, optimizer, tiles, use_lbfgs)
    losses_so_far: list[dict[str, float]] = []
    started = time.perf_counter()
    for step in range(1, steps + 1):
        if isinstance(optimizer, BatchLBFGS):
            evaluated = image.detach().clone()  # L-BFGS evaluates the image before it moves it
            optimizer.step(evaluate)
            if best is not None:
                best.offer(evaluated, evaluate.last)
        else:  # Adam needs one gradient per step: evaluate, then step
            evaluate()
            optimizer.step()
            with torch.no_grad():
                image.clamp_(0, 1)
        if average is not None:
            average.update(image.detach())
        # The one device-to-host copy of the step: every term, for the report.
        losses = _mean_terms(evaluate.last)
        if not math.isfinite(losses["total"]):
            raise NstRuntimeError(
                f"the optimization diverged at step {step} (loss {losses['total']}); "
                "try a lower --learning-rate or smaller weights"
            )
        losses_so_far.append(losses)
        if on_step is not None:
            shown = average.value if average is not None else image.detach()
            on_step(StepEvent(step, steps, losses, time.perf_counter() - started, shown, scale))
    output = average.value if average is not None else image.detach().clamp(0, 1)
    final = objective.terms(output, tiles)
    if best is not None:
        output, final = best.better_of(output, final)
    return Result(output.cpu(), _mean_terms(final), time.perf_counter() - started, steps, losses_so_far,
                  _per_image_terms(final))


def optimize_planned(objective: Objective, start: Tensor, settings: Settings, plan: ScalePlan,
                     on_step: StepCallback | None = None, scale: int = 0) -> Result:
    """`optimize` one scale with the levers its memory plan chose: its steps, its
    L-BFGS history and its tiles (the style layers balanced first if asked)."""
    tiles = image_tiles(objective.extractor, start, plan.tile_side)
    if settings.balance_layers:
        balance_style_layers(objective, start, tiles)
    return optimize(objective, start, settings, plan.scale.steps, max(1, plan.history), tiles, on_step, scale)


def _per_image_terms(terms: Mapping[str, Tensor]) -> list[dict[str, float]]:
    """(B,)-shaped terms -> one dict of floats per image (one readback)."""
    columns = torch.stack(list(terms.values())).tolist()
    return [dict(zip(terms, values, strict=True)) for values in zip(*columns, strict=True)]


def _mean_terms(terms: Mapping[str, Tensor]) -> dict[str, float]:
    """(B,)-shaped terms -> their means over the images, as floats (one readback)."""
    return dict(zip(terms, torch.stack(list(terms.values())).mean(dim=1).tolist(), strict=True))


class IterateAverage:
    """Exponential moving average of images, bias-corrected like Adam's moments
    so the early average is not pulled towards zero."""

    def __init__(self, decay: float) -> None:
        self.decay, self.count = decay, 0
        self.sum: Tensor | None = None

    def update(self, image: Tensor) -> None:
        self.count += 1
        if self.sum is None:
            self.sum = torch.zeros_like(image)
        self.sum.mul_(self.decay).add_(image, alpha=1 - self.decay)

    @property
    def value(self) -> Tensor:
        assert self.sum is not None, "no image averaged yet"
        return (self.sum / (1 - self.decay**self.count)).clamp(0, 1)


def resize_image(image: Tensor, height: int, width: int) -> Tensor:
    """Resize (B, C, h, w) in [0, 1] (an image, or masks) to (height, width):
    bicubic, antialiased when it shrinks, clamped back into [0, 1]."""
    if image.shape[-2:] == (height, width):
        return image
    resized = torch.nn.functional.interpolate(
        image, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return resized.clamp(0, 1)


def _shrink(image: Tensor, factor: float) -> Tensor:
    """(B, C, H, W) resized by `factor`, aspect kept."""
    height, width = image.shape[-2:]
    new_width, new_height = shrink_size(width, height, factor)
    return resize_image(image, new_height, new_width)


# What a step costs, in pixels: the convolutions run on the image and its margin
# (MARGIN each side), the losses on the image alone. Measured (2-core Xeon, fp32,
# 64 to 512 px transfers), the time of a step per (W + MARGIN)(H + MARGIN) px
# stayed within 3.5-3.8 us up to 362 px (4.3 at 512): per W x H px it fell from 5.9 to
# 4.0, per padded pixel it rose from 2.4 to 3.3.
STEP_COST_MARGIN = MARGIN


def schedule_work(plans: Sequence[ScalePlan]) -> tuple[ScaleWork, ...]:
    """The run's schedule as step events carry it: each scale's size and steps, and
    what one of its steps costs (see STEP_COST_MARGIN)."""
    return tuple(ScaleWork(plan.scale.width, plan.scale.height, plan.scale.steps,
                           (plan.scale.width + STEP_COST_MARGIN) * (plan.scale.height + STEP_COST_MARGIN))
                 for plan in plans)


def _with_schedule(on_step: StepCallback, scales: tuple[ScaleWork, ...]) -> StepCallback:
    """Step events that carry the run's schedule: a consumer can show the whole run."""
    def forward(event: StepEvent) -> None:
        on_step(dataclasses.replace(event, scales=scales))

    return forward


def plan_tensors(extractor: FeatureExtractor, config: Config, canvas: Tensor, styles: Sequence[Tensor],
                 steps: int = 0) -> tuple[ScalePlan, ...]:
    """The plan `stylize` runs, for a caller that holds tensors rather than a
    Request (which carries the same plan, made from the files' headers): the
    scales of the network `extractor` computes (with `steps`: one scale of
    canvas's size and that many steps, as a warm-started video frame has), every
    one's levers within the memory budget of canvas's device for its B images."""
    height, width = canvas.shape[-2:]
    style_sizes = [(style.shape[-1], style.shape[-2]) for style in styles]
    schedule = [Scale(width, height, steps)] if steps else \
        run_scales(config, width, height, style_sizes, extractor.layers)
    return plan_on(canvas.device, config, schedule, canvas.shape[0])


def stylize(
    extractor: FeatureExtractor,
    config: Config,
    plans: Sequence[ScalePlan],
    canvas: Tensor,
    content: Tensor | None,
    styles: Sequence[Tensor],
    masks: Tensor | None = None,
    init: Tensor | None = None,
    on_step: StepCallback | None = None,
) -> Result:
    """Coarse-to-fine optimization of a resolved config over the scales of its
    plan (memory.plan_run for `canvas.shape[0]` images on this device: each
    scale's size, steps, history and tiles), the last of them `canvas`'s size.

    canvas (B, 3, H, W): the output's shape at full size (for a transfer, the
    content image itself); content: the content image at full size or None;
    styles: each (1, 3, h, w) at the style size for the full output; masks:
    (N, 1, h, w) regions, one per style, or None; init: a start image at full
    size, or None for config.init (content, noise or blend, drawn at the
    coarsest scale). Every scale resizes these from full size and starts from
    the previous scale's result, upsampled. Returns the last scale's result
    with the history of all scales.
    """
    height, width = canvas.shape[-2:]
    if not plans or (plans[-1].scale.width, plans[-1].scale.height) != (width, height):
        raise ValueError(f"the plan does not end at the canvas's size {width}x{height}")
    settings = Settings.of(config)
    image: Tensor | None = None
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    result: Result | None = None
    scheduled = _with_schedule(on_step, schedule_work(plans)) if on_step is not None else None
    for index, plan in enumerate(plans):
        scale_width, scale_height = plan.scale.width, plan.scale.height
        factor = plan.scale.side / max(height, width)
        scale_content = resize_image(content, scale_height, scale_width) if content is not None else None
        scale_styles = [_shrink(style, factor) for style in styles]
        scale_masks = resize_image(masks, scale_height, scale_width) if masks is not None else None
        objective = build_objective(extractor, config, scale_content, scale_styles, scale_masks,
                                    plan.tile_side)
        if image is not None:
            start = resize_image(image, scale_height, scale_width)
        elif init is not None:
            start = resize_image(init, scale_height, scale_width)
        else:
            base = scale_content if scale_content is not None else _shrink(canvas, factor)
            start = init_image(str(config.init), base, config.alpha, config.seed)
        result = optimize_planned(objective, start, settings, plan, scheduled, index)
        image = result.image.to(canvas.device)
        history += result.history
    assert result is not None
    total_steps = sum(plan.scale.steps for plan in plans)
    return Result(result.image, result.losses, time.perf_counter() - started, total_steps, history,
                  result.image_losses)
