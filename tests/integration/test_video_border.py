"""A consistent video's border stays the colour it started: frame after frame,
the last row and column once drifted to saturated colours (their points leave
the frame under the flow, and the bicubic warp extrapolated them; core/flow.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clips import one_torch_thread  # noqa: F401 (an autouse fixture)
from conftest import SHARED
from nst.cli.app import main

BUNNY = SHARED / "video" / "bunny.mp4"


def _green_excess(pixels: np.ndarray) -> float:
    """Mean G - (R + B) / 2 in 8-bit levels: how the drift showed (toward green at
    the bottom, magenta on the right)."""
    return float((pixels[..., 1] - (pixels[..., 0] + pixels[..., 2]) / 2).mean())


@pytest.mark.skipif(not BUNNY.exists(), reason="needs ../shared/data/video/bunny.mp4")
def test_the_last_row_and_column_keep_their_colour_over_the_frames(style_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    code = main(["video", str(BUNNY), str(style_path), "-o", f"{out}/", "--size", "128", "--max-frames", "8",
                 "--steps", "60", "--device", "cpu", "--seed", "1"])
    assert code == 0
    frames = sorted(out.glob("*.png"))
    assert len(frames) == 8
    first, last = (np.asarray(Image.open(path).convert("RGB")).astype(float)
                   for path in (frames[0], frames[-1]))
    # Each edge against the line just inside it: the picture may change there as
    # anywhere, but an edge that drifts on its own changes much more than its
    # neighbour (the bottom row: +13.5 levels by frame 8, the row above +0.5).
    for edge, inside in ((np.s_[-1], np.s_[-2]), (np.s_[:, -1], np.s_[:, -2])):
        drift = abs(_green_excess(last[edge]) - _green_excess(first[edge]))
        neighbour = abs(_green_excess(last[inside]) - _green_excess(first[inside]))
        assert drift <= neighbour + 4, (edge, drift, neighbour)
