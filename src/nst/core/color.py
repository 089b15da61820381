"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors"): pure
functions on (B, 3, H, W) RGB tensors in [0, 1].

luminance  transfer on the luminance (Y of YIQ) only, then put the content's
           chroma (I and Q) back: the output keeps the photo's colours exactly.
histogram  recolour the style image so its colour mean and covariance equal the
           content's before the transfer: the painting's strokes, the photo's palette.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nst.core.losses import psd_sqrt

# NTSC YIQ; Y is the luminance the eye reads structure from.
_RGB_TO_YIQ = torch.tensor([
    [0.299, 0.587, 0.114],
    [0.595716, -0.274453, -0.321263],
    [0.211456, -0.522591, 0.311135],
])


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def rgb_to_yiq(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> YIQ (Y in [0, 1], I and Q signed)."""
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    """(B, 3, H, W) YIQ -> RGB (not clamped)."""
    return _apply(torch.linalg.inv(_RGB_TO_YIQ), image)


def luminance(image: Tensor) -> Tensor:
    """The luminance as a grey RGB image (B, 3, H, W): what VGG sees of it."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def matched_luminance(style: Tensor, content: Tensor) -> Tensor:
    """The style's luminance, shifted and scaled to the content's mean and
    standard deviation (so the style's brightness does not fight the content's),
    as a grey RGB image."""
    style_y, content_y = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    scale = content_y.std() / style_y.std().clamp_min(1e-6)
    matched = (style_y - style_y.mean()) * scale + content_y.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def with_content_chroma(output: Tensor, content: Tensor) -> Tensor:
    """The output's luminance with the content's chroma (I and Q), in [0, 1]."""
    output_yiq, content_yiq = rgb_to_yiq(output), rgb_to_yiq(content.to(output))
    return yiq_to_rgb(torch.cat([output_yiq[:, :1], content_yiq[:, 1:]], dim=1)).clamp(0, 1)


def _colour_statistics(image: Tensor) -> tuple[Tensor, Tensor]:
    pixels = image.permute(1, 0, 2, 3).reshape(3, -1).double()
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=pixels.dtype)
    return mean, cov


def match_colors(style: Tensor, content: Tensor) -> Tensor:
    """The style recoloured so its pixels' mean and covariance equal the
    content's: x -> C_c^1/2 C_s^-1/2 (x - m_s) + m_c (the symmetric square roots
    keep hues from rotating, unlike a Cholesky factor), clamped to [0, 1]."""
    style_mean, style_cov = _colour_statistics(style)
    content_mean, content_cov = _colour_statistics(content.to(style))
    transform = psd_sqrt(content_cov[None])[0] @ torch.linalg.inv(psd_sqrt(style_cov[None])[0])
    pixels = style.permute(1, 0, 2, 3).reshape(3, -1).double()
    recoloured = transform @ (pixels - style_mean) + content_mean
    shaped = recoloured.reshape(3, style.shape[0], *style.shape[2:]).permute(1, 0, 2, 3)
    recoloured_style: Tensor = shaped.to(style.dtype).clamp(0, 1).contiguous()
    return recoloured_style
