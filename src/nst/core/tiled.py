"""The objective and its gradient computed tile by tile (tiles.py): exactly the
whole-image numbers, with the network's memory bounded by one tile.

The style losses are functions of sums over positions (Gram matrices, means,
second moments), so one step takes two passes:
  1. without autograd, every tile adds its sums (and its content loss); the
     losses follow, and autograd through them alone gives d loss / d sums;
  2. tile by tile, the network runs with autograd and the gradient of each
     layer's features (from d loss / d sums, and the content difference) flows
     back into that window of the input.
The second pass repeats the first one's forward, yet on a CPU a tiled step of a
large image was faster than a whole one: a window's tensors stay in the caches
and the allocator's heap (figures in memory.py and the README, "Large prints").

What it reads of the objective is `NetworkTerms` (objective.Objective has it),
so this module sits below the objective that calls it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import torch
from torch import Tensor

from nst.core.features import FeatureExtractor
from nst.core.geometry import poolings_before
from nst.core.targets import LayerTarget
from nst.core.tiles import Tile, add_sums, core_offset, cut, feature_gradient, layer_sums, tile_features
from nst.layers import LAYERS


class NetworkTerms(Protocol):
    """The network's part of an objective: its targets and their weights."""

    @property
    def extractor(self) -> FeatureExtractor: ...

    @property
    def content_targets(self) -> Mapping[str, Tensor]: ...

    @property
    def style_targets(self) -> Mapping[str, LayerTarget]: ...

    @property
    def content_weights(self) -> Mapping[str, float]: ...

    @property
    def style_weights(self) -> Mapping[str, float]: ...


def network_terms(objective: NetworkTerms, image: Tensor, tiles: list[Tile], gradient: bool = True
                  ) -> dict[str, Tensor]:
    """The content and style terms of each image of `image` (B, 3, H, W), as
    Objective.per_image gives them; with `gradient`, their gradient is added
    into image.grad."""
    extractor = objective.extractor
    with torch.no_grad():
        padded = extractor.pad(image.detach())
    content, sums = _first_pass(objective, padded, tiles)
    terms: dict[str, Tensor] = {}
    if objective.content_weights:
        terms["content"] = content
    style, sum_grads = _style_from_sums(objective, sums, gradient)
    if style is not None:
        terms["style"] = style
    if gradient:
        padded_leaf = padded.requires_grad_(True)
        for _, features, feature_grads in _feature_gradients(objective, padded_leaf, tiles, sum_grads):
            torch.autograd.backward(list(features.values()), [feature_grads[name] for name in features])
            del features, feature_grads  # before the next tile's are made
        assert padded_leaf.grad is not None
        with torch.enable_grad():
            torch.autograd.backward(extractor.pad(image), padded_leaf.grad)
    return terms


def style_pulls(objective: NetworkTerms, image: Tensor, tiles: list[Tile]) -> dict[str, float]:
    """Per style layer, the mean |d loss / d features| over the whole image (what
    engine.balance_style_layers measures), tile by tile."""
    with torch.no_grad():
        padded = objective.extractor.pad(image.detach())
    _, sums = _first_pass(objective, padded, tiles)
    unit = {layer: 1.0 for layer in objective.style_weights}
    _, sum_grads = _style_from_sums(objective, sums, True, unit)
    totals = {layer: 0.0 for layer in objective.style_weights}
    counts = dict.fromkeys(totals, 0)
    with torch.no_grad():
        for _, _, grads in _feature_gradients(objective, padded, tiles, sum_grads, content=False):
            for layer in totals:
                totals[layer] += float(grads[layer].abs().sum())
                counts[layer] += grads[layer].numel()
    return {layer: totals[layer] / max(1, counts[layer]) for layer in totals}


def _layers(objective: NetworkTerms) -> list[str]:
    return list(dict.fromkeys([*objective.content_weights, *objective.style_weights]))


def _first_pass(objective: NetworkTerms, padded: Tensor, tiles: list[Tile]
                ) -> tuple[Tensor, dict[str, list[Tensor]]]:
    """Without autograd, every tile's content loss and style sums, added up."""
    extractor, margin = objective.extractor, objective.extractor.margin
    content = torch.zeros(padded.shape[0], device=padded.device)
    sums: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for tile in tiles:
            features = tile_features(extractor, padded, tile, _layers(objective))
            for layer, weight in objective.content_weights.items():
                difference = features[layer] - _target(objective, layer, tile, margin, features[layer])
                content += weight * difference.square().flatten(1).sum(1) / _positions(objective, layer)
            for layer in objective.style_weights:
                weights = _tile_weights(objective, layer, padded, tile, features[layer])
                target = objective.style_targets[layer]
                add_sums(sums, layer, layer_sums(features[layer], target.kind, weights, target.centres()))
    return content, sums


