"""Feature transforms of the fast path: give content features a style's statistics.

Pure tensor functions. Features are (B, C, H, W) (one network layer); a style's
statistics are `FeatureStats` of (1 or B) images. Two transforms:

  AdaIN (Huang & Belongie 2017): per channel, the content's mean and standard
      deviation are replaced by the style's;
  WCT (Li et al. 2017): the content's channel covariance is whitened away and
      the style's put in its place (whitening-colouring), so the correlations
      between channels move too, not only each channel's spread.

Several styles mix through region weights (B, S, H, W): a constant weight per
style is a blend, a spatial one is a mask. Style k's statistics replace those
the content has within its region (weighted by its weights), and the results
are mixed by the weights; where the weights sum to 0 the content stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nst.errors import NstError

TRANSFORMS = ("adain", "wct")
# Variances below this (features are ~0..1 on nst's Caffe/255 scale) count as 0:
# it keeps the whitening of a flat channel finite (AdaIN's eps of 1e-5 on the
# variance, as in Huang & Belongie).
VARIANCE_EPS = 1e-5


@dataclass(frozen=True)
class FeatureStats:
    """Channel statistics of features, float64 (the eigen-decompositions of WCT
    need the precision): mean (B, C), variance (B, C) and, unless only AdaIN's
    statistics were asked for, covariance (B, C, C)."""

    mean: Tensor
    var: Tensor
    cov: Tensor | None = None

    @property
    def std(self) -> Tensor:
        """(B, C)."""
        return self.var.clamp_min(0).sqrt()


def feature_stats(features: Tensor, weights: Tensor | None = None, covariance: bool = True) -> FeatureStats:
    """Statistics of features (B, C, H, W), over positions weighted by `weights`
    (B or 1, 1, H, W), >= 0, not all 0 (None: every position alike). Without
    `covariance` only means and variances (AdaIN's: no C x C product, ~10x faster
    at relu4_1)."""
    b, c, h, w = features.shape
    flat = features.double().reshape(b, c, h * w)
    if weights is None:
        share = torch.full((1, 1, h * w), 1.0 / (h * w), dtype=flat.dtype, device=flat.device)
    else:
        share = weights.double().reshape(weights.shape[0], 1, h * w)
        share = share / share.sum(dim=2, keepdim=True).clamp_min(1e-12)
    mean = (flat * share).sum(dim=2)
    centred = flat - mean.unsqueeze(2)
    var = (centred.square() * share).sum(dim=2)
    cov = torch.bmm(centred * share, centred.transpose(1, 2)) if covariance else None
    return FeatureStats(mean, var, cov)


def mean_std(features: Tensor, eps: float = VARIANCE_EPS) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) -> channel mean and standard deviation, each (B, C, 1, 1),
    in the features' dtype (the cheap statistics AdaIN and its training need)."""
    variance, mean = torch.var_mean(features, dim=(2, 3), keepdim=True, correction=0)
    return mean, (variance + eps).sqrt()


def adain(content: Tensor, style_mean: Tensor, style_std: Tensor, eps: float = VARIANCE_EPS) -> Tensor:
    """AdaIN: content (B, C, H, W) with each channel's mean and std replaced by
    style_mean, style_std (B or 1, C, 1, 1). Differentiable; the features' dtype."""
    mean, std = mean_std(content, eps)
    return (content - mean) / std * style_std + style_mean


def _sym_power(cov: Tensor, power: float, eps: float) -> Tensor:
    """cov (B, C, C) symmetric PSD -> (cov + eps I)^power, by eigen-decomposition."""
    values: Tensor
    vectors: Tensor
    identity = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    values, vectors = torch.linalg.eigh(cov + eps * identity)
    scaled: Tensor = vectors * values.clamp_min(eps).pow(power).unsqueeze(-2)
    return scaled @ vectors.transpose(-1, -2)


def _coloring(content: FeatureStats, style: FeatureStats, method: str, eps: float) -> tuple[Tensor, Tensor]:
    """The affine map that takes features with the content's statistics to features
    with the style's: (gain (B, C), offset (B, C)) for AdaIN, (matrix (B, C, C),
    offset (B, C)) for WCT."""
    if method == "adain":
        gain = style.std / (content.var + eps).sqrt()
        return gain, style.mean - gain * content.mean
    if style.cov is None or content.cov is None:
        raise NstError("WCT needs the style's covariance: take its statistics with covariance=True")
    matrix = _sym_power(style.cov, 0.5, eps) @ _sym_power(content.cov, -0.5, eps)
    return matrix, style.mean - (matrix @ content.mean.unsqueeze(-1)).squeeze(-1)


def _apply(features: Tensor, map_: Tensor, offset: Tensor) -> Tensor:
    b, c, h, w = features.shape
    flat = features.double().reshape(b, c, h * w)
    moved = map_.unsqueeze(-1) * flat if map_.dim() == 2 else map_ @ flat
    return (moved + offset.unsqueeze(-1)).reshape(b, c, h, w)


def stylize_features(
    content: Tensor,
    styles: Sequence[FeatureStats],
    region_weights: Tensor | None = None,
    strength: float = 1.0,
    method: str = "adain",
    eps: float = VARIANCE_EPS,
) -> Tensor:
    """Content features (B, C, H, W) with the styles' statistics, in the content's dtype.

    styles: one FeatureStats per style (batch 1 or B).
    region_weights (B or 1, S, H, W), >= 0: where each style applies (a mask at
        the features' resolution) or how much (a blend: constant weights). None:
        the styles blended equally. At each position the styles mix in proportion
        to their weights; where all weights are 0 the content's features stay.
    strength in [0, 1]: 0 returns the content's features, 1 the transformed ones;
        between, their linear mix.
    method: 'adain' (channel means and standard deviations) or 'wct' (means and
        covariances).
    """
    if method not in TRANSFORMS:
        raise NstError(f"unknown feature transform {method!r}; expected one of {', '.join(TRANSFORMS)}")
    if not 0.0 <= strength <= 1.0:
        raise NstError(f"strength must be between 0 and 1, got {strength:g}")
    if not styles:
        raise NstError("no style statistics given")
    if strength == 0.0:
        return content
    b, _, h, w = content.shape
    if region_weights is None:
        region_weights = torch.ones(1, len(styles), h, w, device=content.device)
    if region_weights.shape[1] != len(styles) or tuple(region_weights.shape[2:]) != (h, w):
        raise NstError(f"region weights of shape {tuple(region_weights.shape)} for {len(styles)} styles "
                       f"and features of {h}x{w}: expected (B, {len(styles)}, {h}, {w})")
    weights = region_weights.double()
    total = weights.sum(dim=1, keepdim=True)  # (B or 1, 1, H, W)
    mixed = torch.zeros(b, content.shape[1], h, w, dtype=torch.float64, device=content.device)
    for index, style in enumerate(styles):
        region = weights[:, index:index + 1]
        if float(region.sum()) == 0.0:
            continue  # a style that paints nowhere
        stats = feature_stats(content, region, covariance=method == "wct")
        matrix, offset = _coloring(stats, style, method, eps)
        mixed = mixed + region * _apply(content, matrix, offset)
    covered = total > 0
    transformed = torch.where(covered, mixed / total.clamp_min(1e-12), content.double())
    out = strength * transformed + (1.0 - strength) * content.double()
    return out.to(content.dtype)
