"""The optimization: targets, the objective, initialization and the optimizer loop.

The engine never prints and never touches files: it reports through a callback.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from nst.config import Config
from nst.core.device import plan_on
from nst.core.features import FeatureExtractor
from nst.core.geometry import Scale, run_scales, shrink_size
from nst.core.lbfgs import BatchLBFGS
from nst.core.losses import content_loss, range_penalty, tv_loss
from nst.core.memory import HISTORY_CAP, ScalePlan
from nst.core.targets import LayerTarget, build_style_targets
from nst.core.tiles import Tile, image_tiles, network_terms, style_pulls, whole_features
from nst.errors import NstError, NstRuntimeError
from nst.events import Result, StepCallback, StepEvent

# Noise lives in the network's normalized input space (a standard normal there),
# which in RGB [0, 1] is the ImageNet mean plus std-scaled Gaussian noise.
NOISE_MEAN = (0.485, 0.456, 0.406)
NOISE_STD = (0.229, 0.224, 0.225)

# L-BFGS keeps the image in [0, 1] through a soft penalty rather than clamping
# after each step: a clamp corrupts its curvature pairs, and in our measurements
# (tubingen + starry_night, 192 px, 200 steps) doubled the final loss (35.5 vs
# 16.4). Adam tolerates clamping (a projected gradient step) and uses it.
RANGE_PENALTY_WEIGHT = 1e4


class Objective:
    """The weighted sum of content, style and TV losses against fixed targets.

    content_targets: layer -> features (1, C, h, w); style_targets: layer -> the
    statistics that layer must match (see targets.py).
    extra_terms: name -> function of the image giving an already weighted loss
    (for example the temporal loss of video runs).
    Calling it on an image (B, 3, H, W) returns the weighted terms and 'total'.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        content_targets: Mapping[str, Tensor],
        style_targets: Mapping[str, LayerTarget],
        content_weights: Mapping[str, float],
        style_weights: Mapping[str, float],
        tv_weight: float = 0.0,
        extra_terms: Mapping[str, Callable[[Tensor], Tensor]] | None = None,
    ) -> None:
        self.extractor = extractor
        self.content_targets = dict(content_targets)
        self.style_targets = dict(style_targets)
        self.content_weights = {k: v for k, v in content_weights.items() if k in self.content_targets}
        self.style_weights = {k: v for k, v in style_weights.items() if k in self.style_targets}
        self.tv_weight = tv_weight
        self.extra_terms = dict(extra_terms or {})

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        """The terms summed over the images of the batch."""
        return {name: value.sum() for name, value in self.per_image(image).items()}

    def evaluate(self, image: Tensor, tiles: list[Tile] | None = None) -> dict[str, Tensor]:
        """The terms of each image (see per_image), detached, with the gradient of
        their total added into image.grad. With `tiles` the network runs tile by
        tile (tiles.py): the same numbers, with its memory bounded by one tile."""
        if tiles is None:
            terms = self.per_image(image)
            torch.autograd.backward(terms["total"].sum())
            return {name: value.detach() for name, value in terms.items()}
        network = network_terms(self, image, tiles)
        local = self._image_terms(image)  # TV and extra terms: cheap on the whole image
        if local:
            torch.autograd.backward(torch.stack(list(local.values())).sum())
        return _with_total(network, {name: value.detach() for name, value in local.items()})

    def terms(self, image: Tensor, tiles: list[Tile] | None = None) -> dict[str, Tensor]:
        """The terms of each image (see per_image), without autograd."""
        with torch.no_grad():
            if tiles is None:
                return self.per_image(image)
            return _with_total(network_terms(self, image, tiles, gradient=False), self._image_terms(image))

    def _image_terms(self, image: Tensor) -> dict[str, Tensor]:
        """Per image (B,), the terms computed on the image itself, not the network."""
        terms: dict[str, Tensor] = {}
        if self.tv_weight:
            terms["tv"] = torch.stack([self.tv_weight * tv_loss(image[i : i + 1]) for i in range(len(image))])
        for name, term in self.extra_terms.items():
            terms[name] = torch.stack([term(image[i : i + 1]) for i in range(len(image))])
        return terms

    def per_image(self, image: Tensor) -> dict[str, Tensor]:
        """The terms of each image of `image` (B, 3, H, W), each of shape (B,).

        The network runs once on the whole batch; the losses are taken image by
        image, so that no image's loss (and so no image's gradient) depends on
        another's. Content targets hold one image or one per batch image.
        """
        features = self.extractor(image)
        per_slice = [self._network_terms({layer: f[i : i + 1] for layer, f in features.items()}, i)
                     for i in range(image.shape[0])]
        network = {name: torch.stack([terms[name] for terms in per_slice]) for name in per_slice[0]}
        return _with_total(network, self._image_terms(image))

    def _network_terms(self, features: Mapping[str, Tensor], index: int) -> dict[str, Tensor]:
        """The content and style terms of batch image `index` from its features."""
        terms: dict[str, Tensor] = {}
        if self.content_weights:
            terms["content"] = sum(
                weight * content_loss(features[layer], _item(self.content_targets[layer], index))
                for layer, weight in self.content_weights.items()
            )  # type: ignore[assignment]
        if self.style_weights:
            terms["style"] = sum(
                weight * self.style_targets[layer].loss(features[layer])
                for layer, weight in self.style_weights.items()
            )  # type: ignore[assignment]
        return terms


