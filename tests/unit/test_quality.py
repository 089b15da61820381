"""Quality and control on the tiny network: coarse-to-fine, colour statistics,
masks, the mean-covariance loss, Adam's iterate average, per-layer gradient balancing."""

import pytest
import torch
from PIL import Image

from nst import Config, NstError, run
from nst.core.color import luminance, match_colors, rgb_to_yiq, with_content_chroma, yiq_to_rgb
from nst.core.engine import (
    IterateAverage,
    Settings,
    balance_style_layers,
    build_objective,
    optimize,
    resize_image,
)
from nst.core.features import build_extractor
from nst.core.geometry import scale_schedule
from nst.core.losses import gram_matrix, mean_covariance, meancov_loss, psd_sqrt
from nst.core.masks import masks_from_images
from nst.files.images import load_image, resize_longest, to_tensor

# The engine, not the weights, is what these tests check: the tiny network (fakes.py).
pytestmark = pytest.mark.usefixtures("tiny_network")


def _image(path, size):
    return to_tensor(resize_longest(load_image(path), size))


def _chroma_mean(image):
    return rgb_to_yiq(image)[:, 1:].mean(dim=(0, 2, 3))


def test_resizing_between_scales_keeps_a_constant_image_constant():
    constant = torch.full((1, 3, 30, 40), 0.3)
    for height, width in ((42, 57), (15, 20), (30, 40)):
        resized = resize_image(constant, height, width)
        assert resized.shape == (1, 3, height, width)
        assert torch.allclose(resized, constant.new_full(resized.shape, 0.3), atol=1e-6)
    extreme = torch.zeros(1, 3, 8, 8)
    extreme[..., ::2, :] = 1  # bicubic overshoots on stripes; the clamp keeps [0, 1]
    upscaled = resize_image(extreme, 21, 21)
    assert float(upscaled.min()) >= 0 and float(upscaled.max()) <= 1


def test_scale_schedule_grows_by_sqrt2_and_spends_most_steps_coarse():
    schedule = scale_schedule(2048, 1024, 256, 300, None)
    sides = [scale.side for scale in schedule]
    assert sides[0] == 256 and sides[-1] == 2048 and len(sides) == 7
    assert [(scale.width, scale.height) for scale in schedule[::3]] == [(256, 128), (724, 362), (2048, 1024)]
    ratios = [b / a for a, b in zip(sides, sides[1:], strict=False)]
    assert all(abs(r - 2**0.5) < 0.01 for r in ratios)
    assert [scale.steps for scale in schedule] == [300, 150, 75, 50, 50, 50, 50]
    # Above 2048 px the steps fall with the pixels (a quarter at twice the side), never below 10.
    assert [scale.steps for scale in scale_schedule(8192, 4096, 128, 300, None)][-5:] == [50, 25, 12, 10, 10]
    one = [(scale.side, scale.steps) for scale in scale_schedule(200, 150, 256, 100, None)]
    assert one == [(200, 100)]  # below the start size: one scale
    assert [(s.side, s.steps) for s in scale_schedule(1024, 1024, 256, 100, scales=1)] == [(1024, 100)]
    assert [s.side for s in scale_schedule(1024, 512, 256, 100, scales=3)] == [256, 512, 1024]


def test_coarse_to_fine_run_reports_each_scale_and_ends_at_full_size(content_path, style_path):
    events = []
    config = Config(size=96, start_size=48, steps=12, seed=0, device="cpu")
    done = run(config, content_path, [style_path], events.append)
    scales = sorted({event.scale for event in events})
    assert scales == [0, 1, 2]
    assert max(events[0].image.shape[-2:]) == 48 and max(done.result.image.shape[-2:]) == 96
    assert done.result.steps == len(events) == 12 + 6 + 3
    # Each scale starts from the upsampled previous result, not from scratch: the last
    # scale's first loss is below that of a run starting at full size (from the content).
    firsts = {event.scale: event.losses["total"] for event in reversed(events)}
    scratch: list = []
    run(config.replace(scales=1, steps=1), content_path, [style_path], scratch.append)
    assert firsts[2] < 0.9 * scratch[0].losses["total"]


def test_style_size_sets_the_scale_of_the_style(content_path, style_path, monkeypatch):
    seen = []
    import nst.core.engine as engine

    real = engine.build_objective

    def spy(extractor, config, content, styles, masks=None, tile_side=None):
        seen.append((max(content.shape[-2:]), max(styles[0].shape[-2:])))
        return real(extractor, config, content, styles, masks, tile_side)

    monkeypatch.setattr(engine, "build_objective", spy)
    run(Config(size=96, start_size=48, scales=2, style_size=192, steps=2, device="cpu"),
        content_path, [style_path])
    # The style stays twice the output's size at every scale.
    assert seen == [(48, 96), (96, 192)]


