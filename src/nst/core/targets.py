"""What the style layers must match: statistics of the style images per layer,
for the whole output or, with masks, one style per region.

Two kinds of statistics (`--style-loss`):
  gram     the Gram matrix (Gatys et al. 2016), matched by mean squared error;
  meancov  feature means and covariances, matched by the 2-Wasserstein distance
           between the Gaussians they define (as in style-transfer-pytorch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.config import STYLE_LOSSES
from nst.core.features import FeatureExtractor
from nst.core.losses import gram_matrix, mean_covariance, meancov_distance, meancov_loss, psd_sqrt, style_loss
from nst.core.tiles import image_tiles, statistics, whole_sums
from nst.errors import NstError

# For the same content and style the W2 distance is about 2.5e4 times the Gram
# loss on our feature scale (conv_1..conv_5 at 256 px, tubingen against
# starry_night, great_wave, composition_vii and the_scream: 2.4e4 to 2.8e4), so
# dividing by it lets one --style-weight mean about the same balance for both.
MEANCOV_SCALE = 2.5e4


@dataclass
class LayerTarget:
    """The statistics one style layer must match: one entry per region.

    stats: per region, (gram,) for 'gram' or (mean, covariance square root) for
    'meancov', each with a batch dimension of 1.
    masks: (R, 1, H, W) region weights in [0, 1] at image resolution, or None for
    one region covering the whole image.
    """

    kind: str
    stats: list[tuple[Tensor, ...]]
    masks: Tensor | None = None
    _masks_by_size: dict[tuple[int, int], Tensor] = field(default_factory=dict, repr=False)

    def loss(self, features: Tensor) -> Tensor:
        """The style loss of `features` (B, C, h, w) against this target."""
        if self.masks is None:
            return self._region_loss(features, self.stats[0], None)
        masks = self.masks_at(features.shape[-2], features.shape[-1])
        return sum(  # type: ignore[return-value]
            self._region_loss(features, stats, masks[index : index + 1])
            for index, stats in enumerate(self.stats)
        )

    def loss_from_sums(self, sums: list[Tensor]) -> Tensor:
        """The loss of each image (B,) from its features' sums over positions (see
        tiles.layer_sums): the same number `loss` gives for the features themselves."""
        total = torch.zeros(())
        regions = statistics(self.kind, sums, self.centres())
        for stats, target in zip(regions, self.stats, strict=True):
            if self.kind == "gram":
                total = total + (stats[0] - target[0]).square().mean(dim=(1, 2))
            else:
                total = total + meancov_distance(stats[0], stats[1], target[0], target[1]) / MEANCOV_SCALE
        return total

    def centres(self) -> Tensor | None:
        """meancov: each region's target mean, (R, 1, C), about which tiles.layer_sums
        sums the features; None for gram."""
        return torch.stack([stats[0] for stats in self.stats]) if self.kind == "meancov" else None

    def _region_loss(self, features: Tensor, stats: tuple[Tensor, ...], mask: Tensor | None) -> Tensor:
        if self.kind == "gram":
            return style_loss(features, stats[0], mask)
        return meancov_loss(features, stats[0], stats[1], mask) / MEANCOV_SCALE

    def masks_at(self, height: int, width: int) -> Tensor:
        """The region masks averaged down to a layer's resolution (cached per size)."""
        assert self.masks is not None
        key = (height, width)
        if key not in self._masks_by_size:
            self._masks_by_size[key] = F.adaptive_avg_pool2d(self.masks, key)
        return self._masks_by_size[key]


def _layer_statistics(features: Tensor, kind: str) -> tuple[Tensor, ...]:
    """Raw statistics that blend linearly: (gram,) or (mean, second moment)."""
    if kind == "gram":
        return (gram_matrix(features),)
    mean, cov = mean_covariance(features)
    return mean, cov + mean.unsqueeze(2) * mean.unsqueeze(1)


def _raw_statistics(extractor: FeatureExtractor, style: Tensor, layers: Sequence[str], kind: str,
                    tile_side: int | None) -> dict[str, tuple[Tensor, ...]]:
    """_layer_statistics of every layer for one style image, tile by tile if it is large."""
    tiles = image_tiles(extractor, style, tile_side)
    if tiles is None:
        features = extractor(style)
        return {layer: _layer_statistics(features[layer], kind) for layer in layers}
    out: dict[str, tuple[Tensor, ...]] = {}
    for layer, sums in whole_sums(extractor, style, tiles, layers, kind).items():
        if kind == "gram":
            out[layer] = statistics(kind, sums, None)[0]
        else:  # the raw moments, as _layer_statistics gives them (no centre)
            area = sums[-1][0]
            out[layer] = (sums[0][0] / area.view(-1, 1), sums[1][0] / area.view(-1, 1, 1))
    return out


def _finish(stats: tuple[Tensor, ...], kind: str) -> tuple[Tensor, ...]:
    """Blended raw statistics -> what LayerTarget matches."""
    if kind == "gram":
        return stats
    mean, second_moment = stats
    cov = second_moment - mean.unsqueeze(2) * mean.unsqueeze(1)
    return mean, psd_sqrt(cov)


def style_statistics(
    extractor: FeatureExtractor,
    styles: Sequence[Tensor],
    layers: Sequence[str],
    kind: str = "gram",
    blend: Sequence[float] | None = None,
    tile_side: int | None = None,
) -> dict[str, tuple[Tensor, ...]]:
    """Per layer, the statistics of the blend of `styles` (each (1, 3, H, W)),
    computed tile by tile (tiles.py) for a style larger than tile_side.

    Blending the Gram matrices (or the means and second moments) with weights
    summing to 1 gives the same gradient as the blend-weighted sum of per-style
    Gram losses, at the cost of one loss per layer.
    """
    if kind not in STYLE_LOSSES:
        raise NstError(f"unknown style loss {kind!r}; expected one of {', '.join(STYLE_LOSSES)}")
    weights = list(blend) if blend is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise NstError(f"style-blend has {len(weights)} weights for {len(styles)} style images")
    total = sum(weights)
    blended: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for style, weight in zip(styles, weights, strict=True):
            raw = _raw_statistics(extractor, style, layers, kind, tile_side)
            for layer in layers:
                stats = [value * (weight / total) for value in raw[layer]]
                sums = blended.setdefault(layer, [torch.zeros_like(value) for value in stats])
                for index, value in enumerate(stats):
                    sums[index] += value
        return {layer: _finish(tuple(stats), kind) for layer, stats in blended.items()}


def build_style_targets(
    extractor: FeatureExtractor,
    styles: Sequence[Tensor],
    layers: Sequence[str],
    kind: str = "gram",
    blend: Sequence[float] | None = None,
    masks: Tensor | None = None,
    tile_side: int | None = None,
) -> dict[str, LayerTarget]:
    """A LayerTarget per layer. Without masks the styles are blended; with masks
    (one region (N, 1, H, W) per style) region i takes the statistics of style i."""
    if not styles or not layers:
        return {}
    if masks is None:
        stats = style_statistics(extractor, styles, layers, kind, blend, tile_side)
        return {layer: LayerTarget(kind, [stats[layer]]) for layer in layers}
    if masks.shape[0] != len(styles):
        raise NstError(f"{masks.shape[0]} mask regions for {len(styles)} style images")
    per_style = [style_statistics(extractor, [style], layers, kind, tile_side=tile_side) for style in styles]
    return {layer: LayerTarget(kind, [stats[layer] for stats in per_style], masks) for layer in layers}
