"""Pure loss functions: tensors in, scalar tensor out."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C), divided by C*H*W.

    Gatys et al. leave the Gram matrix unnormalized and divide the loss by
    4*N^2*M^2; dividing by the element count instead keeps the style loss
    comparable across layers and image sizes.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between feature maps of equal shape."""
    return torch.mean((features - target) ** 2)


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Mean squared error between the Gram matrix of `features` (B, C, H, W) and a
    target Gram matrix (B or 1, C, C)."""
    return torch.mean((gram_matrix(features) - target_gram) ** 2)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation (squared differences of neighbouring pixels, averaged), (B, C, H, W)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return torch.mean(dy**2) + torch.mean(dx**2)


def range_penalty(image: Tensor) -> Tensor:
    """Squared distance of pixels outside [0, 1] to the range, summed per image
    plane and averaged over pixels: zero for any valid image, smooth everywhere."""
    outside = torch.relu(image - 1) ** 2 + torch.relu(-image) ** 2
    return outside.sum() / (image.shape[-1] * image.shape[-2])


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
