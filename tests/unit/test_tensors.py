"""Loading a request's tensors and colour preservation (jobs/tensors.py): one copy,
used by single runs and by video frames alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fakes import CountingFactory, picture, tiny_config
from nst.core.color import rgb_to_yiq
from nst.jobs.request import prepare
from nst.jobs.runner import Executor
from nst.jobs.tensors import colour_styles, load_tensors, restore_colour
from nst.jobs.video import FrameStylizer

LEVEL = 1 / 255  # one 8-bit level


def colour_statistics(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.permute(1, 0, 2, 3).reshape(3, -1).double()
    return pixels.mean(dim=1), torch.cov(pixels, correction=0)


def unclamped(image: torch.Tensor) -> torch.Tensor:
    """(H, W) mask of pixels no channel of which sits at 0 or 1 (clamping changes those)."""
    return ((image > LEVEL) & (image < 1 - LEVEL)).all(dim=1)[0]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    # A reddish style with little green, against a content of every colour; neither
    # near 0 or 1, so that recolouring one like the other clamps (almost) nothing.
    return (picture(tmp_path / "content.png", 1, spread=(0.5, 0.5, 0.5), offset=(0.25, 0.25, 0.25),
                    noise=0.04),
            picture(tmp_path / "style.png", 5, (40, 40), spread=(0.2, 0.4, 0.1), offset=(0.5, 0.1, 0.2),
                    noise=0.04))


def test_luminance_optimizes_grey_and_the_result_keeps_the_contents_chroma(inputs: tuple[Path, Path]) -> None:
    content, style = inputs
    request = prepare(tiny_config(preserve_color="luminance", steps=5), content, [style])
    tensors = load_tensors(request)
    for grey in (tensors.content, *tensors.styles):
        assert grey is not None
        assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    done = Executor(CountingFactory()).run(request)
    keep = unclamped(done.result.image)
    assert keep.float().mean() > 0.5  # most of the picture is checked
    result_iq, content_iq = rgb_to_yiq(done.result.image)[:, 1:], rgb_to_yiq(tensors.canvas)[:, 1:]
    # The chroma is the content's exactly, up to float32 arithmetic (far below a level).
    assert (result_iq - content_iq)[..., keep].abs().max() < 1e-2 * LEVEL


def test_restore_colour_is_the_identity_unless_luminance_took_the_colours_off() -> None:
    image, content = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert restore_colour(image, content, None) is image
    assert restore_colour(image, content, "histogram") is image


def test_histogram_gives_the_styles_the_contents_colour_statistics(inputs: tuple[Path, Path]) -> None:
    content, style = inputs
    plain = load_tensors(prepare(tiny_config(), content, [style]))
    matched = load_tensors(prepare(tiny_config(preserve_color="histogram"), content, [style]))
    content_mean, content_cov = colour_statistics(matched.canvas)
    style_mean, style_cov = colour_statistics(plain.styles[0])
    mean, cov = colour_statistics(matched.styles[0])
    # Before: the style's own colours, far from the content's (more than 10 levels
    # apart in some channel's mean) ...
    assert (style_mean - content_mean).abs().max() > 10 * LEVEL
    # ... after: the content's mean to a tenth of a level, its covariance to 2%
    # (pixels pushed out of [0, 1] are clamped back, a few of them at most).
    assert (mean - content_mean).abs().max() < 0.1 * LEVEL
    assert (cov - content_cov).abs().max() < 0.02 * content_cov.abs().max()
    assert (cov - content_cov).abs().max() < 0.2 * (style_cov - content_cov).abs().max()
    assert torch.equal(matched.content, matched.canvas)  # the content itself is not recoloured


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_video_frames_prepare_the_styles_as_a_single_run_does(inputs: tuple[Path, Path], mode: str) -> None:
    content, style = inputs
    request = prepare(tiny_config(preserve_color=mode), content, [style])
    plain, run = load_tensors(prepare(tiny_config(), content, [style])), load_tensors(request)
    stylizer = FrameStylizer(request.config, "cpu", plain.styles, run.canvas, Executor(CountingFactory()))
    assert torch.equal(stylizer.styles[0], run.styles[0])
    assert torch.equal(colour_styles(plain.styles, run.canvas, mode)[0], run.styles[0])
