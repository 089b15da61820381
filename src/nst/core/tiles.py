"""The objective and its gradient computed tile by tile: exactly the whole-image
numbers, with the network's memory bounded by one tile.

A tile is a window of the network's input (the image with its reflected margin,
see FeatureExtractor.pad) and the core it answers for. The cores partition the
image; each window adds a halo at least as wide as the receptive field of the
deepest layer, so the features of a core are those the whole image would give
(zero padding at a window's edge reaches no core feature). Cores and windows
start on multiples of 2**poolings, so every pooling grid is the whole image's.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nst.core.features import Box, FeatureExtractor
from nst.core.geometry import halo, min_side, poolings_before
from nst.layers import LAYERS, parse_layers

if TYPE_CHECKING:
    from nst.core.engine import Objective


@dataclass(frozen=True)
class Tile:
    """window: the region of the padded input the network runs on; core: the
    region of it whose features this tile gives, in the window's own pixels."""

    window: Box
    core: Box


def layout(height: int, width: int, margin: int, core_side: int, layers: Iterable[str]) -> list[Tile]:
    """The tiles of a padded input of height x width whose image lies `margin` px
    inside it, with cores of at most core_side x core_side px."""
    names = parse_layers(list(layers))
    cell = min_side(names)  # the deepest layer's pooling cell
    assert margin % cell == 0, "the image must start on a pooling cell"
    side = max(cell, core_side // cell * cell)
    border = halo(names)

    def cuts(length: int) -> list[tuple[int, int, int, int]]:
        """(window start, window end, core start, core end) along one axis."""
        ends = [*range(margin, length - margin, side), length - margin]
        return [(max(0, start - border), min(length, end + border), start, end)
                for start, end in zip(ends, ends[1:], strict=False)]

    return [Tile((row[0], row[1], col[0], col[1]),
                 (row[2] - row[0], row[3] - row[0], col[2] - col[0], col[3] - col[0]))
            for row in cuts(height) for col in cuts(width)]


# --------------------------------------------------------------- statistics


def _flat(features: Tensor) -> Tensor:
    return features.reshape(features.shape[0], features.shape[1], -1)


def layer_sums(features: Tensor, kind: str, weights: Tensor | None, centres: Tensor | None) -> list[Tensor]:
    """The sums over positions that a layer's style statistics are made of, per
    region (one region without masks): for 'gram' [sum w f f^T, sum w]; for
    'meancov' [sum w g, sum w g g^T, sum w] with g = f - the region's centre
    (its target mean: sums of small numbers keep the covariance accurate);
    w = 1 without masks. Each is stacked over regions: (R, B, ...).
    weights: (R, 1, n) region weights of the positions; centres: (R, 1, C)."""
    flat = _flat(features)
    regions = 1 if weights is None else weights.shape[0]
    sums: list[list[Tensor]] = []
    for region in range(regions):
        weight = None if weights is None else weights[region : region + 1]
        centred = flat if centres is None else flat - centres[region].unsqueeze(2)
        weighted = centred if weight is None else centred * weight
        area = torch.full((flat.shape[0],), float(flat.shape[2]), device=flat.device) if weight is None \
            else weight.sum(dim=2).expand(flat.shape[0], 1).reshape(-1)
        second = torch.bmm(weighted, centred.transpose(1, 2))
        sums.append([second, area] if kind == "gram" else [weighted.sum(dim=2), second, area])
    return [torch.stack(parts) for parts in zip(*sums, strict=True)]


def statistics(kind: str, sums: list[Tensor], centres: Tensor | None) -> list[tuple[Tensor, ...]]:
    """Per region, the statistics the whole image's losses use (see losses.py)
    from its sums: (gram,) or (mean, covariance), each with the batch dimension."""
    if kind == "gram":
        channels = sums[0].shape[-1]
        second, area = sums
        return [(second[r] / (channels * area[r].clamp_min(1e-8).view(-1, 1, 1)),) for r in range(len(area))]
    assert centres is not None
    first, second, area = sums
    out: list[tuple[Tensor, ...]] = []
    for r in range(len(area)):
        total = area[r].clamp_min(1e-8)
        offset = first[r] / total.view(-1, 1)  # the mean, less the centre
        covariance = second[r] / total.view(-1, 1, 1) - offset.unsqueeze(2) * offset.unsqueeze(1)
        out.append((offset + centres[r], covariance))
    return out


def _feature_gradient(features: Tensor, kind: str, weights: Tensor | None, centres: Tensor | None,
                      sum_grads: list[Tensor]) -> Tensor:
    """d loss / d features of one tile, from d loss / d (its layer's sums): each
    sum is linear (w g) or quadratic (w g g^T) in the features."""
    flat = _flat(features)
    gradient = torch.zeros_like(flat)
    for region in range(sum_grads[0].shape[0]):
        weight = 1.0 if weights is None else weights[region : region + 1]
        centred = flat if centres is None else flat - centres[region].unsqueeze(2)
        second = sum_grads[0 if kind == "gram" else 1][region]
        gradient += torch.bmm(second + second.transpose(1, 2), centred) * weight
        if kind == "meancov":
            gradient += sum_grads[0][region].unsqueeze(2) * weight
    return gradient.reshape(features.shape)


# --------------------------------------------------------------- passes


def _offset(tile: Tile, margin: int, layer: str) -> tuple[int, int]:
    """The (row, column) of a tile's first core feature in the whole image's map
    of `layer` (cores start on whole pooling cells, so the division is exact)."""
    halvings = poolings_before(LAYERS[layer][0])
    return ((tile.window[0] + tile.core[0] - margin) >> halvings,
            (tile.window[2] + tile.core[2] - margin) >> halvings)


def _cut(full: Tensor, offset: tuple[int, int], like: Tensor) -> Tensor:
    """The part of a whole-image map (.., h, w) under a tile's features `like`."""
    row, column = offset
    return full[..., row : row + like.shape[-2], column : column + like.shape[-1]]


def tile_features(extractor: FeatureExtractor, padded: Tensor, tile: Tile,
                  layers: Iterable[str]) -> dict[str, Tensor]:
    """The features of a tile's core for `layers` (autograd as the caller has it)."""
    top, bottom, left, right = tile.window
    return extractor.features(padded[..., top:bottom, left:right], tile.core, layers)


def whole_features(extractor: FeatureExtractor, image: Tensor, tiles: list[Tile],
                   layers: Iterable[str]) -> dict[str, Tensor]:
    """Without autograd, the whole image's features of `layers`, assembled tile by
    tile, stored in the network's arithmetic (bf16 features are exact in bf16)."""
    names = parse_layers(list(layers))
    dtype = torch.bfloat16 if extractor.precision == "bf16" else torch.float32
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        padded = extractor.pad(image)
        height, width = image.shape[-2:]
        for tile in tiles:
            for layer, features in tile_features(extractor, padded, tile, names).items():
                if layer not in out:
                    step = 1 << poolings_before(LAYERS[layer][0])
                    shape = (*features.shape[:2], -(-height // step), -(-width // step))
                    out[layer] = torch.empty(shape, dtype=dtype, device=image.device)
                _cut(out[layer], _offset(tile, extractor.margin, layer), features).copy_(features)
    return out


def whole_sums(extractor: FeatureExtractor, image: Tensor, tiles: list[Tile], layers: Iterable[str],
               kind: str) -> dict[str, list[Tensor]]:
    """Without autograd, each layer's sums (see layer_sums, one region, no centre)
    over the whole image, added up tile by tile."""
    names = parse_layers(list(layers))
    totals: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        padded = extractor.pad(image)
        for tile in tiles:
            for layer, features in tile_features(extractor, padded, tile, names).items():
                _add(totals, layer, layer_sums(features, kind, None, None))
    return totals


def _add(totals: dict[str, list[Tensor]], layer: str, sums: list[Tensor]) -> None:
    """Add one tile's sums of a layer to the running totals."""
    if layer in totals:
        for total, part in zip(totals[layer], sums, strict=True):
            total += part
    else:
        totals[layer] = sums


def image_tiles(extractor: FeatureExtractor, image: Tensor, core_side: int | None) -> list[Tile] | None:
    """The tiles of `image` (B, 3, H, W) for cores of core_side px, or None (the
    whole image at once) when there is no core side or one tile would hold it."""
    height, width = image.shape[-2:]
    if core_side is None or max(height, width) <= core_side:
        return None
    margin = extractor.margin
    return layout(height + 2 * margin, width + 2 * margin, margin, core_side, extractor.layers)


def _flat_masks(masks: Tensor) -> Tensor:
    return masks.reshape(masks.shape[0], 1, -1)


# --------------------------------------------------------------- the objective


def network_terms(objective: Objective, image: Tensor, tiles: list[Tile], gradient: bool = True
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


def style_pulls(objective: Objective, image: Tensor, tiles: list[Tile]) -> dict[str, float]:
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


def _layers(objective: Objective) -> list[str]:
    return list(dict.fromkeys([*objective.content_weights, *objective.style_weights]))


def _first_pass(objective: Objective, padded: Tensor, tiles: list[Tile]
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
                _add(sums, layer, layer_sums(features[layer], target.kind, weights, target.centres()))
    return content, sums


def _style_from_sums(objective: Objective, sums: dict[str, list[Tensor]], gradient: bool,
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


def _feature_gradients(objective: Objective, padded: Tensor, tiles: list[Tile],
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
                    gradient += _feature_gradient(value, target.kind, weights, target.centres(),
                                                  sum_grads[layer])
                grads[layer] = gradient
        yield tile, features, grads
        del features, grads  # one tile's tensors at a time


def _positions(objective: Objective, layer: str) -> float:
    """The element count a content loss averages over: C x h x w of the whole map."""
    target = objective.content_targets[layer]
    return float(target[0].numel())


def _target(objective: Objective, layer: str, tile: Tile, margin: int, like: Tensor) -> Tensor:
    return _cut(objective.content_targets[layer], _offset(tile, margin, layer), like).float()


def _tile_weights(objective: Objective, layer: str, padded: Tensor, tile: Tile,
                  like: Tensor) -> Tensor | None:
    """(R, 1, n): the weights of a tile's positions in a style layer's region masks, or None."""
    target = objective.style_targets[layer]
    if target.masks is None:
        return None
    margin = objective.extractor.margin
    step = 1 << poolings_before(LAYERS[layer][0])
    height, width = padded.shape[-2] - 2 * margin, padded.shape[-1] - 2 * margin
    masks = target.masks_at(-(-height // step), -(-width // step))
    return _flat_masks(_cut(masks, _offset(tile, margin, layer), like))
