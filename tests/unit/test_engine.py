"""The engine's mechanics on the tiny network (fakes.py): reconstruction,
Adam, step events, divergence, blended Gram targets, the start image."""

import math

import pytest
import torch

from nst import Config, NstError, NstRuntimeError
from nst.core.engine import Objective, Settings, build_objective, init_image, optimize
from nst.core.features import build_extractor
from nst.core.losses import gram_matrix
from nst.core.targets import style_statistics
from nst.files.images import load_image, resize_longest, to_tensor

# The engine, not the weights, is what these tests check: the tiny network (fakes.py).
pytestmark = pytest.mark.usefixtures("tiny_network")


def _image(path, size):
    return to_tensor(resize_longest(load_image(path), size))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float(torch.mean((a - b) ** 2)))


def test_reconstruction_at_conv_1_approaches_the_target(content_path):
    content = _image(content_path, 64)
    config = Config(task="reconstruct", content_layers=("conv_1",), style_layers=(),
                    content_weight=1e3, steps=150).resolved("cpu")
    objective = build_objective(build_extractor(["conv_1"]), config, content, [])
    start = init_image("noise", content, 1.0, seed=0)
    result = optimize(objective, start, Settings.of(config), config.steps)
    assert psnr(start, content) < 12
    assert psnr(result.image, content) > 20
    assert result.history[-1]["content"] < result.history[0]["content"] / 100


def test_adam_lowers_the_loss_and_keeps_the_image_valid(content_path, style_path):
    content, style = _image(content_path, 48), _image(style_path, 48)
    config = Config(optimizer="adam", steps=40).resolved("cpu")
    extractor = build_extractor(config.content_layers + config.style_layers)
    result = optimize(build_objective(extractor, config, content, [style]), content, Settings.of(config),
                      config.steps)
    assert result.losses["total"] < result.history[0]["total"] / 2
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1


def test_step_events_report_every_iteration():
    extractor = build_extractor(["conv_1"])
    target = torch.rand(1, 3, 16, 16)
    config = Config(task="reconstruct", content_layers=("conv_1",), style_layers=(),
                    steps=5).resolved("cpu")
    events = []
    optimize(build_objective(extractor, config, target, []), torch.rand(1, 3, 16, 16), Settings.of(config), 5,
             on_step=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4, 5]
    assert all(e.total_steps == 5 and "content" in e.losses for e in events)
    assert events[-1].elapsed_s >= events[0].elapsed_s


def test_divergence_stops_with_a_clear_error():
    extractor = build_extractor(["conv_1"])
    nan_term = {"broken": lambda image: image.sum() * float("nan")}
    objective = Objective(extractor, {}, {}, {}, {}, extra_terms=nan_term)
    config = Config(steps=3).resolved("cpu")
    with pytest.raises(NstRuntimeError, match="diverged at step 1"):
        optimize(objective, torch.rand(1, 3, 8, 8), Settings.of(config), 3)


def test_blended_gram_is_the_weighted_mean():
    extractor = build_extractor(["conv_2"])
    a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 32, 16)
    (blended,) = style_statistics(extractor, [a, b], ["conv_2"], "gram", [3.0, 1.0])["conv_2"]
    ga, gb = (gram_matrix(extractor(x)["conv_2"]) for x in (a, b))
    assert torch.allclose(blended, 0.75 * ga + 0.25 * gb, atol=1e-6)
    with pytest.raises(NstError, match="2 weights for 1 style images"):
        style_statistics(extractor, [a], ["conv_2"], "gram", [1.0, 2.0])


def test_init_blend_follows_the_formula():
    content = torch.rand(1, 3, 8, 8)
    assert torch.equal(init_image("blend", content, 0.0, seed=3), content)
    noise = init_image("noise", content, 0.0, seed=3)
    half = init_image("blend", content, 0.5, seed=3)
    unclamped = 0.5 * init_image("blend", content, 1.0, seed=3) + 0.5 * content
    inside = (noise > 0) & (noise < 1)
    assert torch.allclose(half[inside], unclamped[inside], atol=1e-6)
    assert not torch.equal(noise, init_image("noise", content, 0.0, seed=4))
    with pytest.raises(NstError, match="unknown init 'plasma'"):
        init_image("plasma", content, 0.5, seed=0)
