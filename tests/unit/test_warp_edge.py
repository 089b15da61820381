"""Warping at the frame's edge: a point outside the frame takes the nearest edge
value, never an extrapolation (which, frame after frame, drifted a consistent
video's last row and column to saturated colours)."""

from __future__ import annotations

import pytest
import torch

from nst.core.flow import warp

MODES = ["bilinear", "bicubic"]


def _image(height: int = 9, width: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", MODES)
def test_zero_flow_returns_the_image_with_its_last_row_and_column(mode: str) -> None:
    image = _image()
    warped = warp(image, torch.zeros(9, 12, 2), mode)
    assert torch.allclose(warped, image, atol=1e-6)
    assert torch.allclose(warped[..., -1, :], image[..., -1, :], atol=1e-6)
    assert torch.allclose(warped[..., :, -1], image[..., :, -1], atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_a_constant_image_stays_constant_under_any_flow(mode: str) -> None:
    image = torch.full((1, 3, 9, 12), 0.3)
    # Much of it leaves the frame.
    flow = 6 * torch.randn(9, 12, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(warp(image, flow, mode), image, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis", [0, 1])
def test_a_flow_out_of_the_frame_takes_the_edge_value(mode: str, axis: int) -> None:
    image = _image(seed=2)
    flow = torch.zeros(9, 12, 2)
    flow[..., 1 - axis] = 0.5  # every point half a pixel down (axis 0) or right (axis 1)
    warped = warp(image, flow, mode)
    if axis == 0:
        assert torch.allclose(warped[..., -1, :], image[..., -1, :], atol=1e-6)
    else:
        assert torch.allclose(warped[..., :, -1], image[..., :, -1], atol=1e-6)


def test_warping_again_and_again_out_of_the_frame_does_not_grow_the_edge() -> None:
    """The last row warped 20 times by a flow that carries it out of the frame (as a
    video's frames are, one after the other) keeps its values: an extrapolating
    edge moves away from the row above it at every warp."""
    image = _image(seed=3)
    flow = torch.zeros(9, 12, 2)
    flow[..., 1] = 0.5
    warped = image
    for _ in range(20):
        warped = warp(warped, flow, "bicubic")
    assert torch.allclose(warped[..., -1, :], image[..., -1, :], atol=1e-5)
