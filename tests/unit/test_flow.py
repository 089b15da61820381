"""Optical flow, warping, the reliability mask and the warping error."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from clips import texture
from nst.core.flow import motion_between, resize_flow, warp, warping_error
from nst.files.images import to_tensor


def _shifted_pair(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A texture and the same texture moved dx right and dy down (cut from a larger one)."""
    wide = texture(96 + 8, 64 + 8, seed=3)
    previous = wide[4:68, 4:100]
    current = wide[4 - dy:68 - dy, 4 - dx:100 - dx]
    return to_tensor(Image.fromarray(previous)), to_tensor(Image.fromarray(current))


def test_flow_of_a_shifted_image_recovers_the_shift() -> None:
    previous, current = _shifted_pair(3, 2)
    motion = motion_between(previous, current)
    # Each pixel of the current frame came from 3 px left and 2 px up.
    inner = motion.backward[8:-8, 8:-8]
    assert abs(np.median(inner[..., 0]) + 3) < 0.1
    assert abs(np.median(inner[..., 1]) + 2) < 0.1
    warped = warp(previous, motion.backward)
    before = (previous - current)[..., 8:-8, 8:-8].abs().mean()
    after = (warped - current)[..., 8:-8, 8:-8].abs().mean()
    assert after < before / 5
    assert warping_error(current, previous, motion) < 0.01


def test_warp_moves_pixels_by_the_flow() -> None:
    image = torch.zeros(1, 1, 5, 7)
    image[0, 0, 2, 3] = 1.0
    flow = np.zeros((5, 7, 2), np.float32)
    flow[..., 0] = -1.0  # sample one pixel to the left: content moves right
    moved = warp(image, flow)
    assert moved[0, 0, 2, 4] == 1.0 and moved[0, 0, 2, 3] == 0.0


def test_reliability_masks_the_uncovered_background() -> None:
    background, square = texture(96, 64, seed=1), texture(24, 24, seed=2)

    def frame(x: int) -> torch.Tensor:
        pixels = background.copy()
        pixels[20:44, x:x + 24] = square
        # Flow is computed on frames larger than the stylized ones (see FLOW_MIN_SIDE).
        return to_tensor(Image.fromarray(pixels).resize((256, 171), Image.Resampling.BICUBIC))

    weights = motion_between(frame(30), frame(33), (96, 64)).weights
    assert weights.shape == (64, 96)
    assert weights[22:42, 30:33].mean() < 0.3  # background the square moved off: new in this frame
    assert weights[:12].mean() > 0.9 and weights[50:].mean() > 0.9  # still background
    assert weights[24:40, 37:53].mean() > 0.9  # inside the moving square


def test_warping_error_sees_flicker_the_input_does_not_have() -> None:
    previous, current = _shifted_pair(2, 0)
    motion = motion_between(previous, current)
    steady = warping_error(current, previous, motion)
    flickering = warping_error((current + 0.1).clamp(0, 1), previous, motion)
    assert flickering > steady + 0.05


def test_resized_flow_scales_its_vectors() -> None:
    flow = np.full((10, 20, 2), (4.0, -2.0), np.float32)
    small = resize_flow(flow, (10, 5))
    assert small.shape == (5, 10, 2)
    assert np.allclose(small[..., 0], 2.0) and np.allclose(small[..., 1], -1.0)