def _style_from_sums(objective: NetworkTerms, sums: dict[str, list[Tensor]], gradient: bool,
                     weights: Mapping[str, float] | None = None
                     ) -> tuple[Tensor | None, dict[str, list[Tensor]]]:
    """The style term of each image from the sums, and (with `gradient`) its
    gradient with respect to each layer's sums."""
    layers = list(objective.style_weights)
    if not layers:
        return None, {}
    weights = weights or objective.style_weights
    leaves = {layer: [value.detach().requires_grad_(gradient) for value in sums[layer]] for layer in layers}
    with torch.set_grad_enabled(gradient):
        style = torch.stack([weights[layer] * objective.style_targets[layer].loss_from_sums(leaves[layer])
                             for layer in layers]).sum(dim=0)
        if not gradient:
            return style, {}
        flat = [leaf for layer in layers for leaf in leaves[layer]]
        grads = torch.autograd.grad(style.sum(), flat, allow_unused=True)
    found = iter(grads)  # in the order of `flat`; the areas get none (they hold no features)
    sum_grads = {layer: [_or_zeros(next(found), leaf) for leaf in leaves[layer]] for layer in layers}
    return style.detach(), sum_grads


def _or_zeros(gradient: Tensor | None, like: Tensor) -> Tensor:
    return gradient if gradient is not None else torch.zeros_like(like)


def _feature_gradients(objective: NetworkTerms, padded: Tensor, tiles: list[Tile],
                       sum_grads: Mapping[str, list[Tensor]], content: bool = True
                       ) -> Iterator[tuple[Tile, dict[str, Tensor], dict[str, Tensor]]]:
    """Tile by tile: its features (with autograd if `padded` requires it) and the
    gradient of the objective with respect to each of them (the style part from
    `sum_grads`, the gradients of the weighted style losses with respect to the sums;
    the content part unless `content` is False)."""
    extractor, margin = objective.extractor, objective.extractor.margin
    for tile in tiles:
        with torch.set_grad_enabled(padded.requires_grad):
            features = tile_features(extractor, padded, tile, _layers(objective))
        grads: dict[str, Tensor] = {}
        with torch.no_grad():
            for layer, value in features.items():
                gradient = torch.zeros_like(value)
                if content and layer in objective.content_weights:
                    difference = value - _target(objective, layer, tile, margin, value)
                    weight = objective.content_weights[layer]
                    gradient += difference * (2 * weight / _positions(objective, layer))
                if layer in sum_grads:
                    weights = _tile_weights(objective, layer, padded, tile, value)
                    target = objective.style_targets[layer]
                    gradient += feature_gradient(value, target.kind, weights, target.centres(),
                                                  sum_grads[layer])
                grads[layer] = gradient
        yield tile, features, grads
        del features, grads  # one tile's tensors at a time


def _positions(objective: NetworkTerms, layer: str) -> float:
    """The element count a content loss averages over: C x h x w of the whole map."""
    target = objective.content_targets[layer]
    return float(target[0].numel())


def _target(objective: NetworkTerms, layer: str, tile: Tile, margin: int, like: Tensor) -> Tensor:
    return cut(objective.content_targets[layer], core_offset(tile, margin, layer), like).float()


def _tile_weights(objective: NetworkTerms, layer: str, padded: Tensor, tile: Tile,
                  like: Tensor) -> Tensor | None:
    """(R, 1, n): the weights of a tile's positions in a style layer's region masks, or None."""
    target = objective.style_targets[layer]
    if target.masks is None:
        return None
    margin = objective.extractor.margin
    step = 1 << poolings_before(LAYERS[layer][0])
    height, width = padded.shape[-2] - 2 * margin, padded.shape[-1] - 2 * margin
    masks = target.masks_at(-(-height // step), -(-width // step))
    return _flat_masks(cut(masks, core_offset(tile, margin, layer), like))


def _flat_masks(masks: Tensor) -> Tensor:
    return masks.reshape(masks.shape[0], 1, -1)
