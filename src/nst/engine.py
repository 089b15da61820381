"""The optimization: targets, the objective, initialization and the optimizer loop.

The engine never prints and never touches files: it reports through a callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from .config import Config
from .errors import NstError, NstRuntimeError
from .events import Result, StepCallback, StepEvent
from .features import FeatureExtractor
from .losses import content_loss, gram_matrix, range_penalty, style_loss, tv_loss

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

    content_targets: layer -> features (1, C, h, w); style_targets: layer -> Gram (1, C, C).
    extra_terms: name -> function of the image giving an already weighted loss
    (for example the temporal loss of video runs).
    Calling it on an image (B, 3, H, W) returns the weighted terms and 'total'.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        content_targets: Mapping[str, Tensor],
        style_targets: Mapping[str, Tensor],
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
        features = self.extractor(image)
        terms: dict[str, Tensor] = {}
        if self.content_weights:
            terms["content"] = sum(
                weight * content_loss(features[layer], self.content_targets[layer])
                for layer, weight in self.content_weights.items()
            )  # type: ignore[assignment]
        if self.style_weights:
            terms["style"] = sum(
                weight * style_loss(features[layer], self.style_targets[layer])
                for layer, weight in self.style_weights.items()
            )  # type: ignore[assignment]
        if self.tv_weight:
            terms["tv"] = self.tv_weight * tv_loss(image)
        for name, term in self.extra_terms.items():
            terms[name] = term(image)
        terms["total"] = sum(terms.values())  # type: ignore[assignment]
        return terms


def style_grams(
    extractor: FeatureExtractor,
    styles: Sequence[Tensor],
    layers: Sequence[str],
    blend: Sequence[float] | None = None,
) -> dict[str, Tensor]:
    """Blended Gram targets: sum_i w_i * gram(style_i) with weights summing to 1.

    Matching the blended Gram has the same gradient as the blend-weighted sum of
    per-style losses, at the cost of one loss per layer.
    """
    if not styles:
        return {}
    weights = list(blend) if blend is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise NstError(f"style-blend has {len(weights)} weights for {len(styles)} style images")
    total = sum(weights)
    grams: dict[str, Tensor] = {}
    with torch.no_grad():
        for style, weight in zip(styles, weights, strict=True):
            features = extractor(style)
            for layer in layers:
                term = gram_matrix(features[layer]) * (weight / total)
                grams[layer] = grams[layer] + term if layer in grams else term
    return grams


def build_objective(
    extractor: FeatureExtractor,
    config: Config,
    content: Tensor | None,
    styles: Sequence[Tensor],
) -> Objective:
    """Targets for a resolved config: content features of `content` (1, 3, H, W)
    and blended Gram matrices of `styles`."""
    content_layers = config.content_layers if config.content_weight > 0 else ()
    style_layers = config.style_layers if config.style_weight > 0 else ()
    content_targets: dict[str, Tensor] = {}
    if content is not None and content_layers:
        with torch.no_grad():
            features = extractor(content)
        content_targets = {layer: features[layer] for layer in content_layers}
    style_targets = style_grams(extractor, styles, style_layers, config.style_blend)
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


def _make_optimizer(config: Config, image: Tensor) -> torch.optim.Optimizer:
    lr = config.learning_rate or 1.0
    if config.optimizer == "adam":
        return torch.optim.Adam([image], lr=lr)
    # One closure evaluation per step(): we drive the iterations ourselves so
    # that every one is reported, clamped and checked.
    return torch.optim.LBFGS(
        [image], lr=lr, max_iter=1, history_size=config.history_size,
        tolerance_grad=0.0, tolerance_change=0.0,
    )


def optimize(
    objective: Objective,
    init: Tensor,
    config: Config,
    on_step: StepCallback | None = None,
    scale: int = 0,
) -> Result:
    """Run `config.steps` iterations from `init` (B, 3, H, W) in [0, 1].

    The result is always a valid image in [0, 1] (see RANGE_PENALTY_WEIGHT).
    Raises NstRuntimeError if the loss becomes NaN or infinite.
    """
    steps = config.steps or 1
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    optimizer = _make_optimizer(config, image)
    clamp_each_step = config.optimizer != "lbfgs"
    last: dict[str, Tensor] = {}

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = objective(image)
        loss = terms["total"]
        if not clamp_each_step:
            loss = loss + RANGE_PENALTY_WEIGHT * range_penalty(image)
        loss.backward()
        last.update({name: value.detach() for name, value in terms.items()})
        return loss

    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        optimizer.step(closure)
        if clamp_each_step:
            with torch.no_grad():
                image.clamp_(0, 1)
        losses = {name: float(value) for name, value in last.items()}
        if not math.isfinite(losses["total"]):
            raise NstRuntimeError(
                f"the optimization diverged at step {step} (loss {losses['total']}); "
                "try a lower --learning-rate or smaller weights"
            )
        history.append(losses)
        if on_step is not None:
            on_step(StepEvent(step, steps, losses, time.perf_counter() - start, image.detach(), scale))
    output = image.detach().clamp(0, 1)
    with torch.no_grad():
        final = {name: float(value) for name, value in objective(output).items()}
    return Result(output.cpu(), final, time.perf_counter() - start, steps, history)