def test_meancov_loss_is_zero_for_identical_features_and_positive_otherwise():
    torch.manual_seed(0)
    features = torch.randn(1, 8, 12, 10, dtype=torch.float64)
    mean, cov = mean_covariance(features)
    assert float(meancov_loss(features, mean, psd_sqrt(cov))) == pytest.approx(0, abs=1e-8)
    shifted = features + 0.5
    scaled = features * 1.5
    assert float(meancov_loss(shifted, mean, psd_sqrt(cov))) == pytest.approx(0.25, rel=1e-6)
    assert float(meancov_loss(scaled, mean, psd_sqrt(cov))) > 0.01
    # The gradient is finite even where the covariance is rank deficient.
    flat = torch.zeros(1, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    meancov_loss(flat, mean, psd_sqrt(cov)).backward()
    assert torch.isfinite(flat.grad).all()


def test_masked_gram_of_a_full_mask_is_the_gram_and_of_a_half_mask_its_region():
    features = torch.rand(1, 4, 6, 8)
    assert torch.allclose(gram_matrix(features, torch.ones(1, 1, 6, 8)), gram_matrix(features))
    left = torch.zeros(1, 1, 6, 8)
    left[..., :4] = 1
    assert torch.allclose(gram_matrix(features, left), gram_matrix(features[..., :4]), atol=1e-6)


def test_meancov_style_transfer_lowers_its_loss(content_path, style_path):
    content, style = _image(content_path, 48), _image(style_path, 48)
    config = Config(style_loss="meancov", steps=30, seed=0).resolved("cpu")
    extractor = build_extractor(config.content_layers + config.style_layers)
    result = optimize(build_objective(extractor, config, content, [style]), content, Settings.of(config),
                      config.steps)
    assert result.losses["style"] < result.history[0]["style"] / 3


def test_gradient_normalization_gives_every_style_layer_the_same_pull(style_path):
    style = _image(style_path, 48)
    config = Config(task="texture", content_layers=(), content_weight=0).resolved("cpu")
    extractor = build_extractor(config.style_layers)
    objective = build_objective(extractor, config, None, [style])
    image = torch.rand(1, 3, 48, 48)
    before = dict(objective.style_weights)
    balance_style_layers(objective, image)
    features = extractor(image)
    pulls = []
    for layer, weight in objective.style_weights.items():
        layer_features = features[layer].detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(objective.style_targets[layer].loss(layer_features),
                                          layer_features)
        pulls.append(weight * float(gradient.abs().mean()))
    assert max(pulls) / min(pulls) == pytest.approx(1, rel=1e-3)
    assert objective.style_weights != before


def test_iterate_average_is_bias_corrected():
    average = IterateAverage(0.9)
    for _ in range(3):
        average.update(torch.full((1, 3, 2, 2), 0.4))
    assert torch.allclose(average.value, torch.full((1, 3, 2, 2), 0.4))


def test_adam_output_is_the_moving_average_of_its_iterates(content_path, style_path):
    content, style = _image(content_path, 32), _image(style_path, 32)
    extractor = build_extractor(Config().content_layers + Config().style_layers)
    plain = Config(optimizer="adam", steps=12, ema_decay=0.0).resolved("cpu")
    iterates = []
    optimize(build_objective(extractor, plain, content, [style]), content, Settings.of(plain), 12,
             on_step=lambda event: iterates.append(event.image.clone()))
    averaged = optimize(build_objective(extractor, plain, content, [style]), content,
                        Settings.of(plain.replace(ema_decay=0.9)), 12).image
    expected = sum(0.1 * 0.9 ** (12 - k) * image for k, image in enumerate(iterates, 1)) / (1 - 0.9**12)
    assert torch.allclose(averaged, expected, atol=1e-5)
    assert not torch.allclose(averaged, iterates[-1], atol=1e-3)


def test_lbfgs_returns_its_best_iterate_not_a_late_spike(content_path):
    content = _image(content_path, 32)
    config = Config(task="reconstruct", content_layers=("conv_2",), style_layers=(),
                    content_weight=1e3, steps=30, learning_rate=3.0).resolved("cpu")
    objective = build_objective(build_extractor(["conv_2"]), config, content, [])
    result = optimize(objective, torch.rand_like(content), Settings.of(config), config.steps)
    assert result.losses["total"] <= min(step["total"] for step in result.history) + 1e-6


def test_yiq_round_trip_and_luminance_is_grey():
    image = torch.rand(1, 3, 5, 7)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5)
    grey = luminance(image)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(_chroma_mean(grey), torch.zeros(2),
                                                                      atol=1e-5)
    merged = with_content_chroma(grey, image)
    assert torch.allclose(merged, image, atol=1e-4)  # its own luminance + chroma: itself


def test_match_colors_gives_the_style_the_content_colour_statistics():
    torch.manual_seed(0)
    content = 0.4 + 0.2 * torch.rand(1, 3, 20, 20) * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)
    style = 0.3 + 0.3 * torch.rand(1, 3, 16, 24)
    recoloured = match_colors(style, content)
    flat = lambda x: x.permute(1, 0, 2, 3).reshape(3, -1)  # noqa: E731
    assert torch.allclose(flat(recoloured).mean(1), flat(content).mean(1), atol=1e-3)
    assert torch.allclose(torch.cov(flat(recoloured)), torch.cov(flat(content)), atol=2e-4)


def test_colour_labelled_mask_gives_one_region_per_style_darkest_first():
    image = Image.new("RGB", (10, 4), (250, 250, 250))
    image.paste((20, 20, 200), (0, 0, 4, 4))
    image.putpixel((5, 1), (200, 200, 230))  # an anti-aliased stray pixel joins the nearest
    masks = masks_from_images([image], 2, (20, 8))
    assert masks.shape == (2, 1, 4, 10)
    assert masks[0, 0, :, :4].eq(1).all() and masks[0, 0, :, 4:].eq(0).all()
    assert torch.equal(masks.sum(0), torch.ones(1, 4, 10))


def test_mask_errors_name_the_problem():
    square = Image.new("L", (8, 8))
    with pytest.raises(NstError, match="aspect ratios differ"):
        masks_from_images([square], 2, (16, 8))
    with pytest.raises(NstError, match="1 colour.*3 style images"):
        masks_from_images([Image.new("RGB", (8, 8))], 3, (8, 8))
    with pytest.raises(NstError, match="2 masks for 3 style images"):
        masks_from_images([square, square], 3, (8, 8))