def _with_total(network: Mapping[str, Tensor], local: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The network's terms, then the image's own (TV, extra terms), then their total: each (B,)."""
    terms = {**network, **local}
    terms["total"] = torch.stack(list(terms.values())).sum(dim=0)
    return terms


def _item(batch: Tensor, index: int) -> Tensor:
    """Entry `index` of a batch of targets, or the one target shared by all."""
    return batch if batch.shape[0] == 1 else batch[index : index + 1]


def build_objective(
    extractor: FeatureExtractor,
    config: Config,
    content: Tensor | None,
    styles: Sequence[Tensor],
    masks: Tensor | None = None,
    tile_side: int | None = None,
) -> Objective:
    """Targets for a resolved config: content features of `content` (1, 3, H, W)
    and the style statistics of `styles`, blended, or one style per region of
    `masks` (N, 1, H, W). With tile_side, the network sees images larger than
    that tile by tile (see tiles.py). Content features are kept in the network's
    arithmetic: bf16 features are exact in bf16, at half the memory."""
    content_layers = config.content_layers if config.content_weight > 0 else ()
    style_layers = config.style_layers if config.style_weight > 0 else ()
    content_targets: dict[str, Tensor] = {}
    if content is not None and content_layers:
        dtype = torch.bfloat16 if extractor.precision == "bf16" else torch.float32
        tiles = image_tiles(extractor, content, tile_side)
        if tiles is None:
            with torch.no_grad():
                features = extractor.features(extractor.pad(content), layers=content_layers)
        else:
            features = whole_features(extractor, content, tiles, content_layers)
        content_targets = {layer: features[layer].to(dtype) for layer in content_layers}
    style_targets = build_style_targets(
        extractor, styles, style_layers, config.style_loss, config.style_blend, masks, tile_side
    )
    content_weights = dict(zip(config.content_layers, config.content_layer_weights or (), strict=False))
    style_weights = dict(zip(config.style_layers, config.style_layer_weights or (), strict=False))
    return Objective(
        extractor,
        content_targets,
        style_targets,
        {k: v * config.content_weight for k, v in content_weights.items()},
        {k: v * config.style_weight for k, v in style_weights.items()},
        config.tv_weight,
    )


def balance_style_layers(objective: Objective, image: Tensor, tiles: list[Tile] | None = None) -> None:
    """Rescale the style layer weights so every layer's loss pulls equally hard
    at `image`: weight_l is divided by the mean |gradient| of layer l's loss with
    respect to its features, and all are rescaled to keep the total pull.

    neural-style normalizes every gradient on every step, which makes the loss
    L-BFGS sees disagree with its gradient; measuring once per scale keeps the
    objective a true function for the optimizer.
    """
    if not objective.style_weights:
        return
    if tiles is not None:
        pulls = style_pulls(objective, image, tiles)
    else:
        features = objective.extractor(image.detach())
        pulls = {}
        for layer in objective.style_weights:
            layer_features = features[layer].detach().requires_grad_(True)
            loss = objective.style_targets[layer].loss(layer_features)
            (gradient,) = torch.autograd.grad(loss, layer_features)
            pulls[layer] = float(gradient.abs().mean())
    weights = objective.style_weights
    total_pull = sum(weights[layer] * pulls[layer] for layer in weights)
    if total_pull <= 0:
        return
    equal_share = total_pull / sum(weights.values())
    objective.style_weights = {
        layer: weight * equal_share / pulls[layer] if pulls[layer] > 0 else weight
        for layer, weight in weights.items()
    }


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


def _make_optimizer(config: Config, image: Tensor) -> torch.optim.Optimizer | BatchLBFGS:
    lr = config.learning_rate or 1.0
    if config.optimizer == "adam":
        return torch.optim.Adam([image], lr=lr)  # elementwise: images stay independent
    # One evaluation per step (no line search): we drive the iterations ourselves so
    # that every one is reported and checked. One curvature history per image.
    # A run of n steps makes n - 1 pairs: a longer history would only hold memory.
    history = min(config.history_size or HISTORY_CAP, max(1, (config.steps or 1) - 1))
    return BatchLBFGS(image, lr=lr, history_size=history)


def optimize(
    objective: Objective,
    init: Tensor,
    config: Config,
    on_step: StepCallback | None = None,
    scale: int = 0,
    tiles: list[Tile] | None = None,
) -> Result:
    """Run `config.steps` iterations from `init` (B, 3, H, W) in [0, 1], the
    network tile by tile if `tiles` are given (tiles.py: the same numbers).

    The B images are optimized together but independently: each follows the
    path it would follow alone. Events and `Result.losses` give the mean over
    the images; `Result.image_losses` each image's final terms.
    The result is always a valid image in [0, 1] (see RANGE_PENALTY_WEIGHT).
    L-BFGS returns, per image, the best iterate it evaluated: without a line
    search a step can overshoot, and a late spike must not spoil the output.
    Adam returns the exponential moving average of its iterates
    (config.ema_decay), which averages out the jitter of its fixed step size.
    Raises NstRuntimeError if the loss becomes NaN or infinite.
    """
    steps = config.steps or 1
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    optimizer = _make_optimizer(config, image)
    use_lbfgs = config.optimizer == "lbfgs"
    average = IterateAverage(config.ema_decay) if not use_lbfgs and config.ema_decay > 0 else None
    last: dict[str, Tensor] = {}
    batch = image.shape[0]
    # The best iterate per image stays on the device: choosing it needs no readback.
    best_total = torch.full((batch,), math.inf, device=image.device)
    best_image = image.detach().clone()
    best_terms: dict[str, Tensor] = {}

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = objective.evaluate(image, tiles)
        loss = terms["total"].sum()
        if use_lbfgs:
            penalty = RANGE_PENALTY_WEIGHT * range_penalty(image)
            torch.autograd.backward(penalty)
            loss = loss + penalty.detach()
        last.update(terms)
        return loss

    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        # L-BFGS evaluates the image before it moves it: remember that image.
        evaluated = image.detach().clone() if use_lbfgs else None
        if isinstance(optimizer, BatchLBFGS):
            optimizer.step(closure)
        else:  # Adam needs one gradient per step: evaluate, then step
            closure()
            optimizer.step()
        if not use_lbfgs:
            with torch.no_grad():
                image.clamp_(0, 1)
        if evaluated is not None:
            better = last["total"] < best_total
            best_total = torch.where(better, last["total"], best_total)
            best_image = torch.where(better.view(-1, 1, 1, 1), evaluated, best_image)
            best_terms = {name: torch.where(better, value, best_terms.get(name, value))
                          for name, value in last.items()}
        if average is not None:
            average.update(image.detach())
        # The one device-to-host copy of the step: every term, for the report.
        losses = _mean_terms(last)
        if not math.isfinite(losses["total"]):
            raise NstRuntimeError(
                f"the optimization diverged at step {step} (loss {losses['total']}); "
                "try a lower --learning-rate or smaller weights"
            )
        history.append(losses)
        if on_step is not None:
            shown = average.value if average is not None else image.detach()
            on_step(StepEvent(step, steps, losses, time.perf_counter() - start, shown, scale))
    output = average.value if average is not None else image.detach().clamp(0, 1)
    final = objective.terms(output, tiles)
    if use_lbfgs:
        # Per image, the best evaluated iterate if it beat the last one.
        keep_best = best_total < final["total"]
        output = torch.where(keep_best.view(-1, 1, 1, 1), best_image.clamp(0, 1), output)
        final = {name: torch.where(keep_best, best_terms[name], value) for name, value in final.items()}
    image_losses = _per_image_terms(final)
    return Result(output.cpu(), _mean_terms(final), time.perf_counter() - start, steps, history, image_losses)


def optimize_planned(objective: Objective, start: Tensor, config: Config, plan: ScalePlan,
                     on_step: StepCallback | None = None, scale: int = 0) -> Result:
    """`optimize` one scale with the levers its memory plan chose: its steps, its
    L-BFGS history and its tiles (the style layers balanced first if asked)."""
    tiles = image_tiles(objective.extractor, start, plan.tile_side)
    if config.normalize_gradients:
        balance_style_layers(objective, start, tiles)
    scale_config = config.replace(steps=plan.scale.steps, history_size=max(1, plan.history))
    return optimize(objective, start, scale_config, on_step, scale, tiles)


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


def _with_schedule(on_step: StepCallback, scales: tuple[Scale, ...]) -> StepCallback:
    """Step events that carry the run's schedule: a consumer can show the whole run."""
    def forward(event: StepEvent) -> None:
        on_step(dataclasses.replace(event, scales=scales))

    return forward


def stylize(
    extractor: FeatureExtractor,
    config: Config,
    canvas: Tensor,
    content: Tensor | None,
    styles: Sequence[Tensor],
    masks: Tensor | None = None,
    init: Tensor | None = None,
    on_step: StepCallback | None = None,
) -> Result:
    """Coarse-to-fine optimization for a resolved config (see geometry.run_scales).

    canvas (1, 3, H, W): the output's shape at full size (for a transfer, the
    content image itself); content: the content image at full size or None;
    styles: each (1, 3, h, w) at the style size for the full output; masks:
    (N, 1, h, w) regions, one per style, or None; init: a start image at full
    size, or None for config.init (content, noise or blend, drawn at the
    coarsest scale). Every scale resizes these from full size and starts from
    the previous scale's result, upsampled. Returns the last scale's result
    with the history of all scales.
    """
    assert config.size is not None and config.steps is not None
    height, width = canvas.shape[-2:]
    # The scales follow the network this run computes: no scale may shrink the
    # image (or a style) below the side its poolings need.
    style_sizes = [(style.shape[-1], style.shape[-2]) for style in styles]
    schedule = run_scales(config, width, height, style_sizes, extractor.layers)
    # Every scale's levers (tiles, L-BFGS history) within the memory budget, before
    # anything of the run is allocated (the request checked the same plan).
    plans = plan_on(canvas.device, config, schedule, canvas.shape[0])
    image: Tensor | None = None
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    result: Result | None = None
    scheduled = _with_schedule(on_step, tuple(schedule)) if on_step is not None else None
    for index, (scale, plan) in enumerate(zip(schedule, plans, strict=True)):
        scale_width, scale_height = scale.width, scale.height
        factor = scale.side / max(height, width)
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
        result = optimize_planned(objective, start, config, plan, scheduled, index)
        image = result.image.to(canvas.device)
        history += result.history
    assert result is not None
    total_steps = sum(scale.steps for scale in schedule)
    return Result(result.image, result.losses, time.perf_counter() - started, total_steps, history,
                  result.image_losses)
