"""Tiles: windows of the network's input that give exactly the whole image's
features, and the sums over positions that style statistics are made of.

A tile is a window of the network's input (the image with its reflected margin,
see FeatureExtractor.pad) and the core it answers for. The cores partition the
image; each window adds a halo at least as wide as the receptive field of the
deepest layer, so the features of a core are those the whole image would give
(zero padding at a window's edge reaches no core feature). Cores and windows
start on multiples of 2**poolings, so every pooling grid is the whole image's.
The objective computed tile by tile is tiled.py; the targets use the sums here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from nst.core.features import Box, FeatureExtractor
from nst.core.geometry import halo, min_side, poolings_before
from nst.layers import LAYERS, parse_layers


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


def feature_gradient(features: Tensor, kind: str, weights: Tensor | None, centres: Tensor | None,
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


def core_offset(tile: Tile, margin: int, layer: str) -> tuple[int, int]:
    """The (row, column) of a tile's first core feature in the whole image's map
    of `layer` (cores start on whole pooling cells, so the division is exact)."""
    halvings = poolings_before(LAYERS[layer][0])
    return ((tile.window[0] + tile.core[0] - margin) >> halvings,
            (tile.window[2] + tile.core[2] - margin) >> halvings)


def cut(full: Tensor, offset: tuple[int, int], like: Tensor) -> Tensor:
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
                cut(out[layer], core_offset(tile, extractor.margin, layer), features).copy_(features)
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
                add_sums(totals, layer, layer_sums(features, kind, None, None))
    return totals


def add_sums(totals: dict[str, list[Tensor]], layer: str, sums: list[Tensor]) -> None:
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
