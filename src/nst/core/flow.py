"""Optical flow between video frames, warping, flow reliability and the warping error.

Conventions: images are tensors (B, 3, H, W) in [0, 1]; a flow is a float32 array
(H, W, 2) of pixel offsets (dx, dy). The *backward* flow of frame t points from
each pixel of frame t to where that point was in frame t-1, so warping frame t-1
with it (sampling t-1 at p + flow(p)) predicts frame t.

Reliability follows Ruder et al. 2016 ("Artistic style transfer for videos"):
a pixel is trusted unless the forward and backward flows disagree (an occlusion
or a flow error), it lies on a motion boundary, or it came from outside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Forward-backward check (Ruder et al., eq. 5, after Sundaram et al. 2010):
# |w~ + w^|^2 > OCCLUSION_RELATIVE * (|w~|^2 + |w^|^2) + OCCLUSION_ABSOLUTE
OCCLUSION_RELATIVE = 0.01
OCCLUSION_ABSOLUTE = 0.5
# Motion boundaries (eq. 6): |grad u|^2 + |grad v|^2 > 0.01 |w^|^2 + 0.002
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002
# Ruder's checker blurs the mask (sigma 0.8 px) after pushing occlusions to a
# negative value, so distrust spreads a pixel or so around occluded regions.
MASK_BLUR_SIGMA = 0.8
OCCLUDED_VALUE = -1.0
# DIS loses small moving objects in tiny frames (a 24 px square moving 6 px in a
# 96x64 frame came out nearly still); compute flow at least this large and scale it.
FLOW_MIN_SIDE = 256


def gray(image: Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W) uint8 luma, the input DIS expects."""
    rgb = (image[0].detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def optical_flow(source: Tensor, target: Tensor) -> np.ndarray:
    """Dense flow from `source` to `target` (each (1, 3, H, W)) with OpenCV's DIS:
    source(p) ~ target(p + flow(p)). Returns (H, W, 2) float32 pixels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    flow = dis.calc(gray(source), gray(target), None)
    return np.asarray(flow, dtype=np.float32)


def _sampling_grid(flow: Tensor) -> Tensor:
    """Pixel offsets (H, W, 2) -> grid_sample's normalized coordinates (1, H, W, 2),
    each point p + flow(p) clamped into the frame.

    The clamp is what makes a point outside the frame take the nearest edge value:
    grid_sample's border padding only clamps the taps, so a bicubic sample half a
    pixel beyond the last row is c + 0.75 * 0.5 * (c - b) for the last two rows
    b, c: an extrapolation. A video whose flow leaves the frame there warped its
    last row further from the one above at every frame (the bottom row's green
    excess G - (R + B)/2 grew from 12 to 26 in 8 frames of bunny.mp4 at 128 px).
    """
    height, width = flow.shape[:2]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype, device=flow.device),
        torch.arange(width, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    x = (xs + flow[..., 0]).clamp(0, width - 1) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[..., 1]).clamp(0, height - 1) * (2 / max(height - 1, 1)) - 1
    return torch.stack((x, y), dim=-1).unsqueeze(0)


def warp(image: Tensor, flow: np.ndarray | Tensor, mode: str = "bilinear") -> Tensor:
    """Sample `image` (B, C, H, W) at p + flow(p) ('bilinear' or 'bicubic'); points
    outside the frame take the nearest edge value (they are marked unreliable anyway)."""
    offsets = torch.as_tensor(flow, dtype=torch.float32, device=image.device)
    grid = _sampling_grid(offsets).to(image.dtype).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def warp_image(image: Tensor, flow: np.ndarray | Tensor) -> Tensor:
    """Warp a picture (B, 3, H, W) in [0, 1]. Bicubic, because frame after frame
    of bilinear resampling blurs a stylized video's brush strokes away."""
    return warp(image, flow, "bicubic").clamp(0, 1)


def _inside_frame(flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    inside: np.ndarray = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return inside


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Per-pixel trust (H, W) in [0, 1] of the backward flow of frame t, given the
    forward flow of frame t-1 (t-1 -> t). 0 marks occlusions, flow errors, motion
    boundaries and pixels that came from outside the frame."""
    image = torch.from_numpy(np.ascontiguousarray(forward.transpose(2, 0, 1))).unsqueeze(0)
    # The forward flow at the point each pixel came from: for a consistent pair
    # it undoes the backward flow.
    forward_there = warp(image, backward)[0].numpy().transpose(1, 2, 0)
    round_trip = np.sum((forward_there + backward) ** 2, axis=-1)
    magnitudes = np.sum(forward_there**2, axis=-1) + np.sum(backward**2, axis=-1)
    occluded = round_trip > OCCLUSION_RELATIVE * magnitudes + OCCLUSION_ABSOLUTE
    occluded |= ~_inside_frame(backward)
    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    edge = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
    boundary = edge > BOUNDARY_RELATIVE * np.sum(backward**2, axis=-1) + BOUNDARY_ABSOLUTE
    trust = np.ones(backward.shape[:2], dtype=np.float32)
    trust[boundary] = 0.0
    trust[occluded] = OCCLUDED_VALUE
    blurred = cv2.GaussianBlur(trust, (0, 0), MASK_BLUR_SIGMA, borderType=cv2.BORDER_REPLICATE)
    return np.clip(blurred, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Motion:
    """How frame t relates to frame t-1: its backward flow and where to trust it."""

    backward: np.ndarray  # (H, W, 2), t -> t-1
    weights: np.ndarray  # (H, W) in [0, 1]

    @property
    def reliable_share(self) -> float:
        """Fraction of the frame the flow explains (near 0 at a scene cut)."""
        return float(self.weights.mean())

    def weight_tensor(self, device: torch.device) -> Tensor:
        """The weights as (1, 1, H, W), ready to multiply an image."""
        return torch.from_numpy(self.weights).to(device).view(1, 1, *self.weights.shape)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow field resampled to `size` (width, height), its vectors scaled to match."""
    height, width = flow.shape[:2]
    resized = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= size[0] / width
    resized[..., 1] *= size[1] / height
    return resized


def motion_between(previous: Tensor, current: Tensor, size: tuple[int, int] | None = None) -> Motion:
    """Flow and reliability of `current` relative to `previous` ((1, 3, H, W) each),
    returned at `size` (width, height; default the frames' own), so flow may be
    computed on larger frames than the ones being stylized."""
    backward = optical_flow(current, previous)
    forward = optical_flow(previous, current)
    weights = reliability(backward, forward)
    if size is not None and size != (backward.shape[1], backward.shape[0]):
        backward = resize_flow(backward, size)
        weights = cv2.resize(weights, size, interpolation=cv2.INTER_AREA)
    return Motion(backward, weights)


def flow_side(size: int) -> int:
    """The longest side to compute flow at for frames stylized at `size`."""
    return max(size, FLOW_MIN_SIDE)


def warping_error(current: Tensor, previous: Tensor, motion: Motion) -> float:
    """Mean absolute difference between `current` and `previous` warped into it,
    over reliable pixels (weighted by the reliability), RGB in [0, 1].

    With the input video's motion this measures flicker: a perfectly stable
    stylization moves exactly with the content. It warps like the video loop
    (bicubic): bilinear resampling alone blurs fine brush strokes by more than
    real flicker changes them. NaN if no pixel is reliable.
    """
    weights = motion.weight_tensor(current.device)
    total = float(weights.sum()) * current.shape[0]
    if total == 0:
        return float("nan")
    difference = (current - warp_image(previous, motion.backward)).abs().mean(dim=1, keepdim=True)
    return float((difference * weights).sum()) / total
