"""Pure loss functions: tensors in, scalar tensor out."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def gram_matrix(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """(B, C, H, W) -> (B, C, C), divided by C*H*W.

    Gatys et al. leave the Gram matrix unnormalized and divide the loss by
    4*N^2*M^2; dividing by the element count instead keeps the style loss
    comparable across layers and image sizes.

    mask (B or 1, 1, H, W) in [0, 1]: the Gram matrix of the masked region only
    (Gatys et al. 2017), divided by C times the mask's area instead of C*H*W, so a
    region's statistics compare with a whole style image's.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    if mask is None:
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)
    weights = mask.reshape(mask.shape[0], 1, h * w)
    area = weights.sum(dim=2, keepdim=True).clamp_min(1e-8)
    return torch.bmm(flat * weights, flat.transpose(1, 2)) / (c * area)


def mean_covariance(features: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) -> channel means (B, C) and covariance (B, C, C) over the
    positions, weighted by `mask` (B or 1, 1, H, W) when given."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    if mask is None:  # every step of a meancov run: no weight tensor to multiply by
        mean = flat.mean(dim=2)
        centred = flat - mean.unsqueeze(2)
        return mean, torch.bmm(centred, centred.transpose(1, 2)) / (h * w)
    weights = mask.reshape(mask.shape[0], 1, h * w)
    weights = weights / weights.sum(dim=2, keepdim=True).clamp_min(1e-8)
    mean = (flat * weights).sum(dim=2)
    centred = flat - mean.unsqueeze(2)
    return mean, torch.bmm(centred * weights, centred.transpose(1, 2))


def psd_sqrt(matrix: Tensor) -> Tensor:
    """Square root of symmetric positive semi-definite matrices (B, C, C)."""
    values: Tensor
    vectors: Tensor
    values, vectors = torch.linalg.eigh(matrix)  # torch.linalg is untyped: name the types
    root: Tensor = vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(-1, -2)
    return root


def meancov_loss(features: Tensor, target_mean: Tensor, target_cov_sqrt: Tensor,
                 mask: Tensor | None = None) -> Tensor:
    """Squared 2-Wasserstein distance between Gaussians fitted to the features
    (B, C, H, W) and to a target (mean (B or 1, C), covariance square root
    (B or 1, C, C)), divided by C:

        |m - m_t|^2 + tr(S) + tr(S_t) - 2 tr sqrt(S_t^1/2 S S_t^1/2)

    Zero exactly when the means and covariances agree. Unlike the Gram loss it
    matches the means and the covariances separately.
    """
    mean, cov = mean_covariance(features, mask)
    return meancov_distance(mean, cov, target_mean, target_cov_sqrt).mean()


def meancov_distance(mean: Tensor, cov: Tensor, target_mean: Tensor, target_cov_sqrt: Tensor) -> Tensor:
    """meancov_loss of each image, (B,), from its features' mean (B, C) and covariance (B, C, C)."""
    channels = mean.shape[-1]
    # The eigenvalues of the symmetric product are those of sqrt(S_t) S sqrt(S_t);
    # clamped away from 0, where sqrt's gradient is infinite.
    product = target_cov_sqrt @ cov @ target_cov_sqrt
    product = (product + product.transpose(-1, -2)) / 2
    eigenvalues: Tensor = torch.linalg.eigvalsh(product).clamp_min(1e-12)
    target_trace = (target_cov_sqrt**2).sum(dim=(-1, -2))
    trace_term = cov.diagonal(dim1=-2, dim2=-1).sum(-1) + target_trace - 2 * eigenvalues.sqrt().sum(-1)
    distance = ((mean - target_mean) ** 2).sum(-1) + trace_term
    return distance.clamp_min(0) / channels


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between feature maps of equal shape."""
    return torch.mean((features - target) ** 2)


def style_loss(features: Tensor, target_gram: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error between the Gram matrix of `features` (B, C, H, W)
    (of its masked region, if `mask` is given) and a target Gram matrix (B or 1, C, C)."""
    if mask is None:
        return _gram_distance(features, target_gram.detach())
    return torch.mean((gram_matrix(features, mask) - target_gram) ** 2)


class _GramDistance(torch.autograd.Function):
    """mean((gram(F) - T)^2) with a hand-written backward.

    Autograd differentiates F F^T as a product of two inputs and spends two
    matrix products on it; as both factors are F and G - T is symmetric, the
    gradient is one product, 4 (G - T) F / (numel * C*H*W). That saves a third
    of the Gram work of every step (measured: see benchmarks/README.md).
    """

    @staticmethod
    def forward(ctx: Any, features: Tensor, target: Tensor) -> Tensor:
        b, c, h, w = features.shape
        flat = features.reshape(b, c, h * w)
        difference = torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w) - target
        ctx.save_for_backward(flat, difference)
        ctx.shape = features.shape
        return difference.square().mean()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        flat, difference = ctx.saved_tensors
        c, positions = flat.shape[1], flat.shape[2]
        scale = grad_output * 4 / (difference.numel() * c * positions)
        return (torch.bmm(difference, flat) * scale).reshape(ctx.shape), None


def tv_loss(image: Tensor) -> Tensor:
    """Total variation (squared differences of neighbouring pixels, averaged), (B, C, H, W)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return torch.mean(dy**2) + torch.mean(dx**2)


def range_penalties(image: Tensor) -> Tensor:
    """Per image (B,), the squared distance of its pixels outside [0, 1] to the
    range, summed over its planes and averaged over pixels: zero for any valid
    image, smooth everywhere."""
    outside = torch.relu(image - 1) ** 2 + torch.relu(-image) ** 2
    return outside.flatten(1).sum(dim=1) / (image.shape[-1] * image.shape[-2])


def range_penalty(image: Tensor) -> Tensor:
    """range_penalties summed over the images of the batch."""
    return range_penalties(image).sum()


def temporal_loss(image: Tensor, warped: Tensor, weights: Tensor) -> Tensor:
    """Squared deviation from the previous stylized frame warped into this one,
    where the flow is trusted: `weights` (B or 1, 1, H, W) in [0, 1], averaged over
    all pixels and channels (Ruder et al. 2016, eq. 7)."""
    return torch.mean(weights * (image - warped) ** 2)


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W), edges replicated; sigma in pixels."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


# torch types Function.apply loosely; this is what it computes here.
_gram_distance: Callable[[Tensor, Tensor], Tensor] = _GramDistance.apply
