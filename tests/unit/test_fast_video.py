"""Fast video frames (--method fast in nst video) on a random VGG19-shaped network and
a tiny decoder file: consistent mode holds each fast frame to the previous one moved
by the optical flow, so it flickers less than independent fast frames; the blend is
the closed-form minimizer it claims to be; the styles' statistics are computed once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from clips import one_torch_thread, sliding_frames  # noqa: F401 (an autouse fixture)
from fakes import picture
from fastkit import fast_factory, tiny_decoder
from nst.config import Config
from nst.core.flow import motion_between, warping_error
from nst.errors import NstError
from nst.files.images import load_image, to_tensor
from nst.jobs.runner import Executor
from nst.jobs.video import FrameStylizer, as_stored, fast_frame, next_frame
from nst.jobs.video_request import DEFAULT_FAST_TEMPORAL_WEIGHT, DEFAULT_TEMPORAL_WEIGHT, VideoOptions


def lively_decoder(path: Path) -> Path:
    """The tiny untrained decoder with its output spread over [0, 1] (untrained, it paints
    nearly black): its last convolution amplified and centred, so frames show texture."""
    tiny_decoder(path, width=8, seed=1)
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    last = max(int(name.split(".")[1]) for name in tensors)
    weight = tensors[f"convs.{last}.weight"]
    tensors[f"convs.{last}.weight"] = weight * (0.25 / float(weight.abs().mean()))
    tensors[f"convs.{last}.bias"] = torch.full_like(tensors[f"convs.{last}.bias"], 0.5)
    save_file(tensors, str(path), metadata)
    return path


def _config(decoder: Path) -> Config:
    return Config(method="fast", decoder=str(decoder), size=64, device="cpu", precision="fp32",
                  channels_last=False)


def _warping_error(mode: str, decoder: Path, style: Path, weight: float | None = None) -> float:
    frames = [to_tensor(frame) for frame in sliding_frames(8, 64, 48, shift=2)]
    options = VideoOptions(mode=mode, temporal_weight=weight).for_method("fast")
    stylizer = FrameStylizer(_config(decoder), "cpu", [to_tensor(load_image(style))], frames[0],
                             Executor(fast_factory))
    previous, errors = None, []
    for index, content in enumerate(frames):
        motion = motion_between(frames[index - 1], content) if index else None
        image, _ = next_frame(stylizer, options, content, previous, motion, None)
        image = as_stored(image)
        if previous is not None and motion is not None:
            errors.append(warping_error(image, previous, motion))
        previous = image
    return sum(errors) / len(errors)


def test_consistent_fast_frames_flicker_less_than_independent_ones(tmp_path: Path) -> None:
    decoder = lively_decoder(tmp_path / "d.safetensors")
    style = picture(tmp_path / "s.png", 1, (40, 30), offset=(0.5, 0.1, 0.1), noise=0.3)
    independent = _warping_error("independent", decoder, style)
    consistent = _warping_error("consistent", decoder, style)
    assert independent > 0
    # At the default weight 4, 4/5 of each reliable pixel is carried: the change a frame
    # makes is at most a fifth of the independent one's, plus what warping itself adds.
    assert consistent < 0.6 * independent, (consistent, independent)
    assert _warping_error("consistent", decoder, style, 0.0) == pytest.approx(independent, rel=1e-6)


def test_the_blend_is_the_minimizer_of_the_two_distances() -> None:
    generator = torch.Generator().manual_seed(0)
    fast, warped = torch.rand(1, 3, 5, 7, generator=generator), torch.rand(1, 3, 5, 7, generator=generator)
    weights = torch.rand(1, 1, 5, 7, generator=generator) * 4
    blended = fast_frame(fast, [(warped, weights)]).requires_grad_(True)
    loss = ((blended - fast) ** 2).sum() + (weights * (blended - warped) ** 2).sum()
    (gradient,) = torch.autograd.grad(loss, blended)
    assert float(gradient.abs().max()) < 1e-5
    assert torch.equal(fast_frame(fast, [(warped, torch.zeros_like(weights))]), fast)


def test_the_temporal_weight_defaults_per_method_and_frame_steps_are_refused() -> None:
    assert VideoOptions().for_method("gatys").temporal_weight == DEFAULT_TEMPORAL_WEIGHT
    assert VideoOptions().for_method("fast").temporal_weight == DEFAULT_FAST_TEMPORAL_WEIGHT
    assert VideoOptions(temporal_weight=1.5).for_method("fast").temporal_weight == 1.5
    with pytest.raises(NstError, match="--frame-steps does not apply"):
        VideoOptions(frame_steps=3).for_method("fast")


def test_a_clips_style_statistics_are_computed_once(tmp_path: Path) -> None:
    decoder = tiny_decoder(tmp_path / "d.safetensors")
    style = to_tensor(load_image(picture(tmp_path / "s.png", 1, (40, 30))))
    executor = Executor(fast_factory)
    stylizer = FrameStylizer(_config(decoder), "cpu", [style], torch.rand(1, 3, 24, 32), executor)
    calls = []
    original = executor.network

    def counted(config: Config, device: str | torch.device):  # type: ignore[no-untyped-def]
        network = original(config, device)
        calls.append(network)
        return network

    executor.network = counted  # type: ignore[method-assign]
    frame = torch.rand(1, 3, 24, 32)
    first = stylizer.fresh(frame, None)
    assert torch.allclose(first, stylizer.fresh(frame, None))
    expected = executor.fast_image(_config(decoder), "cpu", frame, [style])  # from the image itself
    assert torch.allclose(first, expected, atol=1e-5)
