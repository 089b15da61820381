"""The objective: the weighted sum of content, style and TV losses (and extra
terms) against fixed targets, computed on the whole image or tile by tile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from nst.config import Config
from nst.core.features import FeatureExtractor
from nst.core.losses import content_loss, tv_loss
from nst.core.targets import LayerTarget, build_style_targets
from nst.core.tiled import network_terms, style_pulls
from nst.core.tiles import Tile, image_tiles, whole_features


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
